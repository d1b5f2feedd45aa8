"""The `supportswarm` command. Every subcommand opens the same resources as `serve`, so it works
against the same database, the embedded one included."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from supportswarm.errors import ConfigurationError, SwarmError
from supportswarm.resources import Resources, open_resources
from supportswarm.settings import Settings

Command = Callable[[Resources, argparse.Namespace], Awaitable[int]]


def _job_functions() -> dict[str, Any]:
    # The CLI is an entry point: it may know `workers/`, which services never import.
    from workers.registry import JOB_FUNCTIONS

    return JOB_FUNCTIONS


async def _run_with_resources(settings: Settings, command: Command, args: argparse.Namespace) -> int:
    async with open_resources(settings, job_functions=_job_functions()) as res:
        code = await command(res, args)
        await res.jobs.drain()
        return code


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from supportswarm.app import create_app

    if args.demo:
        asyncio.run(_run_with_resources(settings, _seed_demo, args))
    app = create_app(settings, job_functions=_job_functions())
    print(f"SupportSwarm on http://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", ws="websockets", proxy_headers=True,
                ws_per_message_deflate=False)
    return 0


async def _migrate(res: Resources, args: argparse.Namespace) -> int:
    print("database is up to date")
    return 0


async def _createuser(res: Resources, args: argparse.Namespace) -> int:
    from supportswarm.accounts import services

    user = await services.register(args.username, args.password, email=args.email, role=args.role)
    print(f"created {user.username} ({user.role}), id {user.id}")
    return 0


async def _token(res: Resources, args: argparse.Namespace) -> int:
    from supportswarm.accounts import services

    user = await services.get_user_by_name(args.username)
    print(await services.create_token(user, name=args.name))
    return 0


async def _seed_demo(res: Resources, args: argparse.Namespace) -> int:
    from supportswarm.demo import seed_demo

    created = await seed_demo(res)
    print(f"demo content: {created} questions added" if created else "demo content already present")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="supportswarm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web application")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="seed demo content first (once)")
    sub.add_parser("worker", help="run an arq worker (needs REDIS_URL)")
    sub.add_parser("migrate", help="apply pending database migrations")
    create = sub.add_parser("createuser", help="create a user with a role")
    create.add_argument("username")
    create.add_argument("--role", default="customer")
    create.add_argument("--password", required=True)
    create.add_argument("--email")
    token = sub.add_parser("token", help="print a new API token for a user")
    token.add_argument("username")
    token.add_argument("--name", default="cli")
    sub.add_parser("demo", help="seed realistic demo content")
    return parser


RESOURCE_COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "createuser": _createuser,
    "token": _token,
    "demo": _seed_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        if args.command == "serve":
            return cmd_serve(settings, args)
        if args.command == "worker":
            from workers.settings import run_worker

            return run_worker(settings)
        return asyncio.run(_run_with_resources(settings, RESOURCE_COMMANDS[args.command], args))
    except (SwarmError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
