"""Per-host admission and the settings that size it."""

from __future__ import annotations

import asyncio

import pytest

from lassod.admission import HostAdmission, host_key
from lassod.config import ConfigError, DeliverySettings, load_settings
from lassod.scheduler import MOVE_BATCH_S, Scheduler
from lassod.store import Database


def test_host_key_includes_scheme_and_default_port():
    assert (
        host_key("https://Hooks.Example.test/a?b") == "https://hooks.example.test:443"
    )
    assert host_key("http://hooks.example.test/a") == "http://hooks.example.test:80"
    assert host_key("http://127.0.0.1:8080/a") == "http://127.0.0.1:8080"
    assert host_key("http://[::1]:9/a") == "http://::1:9"


def test_admission_parks_beyond_limit():
    admission = HostAdmission(limit=2)
    due = [(1, "d1"), (2, "d2"), (3, "d3"), (4, "other")]
    hosts = {"d1": "h", "d2": "h", "d3": "h", "other": "o"}

    admitted = admission.admit(due, hosts)

    assert admitted == ["d1", "d2", "other"]
    assert admission.parked == 1


def test_admission_release_hands_back_parked_in_order():
    admission = HostAdmission(limit=1)
    admission.admit(
        [(1, "d1"), (2, "d2"), (3, "d3")], {"d1": "h", "d2": "h", "d3": "h"}
    )

    first = admission.release("d1", timed_out=False)
    again = admission.admit(first, {"d2": "h"})
    second = admission.release("d2", timed_out=False)

    assert first == [(2, "d2")]
    assert again == ["d2"]
    assert second == [(3, "d3")]
    assert admission.parked == 0


def test_admission_admits_unknown_delivery_without_counting():
    admission = HostAdmission(limit=1)

    admitted = admission.admit([(1, "gone")], {})

    assert admitted == ["gone"]
    assert admission.release("gone") == []


@pytest.mark.parametrize(
    ("max_concurrency", "per_host", "expected"),
    [(100, None, 25), (4, None, 1), (1, None, 1), (10, 50, 10), (10, 3, 3)],
)
def test_per_host_limit(max_concurrency, per_host, expected):
    settings = DeliverySettings(
        max_concurrency=max_concurrency, max_concurrency_per_host=per_host
    )

    assert settings.per_host_limit == expected


def test_security_settings_from_environment(tmp_path):
    environ = {
        "LASSOD_SECURITY_ALLOWED_CIDRS": '["10.0.0.0/8", "fd00::/8"]',
        "LASSOD_SECURITY_REQUIRE_HTTPS": "true",
        "LASSOD_SERVER_RATE_LIMIT_PER_S": "5",
        "LASSOD_DELIVERY_MAX_CONCURRENCY_PER_HOST": "7",
    }

    config = tmp_path / "lassod.toml"
    config.write_text("")
    settings = load_settings(config, environ)

    assert settings.security.allowed_cidrs == ("10.0.0.0/8", "fd00::/8")
    assert settings.security.require_https is True
    assert settings.server.rate_limit_per_s == 5.0
    assert settings.delivery.max_concurrency_per_host == 7


def test_allowed_cidrs_comma_separated(tmp_path):
    config = tmp_path / "lassod.toml"
    config.write_text("")

    settings = load_settings(
        config, {"LASSOD_SECURITY_ALLOWED_CIDRS": "10.0.0.0/8, ::1/128"}
    )

    assert settings.security.allowed_cidrs == ("10.0.0.0/8", "::1/128")


@pytest.mark.parametrize("value", ['["10.0.0.1/8"]', '["not a range"]', "[1]", "true"])
def test_invalid_allowed_cidrs_named_in_error(tmp_path, value):
    config = tmp_path / "lassod.toml"
    config.write_text(f"[security]\nallowed_cidrs = {value}\n")

    with pytest.raises(ConfigError) as raised:
        load_settings(config, {})

    assert "security.allowed_cidrs" in str(raised.value)


def test_unpark_all_returns_every_parked_delivery():
    admission = HostAdmission(limit=1)
    hosts = {"d1": "http://a:80", "d2": "http://a:80", "d3": "http://b:80", "d4": "http://b:80"}
    due = [(1, "d1"), (2, "d2"), (3, "d3"), (4, "d4")]
    assert admission.admit(due, hosts) == ["d1", "d3"]

    assert sorted(admission.unpark_all()) == [(2, "d2"), (4, "d4")]
    assert admission.parked == 0
    # The admitted ones still count: their hosts stay full.
    assert admission.admit([(5, "d5")], {"d5": "http://a:80"}) == []


def test_host_timing_out_gets_quarter_limit():
    admission = HostAdmission(limit=8)
    hosts = {f"d{index}": "h" for index in range(20)}
    assert len(admission.admit([(1, f"d{index}") for index in range(8)], hosts)) == 8
    for index in range(8):
        admission.release(f"d{index}", timed_out=True)

    assert admission.limit_of("h") == 2
    admitted = admission.admit([(2, f"d{index}") for index in range(8, 12)], hosts)
    assert admitted == ["d8", "d9"]
    assert admission.parked == 2


