from adapters.anthropic_api.agent import AnthropicAgent, AnthropicSettings

__all__ = ["AnthropicAgent", "AnthropicSettings"]
