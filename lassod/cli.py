"""Command line: `lassod [--config PATH] [serve]` and `lassod keys ...`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Sequence

from lassod import __version__, logs
from lassod.clock import iso_us, now_us
from lassod.config import ConfigError, Settings, load_settings
from lassod.ids import hash_api_key, new_api_key
from lassod.store import Database, StoreError
from lassod.store import keys as key_queries


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lassod",
        description="Serve the Lasso API and deliver its webhooks.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML settings file (default: ./lassod.toml when it exists, "
        "else built-in defaults); LASSOD_<SECTION>_<KEY> variables override it",
    )
    parser.add_argument("--version", action="version", version=f"lassod {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "serve", help="run the daemon (the default command)",
        description="Run the API server and the webhook scheduler until SIGTERM or SIGINT.",
    )

    keys = commands.add_parser(
        "keys", help="manage API keys", description="Create, list and revoke API keys."
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = key_commands.add_parser(
        "create",
        help="create an API key and print it",
        description="Create an API key for a company (created if new) and print "
        "the key alone on stdout. The key is shown only this once.",
    )
    create.add_argument("--company", required=True, metavar="NAME", help="company the key belongs to")
    key_commands.add_parser(
        "list", help="list API keys", description="List key ids, companies and states; never the keys."
    )
    revoke = key_commands.add_parser(
        "revoke", help="revoke an API key", description="Revoke a key by its id (from `keys list`)."
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="id of the key, such as key_0123...")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"lassod: {error}", file=sys.stderr)
        return 2
    if args.command in (None, "serve"):
        return _serve(settings, args.config)
    logs.configure(settings.log.level, settings.log.format, stream=sys.stderr)
    try:
        return asyncio.run(_keys(settings, args))
    except StoreError as error:
        print(f"lassod: {error}", file=sys.stderr)
        return 1


def _serve(settings: Settings, config_path: str | None) -> int:
    from lassod.daemon import serve

    logs.configure(settings.log.level, settings.log.format)
    try:
        _run_event_loop(serve(settings, config_path))
    except StoreError as error:
        logs.logger.error("lassod_start_failed", error=str(error))
        return 1
    except OSError as error:
        logs.logger.error("lassod_start_failed", error=str(error))
        return 1
    return 0


def _run_event_loop(coroutine: object) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)  # type: ignore[arg-type]
    else:
        uvloop.run(coroutine)  # type: ignore[arg-type]


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    database = await Database.open(settings.database.path)
    try:
        if args.keys_command == "create":
            key = new_api_key()
            await database.transaction(
                key_queries.insert_api_key, args.company, hash_api_key(key), key[:10], now_us()
            )
            print(key)
            return 0
        if args.keys_command == "list":
            for row in await database.read(key_queries.list_api_keys):
                state = "active" if row.revoked_us is None else f"revoked {iso_us(row.revoked_us)}"
                print(f"{row.id}\t{row.company_name}\t{row.key_prefix}...\t{iso_us(row.created_us)}\t{state}")
            return 0
        revoked = await database.transaction(key_queries.revoke_api_key, args.key_id, now_us())
        if not revoked:
            print(f"lassod: no active key with id {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}", file=sys.stderr)
        return 0
    finally:
        await database.close()
