"""The gateway's domain: runs, events, validation, providers and use cases (stdlib only)."""
