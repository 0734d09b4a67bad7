"""A fake Woodpecker server following the shapes of its REST API that the gateway uses:
`GET /api/repos/lookup/{owner}/{name}` -> the repository (`id`, `full_name`), and
`POST /api/repos/{id}/pipelines` `{"branch", "variables"}` -> a pipeline (`number`,
`status`, `link`), both with `Authorization: Bearer <token>`. It records the pipelines."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class FakeWoodpecker:
    def __init__(self, token: str, repos: dict[str, int]) -> None:
        self.token = token
        self.repos = repos  # full name -> id
        self.pipelines: list[dict[str, Any]] = []
        self.url = ""  # set once it listens
        self.app = Starlette(
            routes=[
                Route("/api/repos/lookup/{owner}/{name}", self.lookup),
                Route("/api/repos/{repo_id:int}/pipelines", self.create, methods=["POST"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def lookup(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "unauthorized"}, 401)
        full_name = f"{request.path_params['owner']}/{request.path_params['name']}"
        if full_name not in self.repos:
            return JSONResponse({"error": "not found"}, 404)
        return JSONResponse({"id": self.repos[full_name], "full_name": full_name})

    async def create(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return JSONResponse({"error": "unauthorized"}, 401)
        repo_id = request.path_params["repo_id"]
        body = await request.json()
        number = len(self.pipelines) + 1
        self.pipelines.append({"repo_id": repo_id, **body})
        link = f"{self.url}/repos/{repo_id}/pipeline/{number}"
        return JSONResponse({"number": number, "status": "pending", "link": link}, 200)
