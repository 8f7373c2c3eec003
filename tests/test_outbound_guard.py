"""The outbound address guard end to end: hostile targets never get a request.

All traffic stays on 127.0.0.1 and ::1. Host names go through a stub resolver,
and resolved addresses that stand for public ones are checked without connecting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress

import pytest
from aiohttp import web

from lassod.config import DeliverySettings, SecuritySettings
from lassod.delivery import Sender
from lassod.netguard import AddressPolicy
from lassod.resolver import BlockedTargetError, GuardedResolver
from tests.conftest import eventually, make_settings
from tests.test_retry import job as retry_job
from tests.security_helpers import (
    StubResolver,
    attempt_rows,
    complete_table,
    create_table,
    webhook_status,
)

GUARDED = {"allow_private_targets": False}


def guarded_settings(tmp_path, allowed_cidrs=(), **security):
    return make_settings(
        tmp_path,
        security={**GUARDED, "allowed_cidrs": tuple(allowed_cidrs), **security},
    )


async def deliver_once(lassod, url):
    """Create a table with a webhook to url, complete it, and return its id."""
    key = await lassod.new_key()
    status, table = await create_table(lassod, key, webhook_url=url)
    assert status == 201, table
    await complete_table(lassod, key, table["id"])
    return key, table["id"]


async def wait_for_status(lassod, key, table_id, expected):
    async def reached() -> bool:
        return await webhook_status(lassod, key, table_id) == expected

    await eventually(reached)


def port_of(receiver):
    return int(receiver.url.rsplit(":", 1)[1].split("/")[0])


async def test_name_resolving_to_loopback_blocked(
    start_lassod, tmp_path, make_receiver, captured_logs
):
    receiver = await make_receiver()
    resolver = StubResolver({"hooks.example.test": [["127.0.0.1"]]})
    lassod = await start_lassod(guarded_settings(tmp_path), resolver=resolver)
    url = f"http://hooks.example.test:{port_of(receiver)}/hook"

    key, table_id = await deliver_once(lassod, url)

    await wait_for_status(lassod, key, table_id, "abandoned")
    rows = await attempt_rows(lassod)
    assert [row.error_kind for row in rows] == ["blocked_address"] * 4
    assert receiver.received == []
    blocked = [
        entry for entry in captured_logs if entry["event"] == "delivery_target_blocked"
    ]
    assert len(blocked) == 4
    assert blocked[0]["host"] == "hooks.example.test"
    assert blocked[0]["reasons"] == ["loopback"]
    assert blocked[0]["log_level"] == "warning"


async def test_name_allowed_by_matching_cidr_only(
    start_lassod, tmp_path, make_receiver
):
    receiver = await make_receiver()
    resolver = StubResolver({"hooks.example.test": [["127.0.0.1"]]})
    url = f"http://hooks.example.test:{port_of(receiver)}/hook"
    unrelated = await start_lassod(
        guarded_settings(tmp_path / "unrelated", ["10.0.0.0/8", "::1/128"]),
        resolver=resolver,
    )
    matching = await start_lassod(
        guarded_settings(tmp_path / "matching", ["127.0.0.1/32"]), resolver=resolver
    )

    blocked_key, blocked_table = await deliver_once(unrelated, url)
    allowed_key, allowed_table = await deliver_once(matching, url)

    await wait_for_status(matching, allowed_key, allowed_table, "succeeded")
    await wait_for_status(unrelated, blocked_key, blocked_table, "abandoned")
    assert len(receiver.received) == 1


async def test_localhost_blocked_by_default(start_lassod, tmp_path, make_receiver):
    # Stubbed as well: a system without localhost in /etc/hosts would ask DNS.
    receiver = await make_receiver()
    resolver = StubResolver({"localhost": [["::1", "127.0.0.1"]]})
    lassod = await start_lassod(guarded_settings(tmp_path), resolver=resolver)

    key, table_id = await deliver_once(
        lassod, f"http://localhost:{port_of(receiver)}/hook"
    )

    await wait_for_status(lassod, key, table_id, "abandoned")
    assert receiver.received == []


@pytest.fixture
async def dual_receiver():
    """Receivers on 127.0.0.1 and ::1 sharing one port: (hits per address, port)."""
    hits: dict[str, int] = {"127.0.0.1": 0, "::1": 0}

    async def handle(request: web.Request) -> web.Response:
        local = request.transport.get_extra_info("sockname")[0]
        hits[local] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    await web.TCPSite(runner, "::1", port).start()
    yield hits, port
    await runner.cleanup()


async def test_mixed_answer_connects_to_allowed_address_only(
    start_lassod, tmp_path, dual_receiver
):
    hits, port = dual_receiver
    resolver = StubResolver({"mixed.example.test": [["::1", "127.0.0.1"]]})
    lassod = await start_lassod(
        guarded_settings(tmp_path, ["127.0.0.1/32"]), resolver=resolver
    )

    key, table_id = await deliver_once(lassod, f"http://mixed.example.test:{port}/hook")

    await wait_for_status(lassod, key, table_id, "succeeded")
    assert hits == {"127.0.0.1": 1, "::1": 0}


async def test_rebinding_answer_never_reaches_connect(
    start_lassod, tmp_path, dual_receiver
):
    # The first lookup returns an allowed address, every later one a blocked
    # address. Checking one result and connecting to another would hit ::1.
    hits, port = dual_receiver
    resolver = StubResolver({"rebind.example.test": [["127.0.0.1"], ["::1"]]})
    lassod = await start_lassod(
        guarded_settings(tmp_path, ["127.0.0.1/32"]), resolver=resolver
    )

    key, table_id = await deliver_once(lassod, f"http://rebind.example.test:{port}/h")

    await wait_for_status(lassod, key, table_id, "succeeded")
    assert hits == {"127.0.0.1": 1, "::1": 0}


async def test_guarded_resolver_rebinding_public_then_private():
    inner = StubResolver({"rebind.example.test": [["93.184.216.34"], ["127.0.0.1"]]})
    resolver = GuardedResolver(AddressPolicy(), inner)

    first = await resolver.resolve("rebind.example.test", 443)
    with pytest.raises(BlockedTargetError) as raised:
        await resolver.resolve("rebind.example.test", 443)

    assert [answer["host"] for answer in first] == ["93.184.216.34"]
    assert raised.value.host == "rebind.example.test"
    assert [item.reason for item in raised.value.blocked] == ["loopback"]


async def test_guarded_resolver_drops_private_answers():
    inner = StubResolver(
        {"split.example.test": [["10.0.0.7", "93.184.216.34", "fd00::1"]]}
    )
    resolver = GuardedResolver(AddressPolicy(), inner)

    answers = await resolver.resolve("split.example.test", 443)

    assert [answer["host"] for answer in answers] == ["93.184.216.34"]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "[fd00:ec2::254]",
        "[fe80::1%25lo]",
        "0.0.0.0",
    ],
)
async def test_literal_target_rejected_at_creation(lassod_guarded, host):
    key = await lassod_guarded.new_key()

    status, body = await create_table(
        lassod_guarded, key, webhook_url=f"http://{host}:9/h"
    )

    assert status == 422
    assert body["field"] == "webhook_url"
    assert "allowed_cidrs" in body["message"]


@pytest.fixture
async def lassod_guarded(start_lassod, tmp_path):
    return await start_lassod(guarded_settings(tmp_path))


async def test_literal_target_accepted_with_matching_cidr(start_lassod, tmp_path):
    lassod = await start_lassod(guarded_settings(tmp_path, ["127.0.0.0/8"]))
    key = await lassod.new_key()

    allowed, _ = await create_table(lassod, key, webhook_url="http://127.0.0.1:9/h")
    blocked, _ = await create_table(lassod, key, webhook_url="http://[::1]:9/h")

    assert allowed == 201
    assert blocked == 422


async def test_http_rejected_when_https_required(start_lassod, tmp_path):
    lassod = await start_lassod(guarded_settings(tmp_path, require_https=True))
    key = await lassod.new_key()

    status, body = await create_table(lassod, key, webhook_url="http://example.test/h")

    assert status == 422
    assert body["field"] == "webhook_url"
    assert "https" in body["message"]


async def test_user_info_rejected(lassod):
    key = await lassod.new_key()

    status, body = await create_table(
        lassod, key, webhook_url="https://user:secret@example.test/h"
    )

    assert status == 422
    assert body["field"] == "webhook_url"


async def complete_after_restart(start_lassod, tmp_path, url, settings):
    """Create a table with private targets allowed, restart, complete it."""
    open_lassod = await start_lassod(make_settings(tmp_path))
    key = await open_lassod.new_key()
    status, table = await create_table(open_lassod, key, webhook_url=url)
    assert status == 201
    await open_lassod.daemon.stop()

    lassod = await start_lassod(settings)
    await complete_table(lassod, key, table["id"])
    return lassod, key, table["id"]


async def test_tightened_settings_block_stored_literal(
    start_lassod, tmp_path, make_receiver
):
    # A URL accepted under allow_private_targets is checked again at delivery
    # after the operator restarts with the default guard.
    receiver = await make_receiver()

    lassod, key, table_id = await complete_after_restart(
        start_lassod, tmp_path, receiver.url, guarded_settings(tmp_path)
    )

    await wait_for_status(lassod, key, table_id, "abandoned")
    rows = await attempt_rows(lassod)
    assert {row.error_kind for row in rows} == {"blocked_address"}
    assert receiver.received == []


async def test_tightened_https_blocks_stored_http(
    start_lassod, tmp_path, make_receiver
):
    receiver = await make_receiver()
    settings = make_settings(
        tmp_path, security={"allow_private_targets": True, "require_https": True}
    )

    lassod, key, table_id = await complete_after_restart(
        start_lassod, tmp_path, receiver.url, settings
    )

    await wait_for_status(lassod, key, table_id, "abandoned")
    rows = await attempt_rows(lassod)
    assert {row.error_kind for row in rows} == {"blocked_address"}
    assert receiver.received == []


@pytest.mark.parametrize("target", ["other_port", "ipv6_loopback"])
async def test_redirect_not_followed(start_lassod, tmp_path, make_receiver, target):
    other = await make_receiver()
    location = (
        other.url if target == "other_port" else f"http://[::1]:{port_of(other)}/h"
    )

    async def redirect(request: web.Request, number: int) -> web.Response:
        raise web.HTTPFound(location)

    receiver = await make_receiver(redirect)
    resolver = StubResolver({"hooks.example.test": [["127.0.0.1"]]})
    lassod = await start_lassod(
        guarded_settings(tmp_path, ["127.0.0.1/32"]), resolver=resolver
    )

    key, table_id = await deliver_once(
        lassod, f"http://hooks.example.test:{port_of(receiver)}/hook"
    )

    await wait_for_status(lassod, key, table_id, "abandoned")
    rows = await attempt_rows(lassod)
    assert [row.status_code for row in rows] == [302] * 4
    assert len(receiver.received) == 4
    await asyncio.sleep(0.1)
    assert other.received == []


def test_allowed_cidrs_parsed_into_policy():
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))

    assert policy.blocked_reason(ipaddress.ip_address("127.0.0.2")) is None
    assert policy.blocked_reason(ipaddress.ip_address("::1")) == "loopback"


async def test_unencodable_stored_url_fails():
    """A URL stored before the API checked hosts is a failure, not a crash."""
    job = retry_job()
    sender = Sender.create(DeliverySettings(), SecuritySettings())
    try:
        result = await sender.send(
            dataclasses.replace(job, url="http://a\u200b.example.com/hook")
        )
    finally:
        await sender.close()

    assert not result.succeeded
    assert result.error_kind == "invalid_url"
