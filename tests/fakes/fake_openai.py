"""A small fake of an OpenAI-compatible chat-completions API, for the real `opencode serve`.

Streams chunks then `data: [DONE]`, and picks its behaviour from the last user text:
  [tool]  first a `bash` tool call running `echo tool-ran`, then the tool's output as text
  [touch] the same with `touch touched-by-agent` (a file in the server's directory)
  [ask]   a `question` tool call (one question, options red and blue), then its answer
  [slow]  one word every 0.2 s for ten minutes (for abort tests)
  [fail]  HTTP 400
otherwise "Hello from fake. You said: <text>" in several chunks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PROMPT_TOKENS = 17
QUESTION = {
    "question": "Which colour?",
    "header": "Colour",
    "options": [
        {"label": "red", "description": "warm"},
        {"label": "blue", "description": "cool"},
    ],
}


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.completions, methods=["POST"]),
                Route("/v1/models", self.models),
            ]
        )

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        messages = body.get("messages", [])
        users = [m for m in messages if m.get("role") == "user"]
        last_user = _text_of(users[-1]) if users else ""
        last = messages[-1] if messages else {}
        if "[fail]" in last_user:
            return JSONResponse({"error": {"message": "fake bad request"}}, status_code=400)
        if last.get("role") == "tool":
            stream = self._text(["tool said: ", _text_of(last).strip()])
        elif "[tool]" in last_user:
            stream = self._tool_call("bash", {"command": "echo tool-ran", "description": "Say it"})
        elif "[touch]" in last_user:
            command = {"command": "touch touched-by-agent", "description": "Make a file"}
            stream = self._tool_call("bash", command)
        elif "[ask]" in last_user:
            stream = self._tool_call("question", {"questions": [QUESTION]})
        elif "[slow]" in last_user:
            stream = self._text([f"word{i} " for i in range(3000)], delay_s=0.2)
        else:
            words = last_user.strip().splitlines()[-1] if last_user.strip() else ""
            stream = self._text(["Hello ", "from ", "fake. ", "You said: ", words])
        return StreamingResponse(stream, media_type="text/event-stream")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _end(self, finish: str, completion_tokens: int) -> bytes:
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens,
        }
        return self._chunk({}, finish) + self._chunk({}, None, usage=usage) + b"data: [DONE]\n\n"

    async def _text(self, pieces: list[str], delay_s: float = 0.0) -> AsyncIterator[bytes]:
        yield self._chunk({"role": "assistant", "content": ""})
        for piece in pieces:
            if delay_s:
                await asyncio.sleep(delay_s)
            yield self._chunk({"content": piece})
        yield self._end("stop", len(pieces))

    async def _tool_call(self, name: str, arguments_object: Any) -> AsyncIterator[bytes]:
        yield self._chunk({"role": "assistant", "content": None})
        arguments = json.dumps(arguments_object)
        call = {
            "index": 0,
            "id": "call_fake_1",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        yield self._chunk({"tool_calls": [call]})
        for i in range(0, len(arguments), 12):
            part = {"index": 0, "function": {"arguments": arguments[i : i + 12]}}
            yield self._chunk({"tool_calls": [part]})
        yield self._end("tool_calls", 9)
