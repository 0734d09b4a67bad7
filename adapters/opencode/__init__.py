from adapters.opencode.agent import OpenCodeAgent, OpenCodeSettings

__all__ = ["OpenCodeAgent", "OpenCodeSettings"]
