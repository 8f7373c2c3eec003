"""Command line: `lassod [--config PATH] [serve]`, `lassod keys ...` and
`lassod deliveries ...`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import unicodedata
from typing import Any, Coroutine, Sequence, TypeVar

import orjson

from lassod import __version__, deliveries, logs
from lassod.clock import iso_ms, iso_us, now_ms, now_us
from lassod.config import ConfigError, Settings, load_settings
from lassod.ids import hash_api_key, new_api_key
from lassod.store import Database, DatabaseError, StoreError, history
from lassod.store import deliveries as delivery_queries
from lassod.store import keys as key_queries
from lassod.store.history import DeliveryFilter

Result = TypeVar("Result")


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
        "revoke",
        help="revoke an API key",
        description=(
            "Revoke a key by its id (from `keys list`). A running daemon"
            " refuses it within a second."
        ),
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="id of the key, such as key_0123...")
    _add_delivery_commands(commands)
    return parser


def _add_delivery_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "deliveries",
        help="inspect and redeliver webhook deliveries",
        description="List, show and redeliver webhook deliveries of every company. "
        "A redelivery is picked up by a running daemon within about a second.",
    )
    actions = parser.add_subparsers(
        dest="deliveries_command", metavar="ACTION", required=True
    )
    listing = actions.add_parser(
        "list",
        help="list deliveries, newest first",
        description="Print one tab-separated line per delivery: id, company name, "
        "status, event, endpoint, attempts, created time, next attempt time and "
        "reason.",
    )
    listing.add_argument(
        "--status", choices=deliveries.STATUSES, help="only this status"
    )
    listing.add_argument(
        "--company",
        metavar="NAME",
        help="only deliveries of the company with this name",
    )
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=50,
        metavar="N",
        help="print at most N deliveries (default 50)",
    )
    show = actions.add_parser(
        "show",
        help="show one delivery as JSON",
        description="Print the delivery with its event body and every attempt as JSON.",
    )
    show.add_argument(
        "delivery_id", metavar="ID", help="id of the delivery, such as dlv_0123..."
    )
    redeliver = actions.add_parser(
        "redeliver",
        help="send a delivery's event again",
        description="Queue a new delivery of the same event to the same endpoint, due "
        "now with a fresh retry schedule, and print its id.",
    )
    redeliver.add_argument(
        "delivery_id", metavar="ID", help="id of the delivery to copy"
    )


# SQLite integers are signed 64-bit, so a larger LIMIT makes sqlite3 raise
# OverflowError.
_MAX_SQLITE_INTEGER = 2**63 - 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= _MAX_SQLITE_INTEGER:
        raise argparse.ArgumentTypeError(
            f"expected an integer from 1 to {_MAX_SQLITE_INTEGER}, got {text!r}"
        )
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"lassod: {error}", file=sys.stderr)
        return 2
    if args.command in (None, "serve"):
        return _serve(settings, args.config)
    path = settings.database.path
    if not _creates_database(args) and _database_missing(path):
        print(
            f"lassod: database {path!r} does not exist; "
            "start the daemon once or check database.path",
            file=sys.stderr,
        )
        return 2
    logs.configure(settings.log.level, settings.log.format, stream=sys.stderr)
    command = _keys if args.command == "keys" else _deliveries
    try:
        return asyncio.run(command(settings, args))
    except StoreError as error:
        print(f"lassod: {error}", file=sys.stderr)
        return 1
    except DatabaseError as error:
        # A read-only, locked or failing database file, for example.
        print(f"lassod: database {path!r} failed: {error}", file=sys.stderr)
        return 1


def _creates_database(args: argparse.Namespace) -> bool:
    """Return whether an operator command may create a missing database.

    Besides `serve`, only `keys create` may. The other commands read or change
    existing rows, so for them a missing file means a wrong database.path.
    """
    return args.command == "keys" and args.keys_command == "create"


def _database_missing(path: str) -> bool:
    """Return whether the database file is missing.

    SQLite URIs and :memory: are left for SQLite to open.
    """
    if path == ":memory:" or path.startswith("file:"):
        return False
    return not os.path.exists(path)


def _serve(settings: Settings, config_path: str | None) -> int:
    from lassod.daemon import serve

    logs.configure(settings.log.level, settings.log.format)
    started = _run_event_loop(serve(settings, config_path))
    return 0 if started else 1


def _run_event_loop(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run the coroutine on uvloop when it is installed, else on asyncio's loop.

    The loop runs outside the `except ImportError` block, so the ImportError
    is not chained as the context of every exception raised in the loop.
    """
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    return run(coroutine)


