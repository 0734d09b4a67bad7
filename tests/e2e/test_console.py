"""The operator console in a real browser: Debian's chromium, headless, driven by Playwright,
against the whole gateway under uvicorn on loopback with auth on. The fake claude CLI
serves most runs; the permission requests, denials and follow-ups come from the real
claude CLI against the fake Messages API. Every page is watched for console errors,
dialogs, Content-Security-Policy violations and requests that leave the gateway's origin.

Screenshots of each view go to $CONSOLE_SCREENSHOTS_DIR when set (the README's come from
`make screenshots`), else to the test's temporary folder."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import CLAUDE_CLI, processes_working_in
from tests.e2e.cli_env import point_the_cli_at
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.servers import RunningServer

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own traffic (updates, sync, Google's hosts) is refused by this closed network.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEYS = {  # name: (key, projects, role)
    "admin": ("admin-key-1", ["*"], "admin"),
    "runner": ("runner-key-1", ["demo"], "run"),
    "reader": ("reader-key-1", ["*"], "read"),
    "other": ("other-key-1", ["other"], "run"),
}
# Counts what the page must never do; read back by `PageWatch.check`.
WATCH_SCRIPT = """
window.__csp_violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp_violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def write_keys(path: Path) -> None:
    keys = [
        {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "projects": p, "role": r}
        for name, (key, p, r) in KEYS.items()
    ]
    path.write_text(json.dumps({"keys": keys}))


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[name][0]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "chromium is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class PageWatch:
    """A page with everything it must not do recorded: console errors, uncaught
    exceptions, dialogs (dismissed), requests to anywhere but the gateway, CSP reports."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.foreign_requests: list[str] = []
        self.requests: list[str] = []
        page.add_init_script(WATCH_SCRIPT)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location['url']})")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        if not request.url.startswith(self.origin + "/"):
            self.foreign_requests.append(request.url)

    def sign_in(self, name: str) -> None:
        self.page.goto(f"{self.origin}/console")
        self.page.get_by_label("API key").fill(KEYS[name][0])
        self.page.get_by_role("button", name="Open the console").click()
        expect(self.page.locator("#who")).to_contain_text(name)
        expect(self.page.locator("#feed-state")).to_have_text("live")

    def check(self) -> None:
        violations = self.page.evaluate("window.__csp_violations")
        assert violations == [], violations
        assert self.errors == [], self.errors
        assert self.dialogs == [] and self.foreign_requests == []


@pytest.fixture
def console(browser: Browser, start_gateway: Any, tmp_path: Path) -> Iterator[Any]:
    """Starts a gateway with auth on (`start(**settings)`), and opens watched pages on it."""
    keys_file = tmp_path / "keys.json"
    write_keys(keys_file)
    contexts: list[Any] = []
    watches: list[PageWatch] = []

    class Console:
        server: Any = None

        def start(self, **settings: Any) -> Any:
            self.server = start_gateway(api_keys_file=keys_file, **settings)
            return self.server

        def page(self, width: int = 1280, height: int = 860) -> PageWatch:
            context = browser.new_context(viewport={"width": width, "height": height})
            contexts.append(context)
            watch = PageWatch(context.new_page(), self.server.url)
            watches.append(watch)
            return watch

    yield Console()
    for watch in watches:
        watch.check()
    for context in contexts:
        context.close()


def start_run(url: str, who: str, prompt: str, project: str = "demo", **body: Any) -> Any:
    response = httpx.post(
        f"{url}/projects/{project}/claude",
        json={"prompt": prompt, **body},
        headers=key(who),
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()


def run_row(page: Page, run: dict[str, Any]) -> Any:
    return page.locator("#runs-table tbody tr", has_text=run["run_id"][:8])


def test_a_run_appears_live_streams_its_text_and_cancel_stops_the_agent(console, screenshots):
    server = console.start()
    watch = console.page()
    watch.sign_in("runner")
    run = start_run(server.url, "runner", "slow")
    started = time.monotonic()
    expect(run_row(watch.page, run)).to_be_visible(timeout=1000)  # from the feed, no polling
    appeared_s = time.monotonic() - started
    expect(run_row(watch.page, run).locator("td.status")).to_have_text("running")
    watch.page.screenshot(path=screenshots / "runs.png")

    run_row(watch.page, run).get_by_role("link").click()
    transcript = watch.page.locator("#transcript")
    expect(transcript).to_contain_text("w5 w6")  # deltas grow the text as they come
    expect(watch.page.locator("#run-facts")).to_contain_text("claude-code")
    watch.page.screenshot(path=screenshots / "run.png")

    watch.page.get_by_role("button", name="Cancel").click()
    expect(transcript.locator(".done")).to_contain_text("Done: cancelled")
    expect(watch.page.get_by_role("button", name="Cancel")).to_be_disabled()
    assert processes_working_in(server.workspace / "demo") == []
    record = httpx.get(f"{server.url}/projects/demo/runs/{run['run_id']}", headers=key("runner"))
    assert record.json()["status"] == "cancelled"
    watch.page.get_by_role("link", name="Runs").first.click()
    expect(run_row(watch.page, run).locator("td.status")).to_have_text("cancelled")
    watch.page.locator("#filter-status").select_option("running")  # filters re-list
    expect(run_row(watch.page, run)).to_have_count(0)
    watch.page.locator("#filter-status").select_option("cancelled")
    expect(run_row(watch.page, run)).to_be_visible()
    print(f"run listed {appeared_s * 1000:.0f} ms after its start was answered")


def test_a_read_key_sees_every_run_but_cannot_act_and_a_project_key_sees_only_its_own(console):
    server = console.start()
    reader, runner = console.page(), console.page()
    reader.sign_in("reader")
    runner.sign_in("runner")
    theirs = start_run(server.url, "other", "slow", project="other")
    ours = start_run(server.url, "runner", "slow")
    expect(run_row(runner.page, ours)).to_be_visible()
    expect(run_row(reader.page, theirs)).to_be_visible()
    expect(run_row(reader.page, ours)).to_be_visible()
    # The feed sent `theirs` before `ours`: had it reached the demo key, it would show now.
    expect(run_row(runner.page, theirs)).to_have_count(0)
    runner.page.reload()
    expect(runner.page.locator("#feed-state")).to_have_text("live")
    expect(run_row(runner.page, ours)).to_be_visible()
    expect(run_row(runner.page, theirs)).to_have_count(0)

    run_row(reader.page, ours).get_by_role("link").click()
    expect(reader.page.locator("#transcript")).to_contain_text("w2")
    expect(reader.page.get_by_role("button", name="Cancel")).to_be_hidden()
    # and the API refuses what the page does not offer
    cancel = f"{server.url}/projects/demo/runs/{ours['run_id']}/cancel"
    assert httpx.post(cancel, headers=key("reader")).status_code == 403
    for run, who, project in ((ours, "runner", "demo"), (theirs, "other", "other")):
        httpx.post(f"{server.url}/projects/{project}/runs/{run['run_id']}/cancel", headers=key(who))


def test_html_an_agent_prints_is_shown_as_text_and_runs_nothing(console, screenshots):
    server = console.start()
    watch = console.page()
    watch.sign_in("runner")
    run = start_run(server.url, "runner", "html")
    watch.page.goto(f"{server.url}/console#/run/demo/{run['run_id']}")
    transcript = watch.page.locator("#transcript")
    expect(transcript.locator(".done")).to_contain_text("Done: succeeded")
    expect(transcript.locator(".text")).to_contain_text("<script>window.__pwned = 1</script>")
    expect(transcript.locator(".tool summary")).to_contain_text("<img src=x onerror=")
    watch.page.locator("#side-output summary").click()
    expect(watch.page.locator("#side-lines .stderr")).to_contain_text("<svg onload=")
    expect(watch.page.locator("#side-lines .unparsed")).to_contain_text("<iframe")
    for element in ("script", "img", "iframe", "svg", "style"):
        assert transcript.locator(element).count() == 0, element
        assert watch.page.locator(f"#side-lines {element}").count() == 0, element
    assert watch.page.evaluate("window.__pwned") is None
    assert not [url for url in watch.requests if "pwned" in url or url.endswith("/x")]
    watch.check()  # no dialog, no CSP violation, nothing fetched from elsewhere
    headers = httpx.get(f"{server.url}/console").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    watch.page.screenshot(path=screenshots / "hostile-output.png")


def test_a_50000_event_stream_renders_without_freezing_the_page(console):
    server = console.start()
    run = start_run(server.url, "runner", "lines 50000 0 1")
    deadline = time.monotonic() + 60
    path = f"/projects/demo/runs/{run['run_id']}"
    while httpx.get(server.url + path, headers=key("runner")).json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    watch = console.page()
    watch.sign_in("runner")
    started = time.monotonic()
    watch.page.goto(f"{server.url}/console#/run/demo/{run['run_id']}")
    # While it renders, the page keeps answering (work is sliced per animation frame).
    answers = []
    transcript = watch.page.locator("#transcript")
    while True:
        asked = time.monotonic()
        watch.page.evaluate("1")
        answers.append(time.monotonic() - asked)
        if transcript.locator(".done").count():
            break
        assert time.monotonic() - started < 60
        time.sleep(0.05)
    rendered_s = time.monotonic() - started
    expect(transcript).to_contain_text("line 49999x")
    nodes = watch.page.evaluate("document.querySelectorAll('#transcript *').length")
    assert nodes < 60, nodes  # one text block of 16 KiB chunks, not 50,000 elements
    print(
        f"50,000 deltas rendered in {rendered_s:.1f} s as {nodes} elements; page answered in "
        f"at most {max(answers) * 1000:.0f} ms meanwhile ({len(answers)} probes)"
    )
    assert max(answers) < 1.0


# In-page measure of render lag: each delta of `clock` carries the time the agent wrote it.
LAG_SCRIPT = """
window.__lags = [];
const seen = new Set();
new MutationObserver(() => {
  const text = document.getElementById('transcript').textContent;
  const stamps = text.slice(-400).match(/t=(\\d+);/g) || [];
  for (const stamp of stamps) {
    if (seen.has(stamp)) continue;
    seen.add(stamp);
    window.__lags.push(Date.now() - Number(stamp.slice(2, -1)));
  }
}).observe(document.getElementById('transcript'),
           {subtree: true, characterData: true, childList: true});
