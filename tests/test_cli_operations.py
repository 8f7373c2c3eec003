"""The operator CLI as a subprocess against a temporary database, beside a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

from lassod.clock import now_ms
from lassod.store.deliveries import insert_delivery
from lassod.web.keycache import KEY_CACHE_TTL_S
from tests.catalog_support import create_attribute, subscribe
from tests.conftest import eventually
from tests.delivery_helpers import company_of, complete, create_table, wait_for_status


async def run_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run `python -m lassod ARGS` on tmp_path/lassod.db; return (code, stdout, stderr)."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("LASSOD_")
    }
    environ["LASSOD_DATABASE_PATH"] = str(tmp_path / "lassod.db")
    environ["LASSOD_LOG_FORMAT"] = "json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lassod",
        *args,
        cwd=tmp_path,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        stdout, stderr = await process.communicate()
    return process.returncode, stdout.decode(), stderr.decode()


async def test_keys_create_list_revoke(tmp_path):
    code, key, _ = await run_cli(tmp_path, "keys", "create", "--company", "acme")
    assert code == 0
    key = key.strip()
    assert key.startswith("lasso_")

    code, listing, _ = await run_cli(tmp_path, "keys", "list")
    assert code == 0
    [line] = listing.splitlines()
    key_id, company, prefix, created, state = line.split("\t")
    assert key_id.startswith("key_")
    assert company == "acme"
    assert prefix == key[:10] + "..."
    assert created.endswith("Z")
    assert state == "active"
    assert key not in listing

    code, _, message = await run_cli(tmp_path, "keys", "revoke", key_id)
    assert code == 0
    assert key_id in message
    code, listing, _ = await run_cli(tmp_path, "keys", "list")
    assert listing.split("\t")[-1].startswith("revoked ")

    code, _, message = await run_cli(tmp_path, "keys", "revoke", key_id)
    assert code == 1
    assert "no active key" in message


async def test_revoked_key_rejected_by_api(lassod, tmp_path):
    key = await lassod.new_key()
    status, _ = await lassod.request("GET", "/api/v1/tables", key)
    assert status == 200
    _, listing, _ = await run_cli(tmp_path, "keys", "list")
    key_id = listing.split("\t")[0]
    code, _, _ = await run_cli(tmp_path, "keys", "revoke", key_id)
    assert code == 0

    async def rejected() -> bool:
        status, body = await lassod.request("GET", "/api/v1/tables", key)
        return status == 401 and body["error_type"] == "unauthenticated"

    # Lookups are cached for a second, so revocation takes that long at most.
    await eventually(rejected, timeout_s=KEY_CACHE_TTL_S + 2)


async def test_deliveries_list_show_redeliver(lassod, tmp_path, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key("acme")
    await lassod.new_key("globex")
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    [first] = await receiver.wait_for(1)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    delivery_id = listing["data"][0]["id"]
    await wait_for_status(lassod, key, delivery_id, "succeeded")

    code, output, _ = await run_cli(tmp_path, "deliveries", "list")
    assert code == 0
    [line] = output.splitlines()
    fields = line.split("\t")
    assert fields[0] == delivery_id
    assert fields[1] == "acme"
    assert fields[2:6] == ["succeeded", "table.completed", table["id"], "1"]
    _, output, _ = await run_cli(
        tmp_path, "deliveries", "list", "--status", "abandoned"
    )
    assert output == ""
    _, output, _ = await run_cli(tmp_path, "deliveries", "list", "--company", "globex")
    assert output == ""
    code, output, _ = await run_cli(tmp_path, "deliveries", "list", "--company", "acme")
    assert output.split("\t")[0] == delivery_id
    code, _, message = await run_cli(
        tmp_path, "deliveries", "list", "--company", "nobody"
    )
    assert code == 1
    assert "nobody" in message

    code, output, _ = await run_cli(tmp_path, "deliveries", "show", delivery_id)
    assert code == 0
    shown = json.loads(output)
    assert shown["id"] == delivery_id
    assert shown["attempts"][0]["status_code"] == 200
    assert shown["event"]["body"] == json.loads(first.body)

    # The running daemon must find a delivery another process queued.
    code, output, _ = await run_cli(tmp_path, "deliveries", "redeliver", delivery_id)
    assert code == 0
    new_id = output.strip()
    assert new_id.startswith("dlv_")
    [_, second] = await receiver.wait_for(2, timeout_s=5)
    assert second.body == first.body
    assert second.headers["X-Lasso-Event-Id"] == first.headers["X-Lasso-Event-Id"]
    detail = await wait_for_status(lassod, key, new_id, "succeeded")
    assert detail["redelivery_of"] == delivery_id


async def test_redeliver_to_removed_webhook(lassod, tmp_path, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key("acme")
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    delivery_id = listing["data"][0]["id"]
    await wait_for_status(lassod, key, delivery_id, "succeeded")
    status, _ = await lassod.request(
        "PATCH", f"/api/v1/tables/{table['id']}", key, json={"webhook_url": None}
    )
    assert status == 200

    code, output, message = await run_cli(
        tmp_path, "deliveries", "redeliver", delivery_id
    )

    assert code == 1
    assert output == ""
    assert message == (
        f"lassod: cannot redeliver {delivery_id!r}:"
        " its table has no webhook_url any more\n"
    )


async def test_redeliver_to_deleted_subscription(lassod, tmp_path, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key("acme")
    subscription = await subscribe(lassod, key, receiver, ["attribute.created"])
    await create_attribute(lassod, key, "colour")
    await receiver.wait_for(1)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    delivery_id = listing["data"][0]["id"]
    await wait_for_status(lassod, key, delivery_id, "succeeded")
    status, _ = await lassod.request(
        "DELETE", f"/api/v1/catalog/webhooks/{subscription['id']}", key
    )
    assert status == 204

    code, output, message = await run_cli(
        tmp_path, "deliveries", "redeliver", delivery_id
    )

    assert code == 1
    assert output == ""
    assert message == (
        f"lassod: cannot redeliver {delivery_id!r}: its subscription was deleted\n"
    )


async def test_deliveries_unknown_id(tmp_path):
    code, _, _ = await run_cli(tmp_path, "keys", "create", "--company", "acme")
    assert code == 0
    code, _, message = await run_cli(tmp_path, "deliveries", "show", "dlv_missing")
    assert code == 1
    assert "dlv_missing" in message
    code, _, message = await run_cli(tmp_path, "deliveries", "redeliver", "dlv_missing")
    assert code == 1
    assert "dlv_missing" in message


async def test_external_delivery_inside_window_is_sent(lassod, tmp_path, make_receiver):
    """A delivery another process inserts, due now, is sent without a restart."""
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    original = listing["data"][0]["id"]
    await wait_for_status(lassod, key, original, "succeeded")

    loop = asyncio.get_running_loop()
    for count in (2, 3):
        code, _, _ = await run_cli(tmp_path, "deliveries", "redeliver", original)
        assert code == 0
        queued_at = loop.time()
        await receiver.wait_for(count, timeout_s=5)
        # The daemon checks for other writers twice a second and sleeps at most
        # 1 s, so 3 s leaves room for a slow machine.
        assert loop.time() - queued_at < 3.0

    async def all_succeeded() -> bool:
        _, body = await lassod.request(
            "GET", "/api/v1/deliveries?status=succeeded", key
        )
        return body["pagination"]["total"] == 3

    await eventually(all_succeeded)


async def test_external_delivery_due_later_is_sent(lassod, tmp_path, make_receiver):
    """A delivery another process queues for later inside the window is sent on time."""
    receiver = await make_receiver()
    key = await lassod.new_key()
    table = await create_table(lassod, key, webhook_url=receiver.url)
    await complete(lassod, key, table["id"])
    await receiver.wait_for(1)
    _, listing = await lassod.request("GET", "/api/v1/deliveries", key)
    original = listing["data"][0]

    company = await company_of(lassod)
    due_ms = now_ms() + 1500

    def insert_from_another_connection() -> None:
        connection = sqlite3.connect(tmp_path / "lassod.db", isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            insert_delivery(
                connection, original["event"]["id"], company, table["id"], due_ms
            )
            connection.execute("COMMIT")
        finally:
            connection.close()

    # In a thread, so that waiting for the write lock never stalls the daemon.
    await asyncio.to_thread(insert_from_another_connection)

    [_, second] = await receiver.wait_for(2, timeout_s=5)
    arrived_ms = now_ms()
    assert arrived_ms >= due_ms
    assert arrived_ms - due_ms < 1500
    assert second.headers["X-Lasso-Event-Id"] == original["event"]["id"]
