"""The `agent-gateway` command: serve (handlers/server.py), run and follow
(handlers/client.py), credentials rotate."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from domain.errors import GatewayError
from handlers.client import DEFAULT_URL, ci_command, follow_command, run_command
from handlers.settings import ENV_PREFIX, Settings, SettingsError, load_settings


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=f"{field.description or ''} (env {ENV_PREFIX}{name.upper()})".strip(),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the gateway")
    _add_setting_flags(serve_parser)
    credentials = commands.add_parser("credentials", help="the stored credentials")
    actions = credentials.add_subparsers(dest="action", required=True)
    rotate = actions.add_parser(
        "rotate", help="re-encrypt every credential under the first key of the key ring"
    )
    _add_setting_flags(rotate)
    commands.add_parser(
        "ci",
        help="a Woodpecker plugin step: PLUGIN_URL, PLUGIN_PROJECT, PLUGIN_PROMPT, "
        "PLUGIN_PROVIDER, PLUGIN_API_KEY, PLUGIN_TEMPLATE, PLUGIN_TIMEOUT; CI_* into metadata",
    )
    for name, help_text in (("run", "start a run and follow it"), ("follow", "follow a stream")):
        sub = commands.add_parser(name, help=help_text)
        if name == "run":
            sub.add_argument("project")
            sub.add_argument("prompt")
            sub.add_argument("--provider", action="append", help="repeat for a fallback chain")
            sub.add_argument(
                "--interactive",
                action="store_true",
                help="answer the agent's requests on the terminal; follow-ups from stdin",
            )
            sub.add_argument("--permission-mode", default=None, help="claude-code's, e.g. default")
        else:
            sub.add_argument("stream_url")
        sub.add_argument("--url", default=DEFAULT_URL, help=f"gateway URL (default {DEFAULT_URL})")
        sub.add_argument("--api-key", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "credentials"):
        overrides = {name: getattr(args, name) for name in Settings.model_fields}
        try:
            settings = load_settings(**overrides)
            if args.command == "credentials":
                return rotate_credentials(settings)
            from handlers.server import serve  # the server's imports only when serving

            return serve(settings)
        except (SettingsError, GatewayError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.command == "run":
        return run_command(args)
    if args.command == "ci":
        return ci_command(os.environ)
    return follow_command(args)


def rotate_credentials(settings: Settings) -> int:
    """Re-seals what the configured backend stores under the ring's first key."""
    import asyncio

    from handlers.bootstrap import build_gateway

    async def rotate() -> int:
        gateway = build_gateway(settings)
        for resource in gateway.resources:
            await resource.start()
        try:
            return await gateway.credentials.rotate()
        finally:
            for resource in reversed(gateway.resources):
                await resource.close()

    count = asyncio.run(rotate())
    print(f"re-encrypted {count} credential(s) under the first key", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
