"""A fake Kubernetes API server: just enough of it for pod lookup and exec.

Test code, not product code. It answers discovery (`/version`, `/api`, `/apis`, `/api/v1`),
pod GET and list (with equality label selectors), and `pods/{name}/exec` as a WebSocket
speaking the real channel subprotocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`): one
channel byte per frame (0 stdin, 1 stdout, 2 stderr, 3 status JSON, 255 close in v5). The
command runs as a local process in the pod's working folder, and like a real kubelet the
fake does NOT kill it when the WebSocket closes (kubernetes/kubernetes #89031).

It serves as many pods as it is given (`many_pods` makes hundreds), can speak only v4 (as
API servers before 1.30 do), and cuts its open exec streams on demand (`cut_streams`, as an
API server that restarts does). `python -m tests.fakes.kube_apiserver` runs it on its own
(the benchmarks use it so).

By default every pod's processes share this machine's PID namespace, so that tests can see
them. With `pid_namespaces` (root only) each pod gets its own, as in a cluster: what runs in
a pod sees only the pod's processes in `/proc`, so a stop script's scan costs what it would
in a pod, not a scan of every pod's processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

FRAME_SIZE = 32 * 1024  # the kubelet's stream buffer

STDIN, STDOUT, STDERR, STATUS, CLOSE = 0, 1, 2, 3, 255


@dataclass
class FakePod:
    name: str
    workdir: Path
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    phase: str = "Running"
    ready: bool = True
    containers: tuple[str, ...] = ("agent",)

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
                "uid": f"uid-{self.name}",
            },
            "spec": {"containers": [{"name": c, "image": "agent:latest"} for c in self.containers]},
            "status": {
                "phase": self.phase,
                "conditions": [{"type": "Ready", "status": "True" if self.ready else "False"}],
            },
        }


def _status(code: int | None, message: str = "") -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code is None:
        return {
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _not_found(kind: str, name: str) -> JSONResponse:
    return JSONResponse(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'{kind} "{name}" not found',
            "reason": "NotFound",
            "details": {"name": name, "kind": kind},
            "code": 404,
        },
        status_code=404,
    )


class FakeKubeApiServer:
    def __init__(self, pods: list[FakePod], pid_namespaces: bool = False) -> None:
        self.pods = {(p.namespace, p.name): p for p in pods}
        self.pid_namespaces = pid_namespaces
        self._pod_inits: dict[str, asyncio.Future[int]] = {}  # the pods' PID 1, by name
        self.execs: list[list[str]] = []  # every command executed, in order
        self.processes: list[int] = []  # pids of the exec'd processes
        self.drop_after_output = False  # close the next exec's socket after its first output
        self.protocols = ("v5.channel.k8s.io", "v4.channel.k8s.io")  # accepted, preferred first
        self.open_execs: set[WebSocket] = set()
        self.requests: list[str] = []  # every request's path and query, as API servers log
        self._routes = Starlette(
            routes=[
                Route("/version", self.version),
                Route("/api", self.api),
                Route("/apis", self.apis),
                Route("/api/v1", self.api_v1),
                Route("/api/v1/namespaces/{namespace}/pods", self.list_pods),
                Route("/api/v1/namespaces/{namespace}/pods/{name}", self.get_pod),
                WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", self.exec),
            ]
        )

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] in ("http", "websocket"):
                query = scope.get("query_string", b"").decode()
                self.requests.append(f"{scope['path']}?{query}" if query else scope["path"])
            await self._routes(scope, receive, send)

        self.app = app  # a function: uvicorn tells an ASGI 3 app by that

    async def version(self, request: Request) -> JSONResponse:
        # /usr/bin/kubectl picks its bundled client by this minor: 32 speaks WebSocket exec.
        return JSONResponse(
            {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "platform": "linux/amd64"}
        )

    async def api(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        )

    async def apis(self, request: Request) -> JSONResponse:
        return JSONResponse({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api_v1(self, request: Request) -> JSONResponse:
        resources = [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "list"],
                "shortNames": ["po"],
            },
            {
                "name": "pods/exec",
                "singularName": "",
                "namespaced": True,
                "kind": "PodExecOptions",
                "verbs": ["create", "get"],
            },
        ]
        return JSONResponse(
            {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}
        )

    async def get_pod(self, request: Request) -> JSONResponse:
        pod = self.pods.get((request.path_params["namespace"], request.path_params["name"]))
        if pod is None:
            return _not_found("pods", request.path_params["name"])
        return JSONResponse(pod.manifest())

    async def list_pods(self, request: Request) -> JSONResponse:
        namespace = request.path_params["namespace"]
        wanted = dict(
            term.split("=", 1)
            for term in request.query_params.get("labelSelector", "").split(",")
            if term
        )
        items = [
            pod.manifest()
            for (ns, _), pod in self.pods.items()
            if ns == namespace and all(pod.labels.get(k) == v for k, v in wanted.items())
        ]
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def exec(self, websocket: WebSocket) -> None:
        pod = self.pods.get((websocket.path_params["namespace"], websocket.path_params["name"]))
        offered = websocket.scope.get("subprotocols", [])
        protocol = next((p for p in self.protocols if p in offered), None)
        if pod is None or protocol is None:
            await websocket.close(code=1008)
            return
        await websocket.accept(subprotocol=protocol)
        command = websocket.query_params.getlist("command")
        with_stdin = websocket.query_params.get("stdin") in ("true", "1")
        self.execs.append(command)
        drop = self.drop_after_output
        self.drop_after_output = False
        try:
            argv = await self._in_pod_namespace(pod, command) if self.pid_namespaces else command
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=pod.workdir,
                stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            message = f'exec: "{command[0] if command else ""}": {exc.strerror}'
            await self._send(websocket, STATUS, json.dumps(_status(None, message)).encode())
            await websocket.close()
            return
        self.processes.append(process.pid)
        self.open_execs.add(websocket)
        connected = True

        async def pump(reader: asyncio.StreamReader, channel: int) -> None:
            nonlocal connected
            while chunk := await reader.read(FRAME_SIZE):
                if connected:
                    connected = await self._send(websocket, channel, chunk)
                    if drop and connected:
                        connected = False
                        with contextlib.suppress(Exception):
                            await websocket.close(code=1011)

        async def feed_stdin() -> None:
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    data = message.get("bytes")
                    if data is None:
                        data = (message.get("text") or "").encode()
                    if not data:
                        continue
                    if data[0] == CLOSE and len(data) > 1 and data[1] == STDIN:
                        break
                    if data[0] == STDIN and process.stdin is not None:
                        process.stdin.write(data[1:])
                        await process.stdin.drain()
            except (WebSocketDisconnect, RuntimeError, ConnectionError):
                pass
            finally:
                if process.stdin is not None:
                    process.stdin.close()

        stdin_task = asyncio.ensure_future(feed_stdin())
        await asyncio.gather(pump(process.stdout, STDOUT), pump(process.stderr, STDERR))
        code = await process.wait()
        connected = connected and websocket in self.open_execs
        self.open_execs.discard(websocket)
        if connected:
            status = _status(code if code >= 0 else 128 - code)
            await self._send(websocket, STATUS, json.dumps(status).encode())
            with contextlib.suppress(Exception):
                await websocket.close()
        stdin_task.cancel()

    async def _in_pod_namespace(self, pod: FakePod, command: list[str]) -> list[str]:
        """`command` entered into the pod's PID and mount namespaces (with their own
        `/proc`), which a `sleep` holds from the pod's first exec on, as its PID 1."""
        if pod.name not in self._pod_inits:
            self._pod_inits[pod.name] = asyncio.ensure_future(self._start_pod_init())
        init = await self._pod_inits[pod.name]
        enter = ["nsenter", f"--target={init}", "--pid", "--mount", f"--wd={pod.workdir}"]
        return [*enter, "--", *command]

    @staticmethod
    async def _start_pod_init() -> int:
        """The pid of a new `sleep`, PID 1 of new PID and mount namespaces; it ends with
        this process (unshare ends with it, and takes its child along)."""
        unshare = await asyncio.create_subprocess_exec(
            *["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sleep", "infinity"],
            preexec_fn=_die_with_parent,
        )
        return await asyncio.to_thread(_forked_sleep, unshare.pid)

    async def cut_streams(self) -> int:
        """Closes every open exec stream with 1011, as a restarting API server would; the
        processes go on. How many were cut."""
        cut = list(self.open_execs)
        self.open_execs.clear()
        for websocket in cut:
            with contextlib.suppress(Exception):
                await websocket.close(code=1011, reason="apiserver restarting")
        return len(cut)

    @staticmethod
    async def _send(websocket: WebSocket, channel: int, data: bytes) -> bool:
        try:
            await websocket.send_bytes(bytes([channel]) + data)
            return True
        except Exception:  # the client went away; the process goes on, as with a kubelet
            return False


def _die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _forked_sleep(unshare_pid: int) -> int:
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    while True:  # until its child runs `sleep`, with the pod's /proc mounted
        for pid in children.read_text().split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"):
                    return int(pid)
        time.sleep(0.005)


def kubeconfig(server_url: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
        ],
        "current-context": "fake",
    }


def many_pods(root: Path, count: int, namespace: str = "default") -> list[FakePod]:
    """Pods `p0-agent-0` .. `p{count-1}-agent-0`, each with a working folder under root."""
    pods = []
    for i in range(count):
        workdir = root / f"p{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        pods.append(FakePod(f"p{i}-agent-0", workdir, namespace, labels={"project": f"p{i}"}))
    return pods


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="The fake Kubernetes API server, on its own")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pods", type=int, default=1)
    parser.add_argument("--root", type=Path, required=True, help="the pods' working folders")
    parser.add_argument(
        "--pid-namespaces", action="store_true", help="a PID namespace per pod (root only)"
    )
    args = parser.parse_args()
    fake = FakeKubeApiServer(many_pods(args.root, args.pods), args.pid_namespaces)
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
