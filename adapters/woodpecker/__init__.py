from adapters.woodpecker.client import WoodpeckerClient

__all__ = ["WoodpeckerClient"]
