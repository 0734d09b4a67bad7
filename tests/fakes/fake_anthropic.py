"""A small fake of the Anthropic Messages API for the real claude CLI and SDK.

It streams replies in the real event order (message_start, content_block_start,
content_block_delta..., content_block_stop, message_delta with usage, message_stop), accepts
unknown keys and roles, and picks its behaviour from markers in the last user text:
  [tool]   first answer a Bash tool_use running `echo tool-ran`, then report its result
  [touch]  the same with `touch made-by-agent`, which needs permission outside bypass mode
  [printenv NAME]  the same with `printenv NAME > leaked.txt; printenv NAME`, then repeats
           the tool's result three characters a delta (a credential split across deltas)
  [ask]    first ask the user a question (AskUserQuestion: which color, red or blue)
  [slow]   stream one word every 0.2 s for ten minutes (for cancel tests)
  [fail]   answer HTTP 500
  [overloaded]  answer HTTP 529 overloaded_error, before any byte of a stream
  [break]  stream a few words, then drop the connection
  [think] a thinking block (thinking deltas) before the answer
  [stamps N R]  N deltas "T<CLOCK_MONOTONIC ns>" at R per second (0: at once), for benchmarks
otherwise it answers "Hello from fake. You said: <text>" in several deltas.

Run it alone with `python -m tests.fakes.fake_anthropic --port N`."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

INPUT_TOKENS = 25
QUESTION = {
    "questions": [
        {
            "question": "Which color should the button be?",
            "header": "Color",
            "options": [
                {"label": "red", "description": "a warm one"},
                {"label": "blue", "description": "a cool one"},
            ],
            "multiSelect": False,
        }
    ]
}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(block.get("text", ""))
    return texts


def _has_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


def _tool_result_text(message: dict[str, Any]) -> str:
    for block in message.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                return "".join(c.get("text", "") for c in content if isinstance(c, dict))
            return str(content)
    return ""


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.2
        self.app = Starlette(
            routes=[
                Route("/", self.root, methods=["GET", "HEAD"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
            ]
        )

    async def root(self, request: Request) -> Response:
        return Response("ok")

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
        last = messages[-1] if messages else {"content": ""}
        user_text = "\n".join(t for m in messages for t in _texts(m.get("content")))
        last_text = "\n".join(_texts(last.get("content")))
        model = body.get("model", "fake-model")
        if "[stamps " in last_text:
            count, rate = last_text.split("[stamps ", 1)[1].split("]")[0].split()
            stream = self._stamps(model, int(count), float(rate))
            return StreamingResponse(stream, media_type="text/event-stream")
        if "[think]" in last_text:
            return StreamingResponse(self._thinking(model), media_type="text/event-stream")
        if "[overloaded]" in last_text:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            return JSONResponse({"type": "error", "error": error}, status_code=529)
        if "[break]" in last_text:
            return StreamingResponse(self._broken(model), media_type="text/event-stream")
        if "[fail]" in user_text:
            error = {"type": "api_error", "message": "fake internal error"}
            return JSONResponse({"type": "error", "error": error}, status_code=500)
        if "[ask]" in last_text and not _has_tool_result(last):
            stream = self._tool_call(model, "AskUserQuestion", QUESTION)
        elif "[touch]" in last_text and not _has_tool_result(last):
            stream = self._tool_use(model, "touch made-by-agent")
        elif "[printenv " in last_text and not _has_tool_result(last):
            name = last_text.split("[printenv ", 1)[1].split("]")[0]
            stream = self._tool_use(model, f"printenv {name} > leaked.txt; printenv {name}")
        elif "[tool]" in user_text and not _has_tool_result(last):
            stream = self._tool_use(model, "echo tool-ran")
        elif _has_tool_result(last) and "[printenv " in user_text:
            said = _tool_result_text(last).strip()
            pieces = [said[i : i + 3] for i in range(0, len(said), 3)]
            stream = self._text(model, ["tool said: ", *pieces])
        elif _has_tool_result(last):
            stream = self._text(model, ["tool said: ", _tool_result_text(last).strip()])
        elif "[slow]" in last_text:
            stream = self._text(model, [f"word{i} " for i in range(3000)], self.delay_s)
        else:
            prompt = _prompt_text(last_text)
            stream = self._text(model, ["Hello ", "from ", "fake. ", "You said: ", prompt])
        if not body.get("stream"):
            return JSONResponse({"type": "error", "error": {"message": "stream only"}}, 400)
        return StreamingResponse(stream, media_type="text/event-stream")

    async def _text(
        self, model: str, pieces: list[str], delay_s: float = 0.0
    ) -> AsyncIterator[bytes]:
        yield self._start(model)
        yield _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        for piece in pieces:
            if delay_s:
                await asyncio.sleep(delay_s)
            yield _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield self._stop("end_turn", len(pieces))

    async def _stamps(self, model: str, count: int, rate: float) -> AsyncIterator[bytes]:
        yield self._start(model)
        start = time.monotonic()
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            delta = {"type": "text_delta", "text": f"T{time.monotonic_ns()} "}
            yield _sse(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield self._stop("end_turn", count)

    async def _thinking(self, model: str) -> AsyncIterator[bytes]:
        yield self._start(model)
        block = {"type": "thinking", "thinking": "", "signature": ""}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        for piece in ("Let me ", "think."):
            delta = {"type": "thinking_delta", "thinking": piece}
            yield _sse(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
        )
        delta = {"type": "text_delta", "text": "Answer."}
        yield _sse(
            "content_block_delta", {"type": "content_block_delta", "index": 1, "delta": delta}
        )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 1})
        yield self._stop("end_turn", 3)

    async def _broken(self, model: str) -> AsyncIterator[bytes]:
        async for chunk in self._text(model, ["partial ", "reply ", "then "]):
            if b"content_block_stop" in chunk:
                raise ConnectionAbortedError("fake connection drop")  # uvicorn cuts the socket
            yield chunk

    def _tool_use(self, model: str, command: str) -> AsyncIterator[bytes]:
        return self._tool_call(model, "Bash", {"command": command, "description": f"Run {command}"})

    async def _tool_call(
        self, model: str, tool: str, tool_input: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        yield self._start(model)
        block = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:20]}",
            "name": tool,
            "input": {},
        }
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        arguments = json.dumps(tool_input)
        for i in range(0, len(arguments), 16):
            yield _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": arguments[i : i + 16]},
                },
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield self._stop("tool_use", 9)

    def _start(self, model: str) -> bytes:
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1},
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _stop(self, reason: str, output_tokens: int) -> bytes:
        return _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ) + _sse("message_stop", {"type": "message_stop"})


def _prompt_text(text: str) -> str:
    """The user's own words: the CLI wraps context in <system-reminder> blocks."""
    lines = [line for line in text.splitlines() if line and "system-reminder" not in line]
    return lines[-1] if lines else text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvicorn.run(FakeAnthropic().app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