def test_answer_restores_full_limit_and_unparks():
    admission = HostAdmission(limit=8)
    hosts = {f"d{index}": "h" for index in range(20)}
    admission.admit([(1, f"d{index}") for index in range(8)], hosts)
    for index in range(8):
        admission.release(f"d{index}", timed_out=True)
    admission.admit([(2, f"d{index}") for index in range(8, 14)], hosts)
    assert admission.parked == 4

    # One attempt got a response, so the host has its 8 slots again.
    released = admission.release("d8", timed_out=False)

    assert admission.limit_of("h") == 8
    assert released == [(2, "d10"), (2, "d11"), (2, "d12"), (2, "d13")]


def test_cut_short_attempt_keeps_timeout_streak():
    admission = HostAdmission(limit=4)
    hosts = {f"d{index}": "h" for index in range(6)}
    admission.admit([(1, f"d{index}") for index in range(5)], hosts)
    for index in range(3):
        admission.release(f"d{index}", timed_out=True)
    # A stopped attempt or a start taken back leaves the streak as it is.
    admission.release("d3", timed_out=None)
    assert admission.limit_of("h") == 4

    admission.admit([(2, "d4")], hosts)
    admission.release("d4", timed_out=True)
    assert admission.limit_of("h") == 1


async def test_endpoint_move_unparks_only_its_deliveries(tmp_path):
    database = await Database.open(str(tmp_path / "moves.db"))
    try:
        settings = DeliverySettings(max_concurrency=4)
        scheduler = Scheduler(database, sender=None, settings=settings)  # type: ignore[arg-type]
        old = "http://127.0.0.1:1/hook"
        neighbour = "http://127.0.0.1:1/other"
        scheduler._known.update({"d1": old, "d2": old, "d3": neighbour})
        hosts = {"d1": host_key(old), "d2": host_key(old), "d3": host_key(neighbour)}
        # A per-host limit of 1: d1 is in flight, d2 and d3 wait parked.
        scheduler._admission.admit([(1, "d1"), (2, "d2"), (3, "d3")], hosts)

        scheduler.endpoint_moved(old, "http://127.0.0.1:1/renamed")
        await asyncio.sleep(3 * MOVE_BATCH_S)
        assert scheduler._admission.parked == 2
        assert scheduler._known["d2"] == old

        scheduler.endpoint_moved(old, "http://127.0.0.1:2/hook")
        await asyncio.sleep(3 * MOVE_BATCH_S)
        assert scheduler._heap == [(2, "d2")]
        assert scheduler._admission.parked == 1
        assert scheduler._known["d1"] is None
        assert scheduler._known["d2"] is None
        assert scheduler._known["d3"] == neighbour
    finally:
        await database.close()


def test_company_limit_counts_unproven_hosts():
    admission = HostAdmission(limit=10, company_limit=2)
    due = [(1, "a1"), (2, "a2"), (3, "a3"), (4, "b1")]
    hosts = {"a1": "h1", "a2": "h2", "a3": "h3", "b1": "h4"}
    companies = {"a1": "A", "a2": "A", "a3": "A", "b1": "B"}

    admitted = admission.admit(due, hosts, companies)

    assert admitted == ["a1", "a2", "b1"]
    assert admission.parked == 1
    # A slow end frees the company's room but proves nothing.
    assert admission.release("a1", timed_out=True, fast=False) == [(3, "a3")]
    assert admission.admit([(3, "a3")], hosts, companies) == ["a3"]


def test_proven_host_leaves_company_limit():
    admission = HostAdmission(limit=10, company_limit=1)
    hosts = {"a1": "fast", "a2": "fast", "a3": "fast", "slow": "slow"}
    companies = {key: "A" for key in hosts}
    assert admission.admit([(1, "a1"), (2, "a2"), (3, "slow")], hosts, companies) == [
        "a1"
    ]
    assert admission.parked == 2

    # a1 responded fast, so its host is proven, and the parked deliveries of its
    # company come back to be admitted anew.
    released = admission.release("a1", timed_out=False, fast=True)
    assert sorted(released) == [(2, "a2"), (3, "slow")]
    assert admission.admit(released + [(4, "a3")], hosts, companies) == [
        "a2",
        "slow",
        "a3",
    ]
    # Only "slow" counts against the company now, so more to "fast" may start.
    assert admission.admit([(5, "x")], {"x": "slow"}, {"x": "A"}) == []
    assert admission.admit([(6, "y")], {"y": "fast"}, {"y": "A"}) == ["y"]


def test_slow_answer_unproves_host():
    admission = HostAdmission(limit=10, company_limit=1)
    hosts = {"d1": "h", "d2": "h", "d3": "h"}
    companies = {key: "A" for key in hosts}
    admission.admit([(1, "d1")], hosts, companies)
    admission.release("d1", timed_out=False, fast=True)
    assert admission.admit([(2, "d2"), (3, "d3")], hosts, companies) == ["d2", "d3"]

    admission.release("d2", timed_out=True, fast=False)
    assert admission.admit([(4, "d4")], {"d4": "h"}, {"d4": "A"}) == ["d4"]
    assert admission.admit([(5, "d5")], {"d5": "h"}, {"d5": "A"}) == []


def test_unproven_limit_setting():
    assert DeliverySettings(max_concurrency=100).unproven_limit == 50
    assert DeliverySettings(max_concurrency=1).unproven_limit == 1
    settings = DeliverySettings(max_concurrency=10, max_unproven_per_company=30)
    assert settings.unproven_limit == 10
