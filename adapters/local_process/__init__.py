from adapters.local_process.runner import LocalProcessRunner

__all__ = ["LocalProcessRunner"]