"""


def test_100_live_runs_keep_the_console_responsive(console, screenshots):
    server = console.start(max_runs=150, max_runs_per_project=150, rate_limit_per_s=0)
    watch = console.page()
    watch.sign_in("runner")
    runs = [start_run(server.url, "runner", "clock 120 0.25") for _ in range(100)]
    rows = watch.page.locator("#runs-table tbody tr td.status", has_text="running")
    expect(rows).to_have_count(100, timeout=30_000)
    watch.page.screenshot(path=screenshots / "runs-100-live.png")

    watch.page.goto(f"{server.url}/console#/run/demo/{runs[-1]['run_id']}")
    expect(watch.page.locator("#transcript")).to_contain_text("t=")
    watch.page.evaluate(LAG_SCRIPT)
    time.sleep(6)
    lags = watch.page.evaluate("window.__lags")
    assert len(lags) >= 15, lags
    lags.sort()
    p50, p95 = statistics.median(lags), lags[int(len(lags) * 0.95) - 1]
    print(f"delta written -> rendered, 100 live runs: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    assert p95 < 1000, lags

    started = time.monotonic()
    watch.page.get_by_role("link", name="Runs").first.click()
    expect(rows).to_have_count(100, timeout=10_000)
    print(f"runs list with 100 live runs shown in {(time.monotonic() - started) * 1000:.0f} ms")
    for run in runs:
        httpx.post(f"{server.url}/projects/demo/runs/{run['run_id']}/cancel", headers=key("admin"))


@pytest.fixture
def claude_console(console, monkeypatch, tmp_path: Path) -> Iterator[Any]:
    """The console on a gateway that runs the real claude CLI against the fake Messages API."""
    fake = FakeAnthropic()
    with RunningServer(fake.app) as api:
        point_the_cli_at(api.url, Path(tempfile.mkdtemp(dir=tmp_path)), monkeypatch)
        console.start(claude_command=str(CLAUDE_CLI))
        yield console


def open_interactive(claude_console: Any, prompt: str) -> PageWatch:
    server = claude_console.server
    watch = claude_console.page()
    watch.sign_in("runner")
    body = {"interactive": True, "permission_mode": "default"}
    run = start_run(server.url, "runner", prompt, **body)
    watch.page.goto(f"{server.url}/console#/run/demo/{run['run_id']}")
    return watch


@pytest.mark.slow
def test_allow_on_a_permission_request_lets_the_tool_run(claude_console, screenshots):
    watch = open_interactive(claude_console, "please run [touch]")
    request = watch.page.locator("#transcript .request")
    expect(request).to_contain_text("Permission for Bash")
    expect(request).to_contain_text("touch made-by-agent")
    watch.page.screenshot(path=screenshots / "permission-request.png")
    request.get_by_role("button", name="Allow").click()
    expect(request.locator(".request-state")).to_have_text("allow by runner")
    expect(watch.page.locator("#transcript .turn-end")).to_contain_text("turn 1 ended")
    assert (claude_console.server.workspace / "demo" / "made-by-agent").exists()
    watch.page.get_by_role("button", name="Close after this turn").click()
    expect(watch.page.locator("#transcript .done")).to_contain_text("Done: succeeded")


@pytest.mark.slow
def test_deny_keeps_the_tool_from_running_and_a_follow_up_runs_as_the_next_turn(
    claude_console, screenshots
):
    watch = open_interactive(claude_console, "please run [touch]")
    request = watch.page.locator("#transcript .request")
    request.get_by_label("message").fill("not in this folder")
    request.get_by_role("button", name="Deny").click()
    expect(request.locator(".request-state")).to_have_text("deny by runner")
    expect(watch.page.locator("#transcript .tool pre.error")).to_be_visible()
    expect(watch.page.locator("#transcript .turn-end")).to_contain_text("turn 1 ended")
    assert not (claude_console.server.workspace / "demo" / "made-by-agent").exists()

    watch.page.get_by_label("Next message").fill("second question")
    watch.page.get_by_role("button", name="Send").click()
    expect(watch.page.locator("#transcript .turn-end")).to_have_count(2)
    expect(watch.page.locator("#transcript")).to_contain_text("You said: second question")
    watch.page.screenshot(path=screenshots / "follow-up.png")
    watch.page.get_by_role("button", name="Close after this turn").click()
    expect(watch.page.locator("#transcript .done")).to_contain_text("Done: succeeded")


@pytest.mark.slow
def test_a_question_shows_its_options_and_the_chosen_one_reaches_the_agent(claude_console):
    watch = open_interactive(claude_console, "please [ask]")
    request = watch.page.locator("#transcript .request")
    expect(request).to_contain_text("The agent asks")
    expect(request).to_contain_text("Which color should the button be?")
    request.get_by_role("button", name="blue").click()
    request.get_by_role("button", name="Answer").click()
    expect(request.locator(".request-state")).to_have_text("answered by runner")
    expect(watch.page.locator("#transcript .tool-result")).to_contain_text('"blue"')
    watch.page.get_by_role("button", name="Close after this turn").click()
    expect(watch.page.locator("#transcript .done")).to_contain_text("Done: succeeded")


def test_providers_and_projects_views_show_names_never_credential_values(console, screenshots):
    server = console.start()
    admin = {"X-API-Key": KEYS["admin"][0]}
    template = {"model": "claude-sonnet-4-5", "max_turns": 5, "permission_mode": "acceptEdits"}
    assert httpx.put(f"{server.url}/templates/reviewer", json=template, headers=admin).is_success
    project = {"template": "reviewer", "overrides": {"timeout_s": 600}}
    assert httpx.put(f"{server.url}/projects/demo", json=project, headers=admin).is_success
    secret = {"value": "s3cret-value-never-shown", "env": "GIT_TOKEN"}
    url = f"{server.url}/projects/demo/credentials/git_token"
    assert httpx.put(url, json=secret, headers=admin).is_success
    watch = console.page()
    watch.sign_in("admin")
    watch.page.get_by_role("link", name="Providers").click()
    expect(watch.page.locator("#providers-table")).to_contain_text("claude-code")
    watch.page.screenshot(path=screenshots / "providers.png")
    watch.page.get_by_role("link", name="Projects").click()
    expect(watch.page.locator("#projects-table")).to_contain_text("git_token")
    expect(watch.page.locator("#templates-table")).to_contain_text("acceptEdits")
    assert "s3cret-value-never-shown" not in watch.page.content()
    watch.page.screenshot(path=screenshots / "projects.png")


def test_the_console_is_usable_on_a_phone_and_by_keyboard(console, screenshots):
    server = console.start()
    run = start_run(server.url, "runner", "hello from a phone")
    watch = console.page(width=390, height=844)
    watch.page.goto(f"{server.url}/console")
    expect(watch.page.get_by_label("API key")).to_be_focused()
    watch.page.keyboard.type(KEYS["runner"][0])
    watch.page.keyboard.press("Enter")
    expect(run_row(watch.page, run)).to_be_visible()
    width = watch.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, width  # nothing sticks out sideways; wide tables scroll
    link = run_row(watch.page, run).get_by_role("link")
    link.focus()
    watch.page.keyboard.press("Enter")
    expect(watch.page.locator("#transcript .done")).to_contain_text("Done: succeeded")
    watch.page.screenshot(path=screenshots / "run-phone.png", full_page=True)
