from adapters.claude_code.agent import ClaudeCodeAgent
from adapters.claude_code.stream_json import StreamJsonParser

__all__ = ["ClaudeCodeAgent", "StreamJsonParser"]
