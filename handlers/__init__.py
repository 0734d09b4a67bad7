"""What drives the domain from outside: HTTP routes, SSE, the CLI, and the composition root."""
