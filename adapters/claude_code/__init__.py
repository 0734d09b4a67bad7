from adapters.claude_code.agent import ClaudeCodeAgent
from adapters.claude_code.stream_json import StreamJsonParser
from adapters.claude_code.transcripts import TranscriptKeeper

__all__ = ["ClaudeCodeAgent", "StreamJsonParser", "TranscriptKeeper"]
