"""Woodpecker's REST API (httpx): the repository by its full name, then a manual pipeline
of it (`GET /api/repos/lookup/{owner}/{name}`, `POST /api/repos/{id}/pipelines`), with a
personal access token as `Authorization: Bearer`."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from domain.woodpecker import CiTriggerFailed, PipelineStarted


class WoodpeckerClient:
    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s

    async def start_pipeline(
        self, url: str, repo: str, branch: str, variables: Mapping[str, str], token: str
    ) -> PipelineStarted:
        headers = {"Authorization": f"Bearer {token}"}
        base = url.rstrip("/")
        try:
            async with httpx.AsyncClient(
                base_url=base, headers=headers, timeout=self._timeout_s
            ) as client:
                found = await client.get(f"/api/repos/lookup/{repo}")
                if found.status_code != 200:
                    raise CiTriggerFailed(
                        f"Woodpecker has no repository {repo!r} for this token "
                        f"({found.status_code})"
                    )
                repo_id = found.json()["id"]
                body = {"branch": branch, "variables": dict(variables)}
                made = await client.post(f"/api/repos/{repo_id}/pipelines", json=body)
                if made.status_code not in (200, 201):
                    raise CiTriggerFailed(
                        f"Woodpecker refused a pipeline of {repo} ({made.status_code})"
                    )
                pipeline = made.json()
                number = int(pipeline["number"])
        except httpx.HTTPError as exc:
            raise CiTriggerFailed(f"Woodpecker at {base}: {type(exc).__name__}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise CiTriggerFailed(f"Woodpecker at {base} answered something else: {exc}") from exc
        link = pipeline.get("link") or f"{base}/repos/{repo_id}/pipeline/{number}"
        return PipelineStarted(number, str(link), str(pipeline.get("status", "")))