# Unicode categories rejected in company names: control characters and the
# line and paragraph separators.
_REJECTED_CATEGORIES = ("Cc", "Zl", "Zp")
# Bidirectional formatting characters: the embeddings and overrides
# U+202A-U+202E, the isolates U+2066-U+2069 and the marks U+200E, U+200F and
# U+061C. They reorder how the text around them is displayed, so a name
# containing one can read as another company's name in `keys list`.
_BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)


def _company_name_problem(name: str) -> str | None:
    """Return why a new company name is invalid, or None if it is valid.

    Names are printed in the tab-separated lines of `keys list`, so a tab,
    newline or other control character would break that output. Names match
    exactly, so " acme" would be a second company beside "acme".
    """
    if not name.strip():
        return f"invalid company name {name!r}: the name is empty or only whitespace"
    if name != name.strip():
        return (
            f"invalid company name {name!r}: remove the whitespace at its start"
            f" or end, as in {name.strip()!r}"
        )
    if any(unicodedata.category(char) in _REJECTED_CATEGORIES for char in name):
        return (
            f"invalid company name {name!r}: remove tabs, newlines and other "
            "control characters"
        )
    for char in name:
        if char in _BIDI_CONTROLS:
            return (
                f"invalid company name {name!r}: remove the bidirectional"
                f" formatting character U+{ord(char):04X}, which changes how the"
                " name displays"
            )
    return None


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        problem = _company_name_problem(args.company)
        if problem is not None:
            print(f"lassod: {problem}", file=sys.stderr)
            return 2
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


async def _deliveries(settings: Settings, args: argparse.Namespace) -> int:
    database = await Database.open(settings.database.path)
    try:
        if args.deliveries_command == "list":
            return await _list_deliveries(database, args)
        if args.deliveries_command == "show":
            detail = await database.read(history.get_delivery, None, args.delivery_id)
            if detail is None:
                message = f"lassod: no delivery with id {args.delivery_id!r}"
                print(message, file=sys.stderr)
                return 1
            rendered = deliveries.public_detail(detail)
            print(orjson.dumps(rendered, option=orjson.OPT_INDENT_2).decode())
            return 0
        return await _redeliver(database, args.delivery_id)
    finally:
        await database.close()


async def _list_deliveries(database: Database, args: argparse.Namespace) -> int:
    company_id = None
    if args.company is not None:
        company_id = await database.read(history.company_id_by_name, args.company)
        if company_id is None:
            print(f"lassod: no company named {args.company!r}", file=sys.stderr)
            return 1
    selection = DeliveryFilter(company_id=company_id, status=args.status)
    rows, _ = await database.read(history.list_deliveries, selection, 0, args.limit)
    company_names = await database.read(key_queries.company_names)
    for row in rows:
        next_attempt = iso_ms(row.next_due_ms) if row.next_due_ms is not None else "-"
        fields = (
            row.id,
            company_names[row.company_id],
            row.status,
            row.event_name,
            row.endpoint_id,
            str(row.attempt_count),
            iso_ms(row.created_ms),
            next_attempt,
            row.reason or "-",
        )
        print("\t".join(fields))
    return 0


async def _redeliver(database: Database, delivery_id: str) -> int:
    requeue = await database.transaction(
        delivery_queries.redeliver, None, delivery_id, now_ms()
    )
    if requeue.result == "not_found":
        print(f"lassod: no delivery with id {delivery_id!r}", file=sys.stderr)
        return 1
    if requeue.result != "queued":
        reason = {
            "no_webhook": "its table has no webhook_url any more",
            "deleted": "its subscription was deleted",
        }.get(requeue.result, "its subscription is deactivated")
        print(f"lassod: cannot redeliver {delivery_id!r}: {reason}", file=sys.stderr)
        return 1
    print(requeue.queued[0].delivery_id)
    return 0
