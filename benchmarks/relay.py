"""The baseline: the leanest pipe-to-SSE relay on uvicorn. It runs the same fake agent and
forwards each raw stdout line as `data:`, with no parsing, no ids, no replay."""

import argparse
import asyncio
import shlex
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

COMMAND: list[str] = []
RUNS: dict[str, list[asyncio.Queue]] = {}


async def pump(run_id: str, prompt: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "-p", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    process.stdin.write(prompt.encode())
    process.stdin.close()
    async for line in process.stdout:
        chunk = b"data: " + line.rstrip(b"\n") + b"\n\n"
        for queue in RUNS[run_id]:
            queue.put_nowait(chunk)
    await process.wait()
    for queue in RUNS[run_id]:
        queue.put_nowait(b"event: end\ndata: {}\n\n")


async def start(request: Request) -> JSONResponse:
    run_id = uuid.uuid4().hex
    RUNS[run_id] = []
    asyncio.get_running_loop().create_task(pump(run_id, (await request.json())["prompt"]))
    return JSONResponse({"stream_url": f"/events/{run_id}"}, 202)


async def events(request: Request) -> StreamingResponse:
    queue: asyncio.Queue = asyncio.Queue()
    RUNS[request.path_params["run_id"]].append(queue)

    async def body():
        while True:
            chunk = await queue.get()
            yield chunk
            if chunk.startswith(b"event: end"):
                return

    return StreamingResponse(body(), media_type="text/event-stream")


app = Starlette(routes=[Route("/runs", start, methods=["POST"]), Route("/events/{run_id}", events)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    COMMAND.extend(shlex.split(args.command))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
