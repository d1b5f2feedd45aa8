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

from starlette.applications import Starlette

from supportswarm.errors import ConfigurationError, SwarmError
from supportswarm.ops import configure_logging
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


def server_app(settings: Settings | None = None) -> Starlette:
    """The app as `serve` runs it, with the job functions of `workers/`:
    `uvicorn --factory supportswarm.cli:server_app` is the same as `supportswarm serve`."""
    from supportswarm.app import create_app
    from workers.registry import PERIODIC_JOBS

    return create_app(settings or Settings.from_env(), job_functions=_job_functions(), periodic_jobs=PERIODIC_JOBS)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from supportswarm.ops import run_server

    if args.demo:
        asyncio.run(_run_with_resources(settings, _seed_demo, args))
    app = server_app(settings)
    logging.getLogger("supportswarm").info("SupportSwarm on http://%s:%s", args.host, args.port)  # JSON logs too
    run_server(app, host=args.host, port=args.port, settings=settings)
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


async def _reset_link(res: Resources, args: argparse.Namespace) -> int:
    from supportswarm.accounts import recovery, services

    user = await services.get_user_by_name(args.username)
    link = await recovery.issue_link(user, base_url=res.settings.public_url or recovery.LOCAL_URL)
    print(link.url)
    print(f"(one use, until {link.expires_at:%Y-%m-%d %H:%M} UTC; replaces any earlier link)", file=sys.stderr)
    return 0


async def _seed_demo(res: Resources, args: argparse.Namespace) -> int:
    from supportswarm.demo import seed_demo

    created = await seed_demo(res)
    print(f"demo content: {created} questions added" if created else "demo content already present")
    return 0


async def _export(res: Resources, args: argparse.Namespace) -> int:
    from pathlib import Path

    from supportswarm.export import export_forum
    from supportswarm.importer import ProgressBar

    bar = ProgressBar(f"export {Path(args.file).name}")
    counts = await export_forum(res.db, Path(args.file), progress=bar)
    bar.close()
    print(f"exported to {args.file}: " + ", ".join(f"{n} {kind}s" for kind, n in counts.items()))
    return 0


async def _import(res: Resources, args: argparse.Namespace) -> int:
    from pathlib import Path

    from supportswarm.export import command_restore, is_export_file
    from supportswarm.importer import command_import
    from supportswarm.stackexchange import command_import_dump

    path = Path(args.file)
    # By file: a Stack Exchange dump (Posts.xml), a SupportSwarm export (its header line), else JSON Lines.
    if path.suffix.lower() == ".xml":
        return await command_import_dump(res, path, site=args.site, batch_size=args.batch_size,
                                         wait=not args.no_wait)
    if is_export_file(path):
        return await command_restore(res, path, wait=not args.no_wait)
    return await command_import(res, path, batch_size=args.batch_size, wait=not args.no_wait)


async def _reindex(res: Resources, args: argparse.Namespace) -> int:
    from supportswarm.importer import command_reindex

    return await command_reindex(res, everything=not args.stale, wait=not args.no_wait)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="supportswarm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web application")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="seed demo content first (once)")
    worker = sub.add_parser("worker", help="run an arq worker (needs REDIS_URL)")
    worker.add_argument("--metrics-port", type=int, help="serve this worker's Prometheus metrics on this port")
    sub.add_parser("migrate", help="apply pending database migrations")
    create = sub.add_parser("createuser", help="create a user with a role")
    create.add_argument("username")
    create.add_argument("--role", default="customer")
    create.add_argument("--password", required=True)
    create.add_argument("--email")
    token = sub.add_parser("token", help="print a new API token for a user")
    token.add_argument("username")
    token.add_argument("--name", default="cli")
    reset = sub.add_parser("reset-link", help="print a one-time password reset link for a user (valid 1 hour)")
    reset.add_argument("username")
    sub.add_parser("demo", help="seed realistic demo content")
    imp = sub.add_parser("import", help="import questions with batched embedding: JSON Lines (DESIGN.md), "
                         "a Stack Exchange Posts.xml, or a SupportSwarm export")
    imp.add_argument("file")
    imp.add_argument("--batch-size", type=int, default=256, help="questions per transaction and encode batch")
    imp.add_argument("--no-wait", action="store_true", help="with REDIS_URL: do not wait for the workers to embed")
    imp.add_argument("--site", help="Stack Exchange dumps: the site in external ids (default: the dump's folder)")
    reindex = sub.add_parser("reindex", help="re-embed every question with the current model")
    reindex.add_argument("--stale", action="store_true", help="only those without a vector of the current model")
    reindex.add_argument("--no-wait", action="store_true", help="with REDIS_URL: do not wait for the workers")
    export = sub.add_parser("export", help="write the whole forum as JSON Lines (FILE.gz: compressed)")
    export.add_argument("file")
    return parser


RESOURCE_COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "createuser": _createuser,
    "token": _token,
    "reset-link": _reset_link,
    "demo": _seed_demo,
    "import": _import,
    "reindex": _reindex,
    "export": _export,
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings)
    try:
        if args.command == "serve":
            return cmd_serve(settings, args)
        if args.command == "worker":
            from workers.settings import run_worker

            return run_worker(settings, metrics_port=args.metrics_port)
        return asyncio.run(_run_with_resources(settings, RESOURCE_COMMANDS[args.command], args))
    except (SwarmError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
