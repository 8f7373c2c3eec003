"""API hardening: keys, body and nesting limits, rate limits, header injection."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
import os
import stat
import time

import orjson
import pytest
from multidict import CIMultiDict

from lassod import cli, logs
from lassod.web import common
from lassod.store import keys as key_queries
from lassod.web.keycache import KEY_CACHE_TTL_S, KeyCache
from lassod.web.ratelimit import TokenBuckets, client_key
from tests.catalog_support import create_attribute
from tests.conftest import make_settings
from tests.security_helpers import create_table


def without_request_id(body):
    return {name: value for name, value in body.items() if name != "request_id"}


async def raw_request(lassod, method, path, key=None, **options):
    """Send a request; return (status, headers, parsed JSON body)."""
    headers = CIMultiDict(options.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with lassod.session.request(
        method, lassod.base_url + path, headers=headers, **options
    ) as response:
        body = (
            await response.json()
            if response.content_type == "application/json"
            else None
        )
        return response.status, response.headers, body


async def post_encoded(lassod, key, data: bytes, encoding: str):
    """POST a table body with a Content-Encoding; return (status, headers, JSON)."""
    return await raw_request(
        lassod,
        "POST",
        "/api/v1/tables",
        key,
        data=data,
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )


async def test_revoked_key_gets_same_401_as_wrong_key(lassod, tmp_path):
    key = await lassod.new_key()
    [row] = await lassod.daemon.database.read(key_queries.list_api_keys)
    config = tmp_path / "lassod.toml"
    config.write_text(f'[database]\npath = "{lassod.daemon.settings.database.path}"\n')
    before, _, _ = await raw_request(lassod, "GET", "/api/v1/tables", key)

    code = await asyncio.to_thread(
        cli.main, ["--config", str(config), "keys", "revoke", row.id]
    )

    assert before == 200
    assert code == 0
    revoked = await _once_rejected(lassod, key)
    wrong = await raw_request(lassod, "GET", "/api/v1/tables", "lasso_" + "x" * 64)
    assert revoked[0] == 401
    assert wrong[0] == 401
    assert without_request_id(revoked[2]) == without_request_id(wrong[2])
    assert revoked[1]["WWW-Authenticate"] == wrong[1]["WWW-Authenticate"]
    assert "revoked" not in revoked[2]["message"]


async def _once_rejected(lassod, key):
    """Return the first response other than 200, because lookups are cached."""
    async with asyncio.timeout(KEY_CACHE_TTL_S + 2):
        while True:
            answer = await raw_request(lassod, "GET", "/api/v1/tables", key)
            if answer[0] != 200:
                return answer
            await asyncio.sleep(0.05)


async def test_revoked_key_rejected_by_store(lassod):
    key = await lassod.new_key()
    [row] = await lassod.daemon.database.read(key_queries.list_api_keys)

    await lassod.daemon.database.transaction(key_queries.revoke_api_key, row.id, 1)

    status, _ = await lassod.request("GET", "/api/v1/tables", key)
    assert status == 401


@pytest.fixture
async def small_body_lassod(start_lassod, tmp_path):
    return await start_lassod(make_settings(tmp_path, server={"max_body_bytes": 4096}))


async def test_oversize_body_gets_413(small_body_lassod):
    key = await small_body_lassod.new_key()
    body = {"name": "n", "schema_id": "s", "source_text": "x" * 10_000}

    status, _, error = await raw_request(
        small_body_lassod, "POST", "/api/v1/tables", key, json=body
    )

    assert status == 413
    assert error["error_type"] == "payload_too_large"
    assert error["status_code"] == 413
    assert "4096" in error["message"]
    assert error["request_id"]


async def test_oversize_chunked_body_gets_413(small_body_lassod):
    key = await small_body_lassod.new_key()

    async def chunks():
        yield b'{"name": "n", "schema_id": "s", "source_text": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    status, _, error = await raw_request(
        small_body_lassod,
        "POST",
        "/api/v1/tables",
        key,
        data=chunks(),
        headers={"Content-Type": "application/json"},
    )

    assert status == 413
    assert error["error_type"] == "payload_too_large"


async def test_compressed_body_limited_after_decompression(small_body_lassod):
    key = await small_body_lassod.new_key()
    text = b'{"name": "n", "schema_id": "s", "source_text": "' + b"x" * 100_000 + b'"}'
    compressed = gzip.compress(text)
    assert len(compressed) < 4096

    status, _, error = await post_encoded(small_body_lassod, key, compressed, "gzip")

    assert status == 413
    assert error["error_type"] == "payload_too_large"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_undecodable_compressed_body_rejected(lassod, captured_logs, encoding):
    key = await lassod.new_key()

    status, headers, error = await post_encoded(
        lassod, key, b"not compressed at all", encoding
    )

    assert status == 400
    assert error["error_type"] == "invalid_request"
    assert f"not valid {encoding} data" in error["message"]
    assert not [entry for entry in captured_logs if "exc_info" in entry]
    assert not [entry for entry in captured_logs if entry["event"] == "request_failed"]
    assert not [entry for entry in captured_logs if entry.get("log_level") == "error"]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("identity", lambda data: data),
    ],
)
async def test_compressed_body_accepted(lassod, encoding, compress):
    key = await lassod.new_key()
    text = orjson.dumps({"name": "packed", "schema_id": "s", "source_text": "t"})

    status, _, table = await post_encoded(lassod, key, compress(text), encoding)

    assert status == 201, table
    assert table["name"] == "packed"


async def test_gzip_members_joined(lassod):
    key = await lassod.new_key()
    text = orjson.dumps({"name": "packed", "schema_id": "s", "source_text": "t"})

    status, _, table = await post_encoded(
        lassod, key, gzip.compress(text[:10]) + gzip.compress(text[10:]), "gzip"
    )

    assert status == 201, table
    assert table["name"] == "packed"


@pytest.mark.parametrize("tail", [b"\x00\x00", b"junk"])
async def test_gzip_body_with_trailing_data_rejected(lassod, tail):
    key = await lassod.new_key()
    text = orjson.dumps({"name": "packed", "schema_id": "s", "source_text": "t"})

    status, _, error = await post_encoded(
        lassod, key, gzip.compress(text) + tail, "gzip"
    )

    assert status == 400
    assert "not valid gzip data" in error["message"]


async def test_encoding_header_lines_combined(lassod):
    key = await lassod.new_key()
    text = orjson.dumps({"name": "packed", "schema_id": "s", "source_text": "t"})
    cases = [
        ([("Content-Encoding", "gzip"), ("Content-Encoding", "br")], 415),
        ([("Content-Encoding", "identity"), ("Content-Encoding", "gzip")], 201),
        ([("Content-Encoding", "identity, gzip")], 201),
    ]
    for headers, expected in cases:
        status, _, answer = await raw_request(
            lassod,
            "POST",
            "/api/v1/tables",
            key,
            data=gzip.compress(text),
            headers=CIMultiDict([("Content-Type", "application/json"), *headers]),
        )
        assert status == expected, (headers, answer)


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, deflate", "compress"])
async def test_unsupported_encoding_gets_415(lassod, captured_logs, encoding):
    key = await lassod.new_key()

    status, headers, error = await post_encoded(
        lassod, key, b"\x8b\x00\x80{}\x03", encoding
    )

    assert status == 415
    assert headers["Content-Type"].startswith("application/json")
    assert error["error_type"] == "unsupported_media_type"
    assert f"Content-Encoding {encoding} is not supported" in error["message"]
    assert "gzip or deflate" in error["message"]
    assert not [entry for entry in captured_logs if entry.get("log_level") == "error"]


def nested(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [33, 5000])
async def test_deeply_nested_body_rejected(lassod, depth):
    key = await lassod.new_key()
    text = '{"name": ' + "[" * depth + "]" * depth + "}"

    status, _, error = await raw_request(
        lassod,
        "POST",
        "/api/v1/tables",
        key,
        data=text,
        headers={"Content-Type": "application/json"},
    )

    assert status == 400
    assert error["error_type"] == "invalid_request"
    assert "more than 32 levels" in error["message"]


async def test_nesting_at_limit_reaches_validation(lassod):
    key = await lassod.new_key()

    status, error = await create_table(lassod, key, name=nested(31))

    assert status == 422
    assert error["field"] == "name"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "n" * 257),
        ("webhook_url", "https://example.test/" + "a" * 3000),
        ("webhook_secret", "s" * 1025),
        ("additional_context", "c" * 100_001),
    ],
)
async def test_long_strings_rejected(lassod, field, value):
    key = await lassod.new_key()
    fields = {field: value}
    if field == "webhook_secret":
        fields["webhook_url"] = "https://example.test/hook"

    status, error = await create_table(lassod, key, **fields)

    assert status == 422
    assert error["field"] == field
    assert "at most" in error["message"]


async def test_per_key_rate_limit(start_lassod, tmp_path):
    server = {"rate_limit_per_s": 0.5, "rate_limit_burst": 3}
    lassod = await start_lassod(make_settings(tmp_path, server=server))
    key = await lassod.new_key("acme")
    other = await lassod.new_key("globex")

    statuses = [
        (await raw_request(lassod, "GET", "/api/v1/tables", key))[0] for _ in range(3)
    ]
    limited = await raw_request(lassod, "GET", "/api/v1/tables", key)
    other_status, _, _ = await raw_request(lassod, "GET", "/api/v1/tables", other)

    assert statuses == [200, 200, 200]
    assert limited[0] == 429
    assert limited[2]["error_type"] == "rate_limited"
    assert limited[1]["Retry-After"] == "2"
    assert other_status == 200


async def test_key_brute_force_hits_rate_limit(start_lassod, tmp_path):
    server = {"failed_auth_per_s": 0.1, "failed_auth_burst": 5}
    lassod = await start_lassod(make_settings(tmp_path, server=server))
    valid = await lassod.new_key()
    guesses = [f"lasso_{index:064d}" for index in range(20)]

    statuses = []
    for guess in guesses:
        status, headers, body = await raw_request(
            lassod, "GET", "/api/v1/tables", guess
        )
        statuses.append(status)
    valid_status, _, _ = await raw_request(lassod, "GET", "/api/v1/tables", valid)

    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 15
    assert headers["Retry-After"] == "10"
    assert body["error_type"] == "rate_limited"
    # Once limited, a client cannot test keys at all, valid ones included.
    assert valid_status == 429


async def test_failed_auth_ignores_forwarded_headers(start_lassod, tmp_path):
    server = {"failed_auth_per_s": 0.1, "failed_auth_burst": 2}
    lassod = await start_lassod(make_settings(tmp_path, server=server))
    valid = await lassod.new_key()
    for index in range(2):
        guess = f"lasso_{index:064d}"
        headers = {"X-Forwarded-For": f"203.0.113.{index}"}
        status, _, _ = await raw_request(
            lassod, "GET", "/api/v1/tables", guess, headers=headers
        )
        assert status == 401

    # A proxy's header naming another client does not give it a fresh budget.
    forwarded = {"X-Forwarded-For": "198.51.100.7", "Forwarded": "for=198.51.100.7"}
    status, _, body = await raw_request(
        lassod, "GET", "/api/v1/tables", valid, headers=forwarded
    )

    assert status == 429
    assert body["error_type"] == "rate_limited"


def test_token_bucket_refills_up_to_burst():
    now = [0.0]
    buckets = TokenBuckets(rate_per_s=2.0, burst=2, clock=lambda: now[0])

    taken = [buckets.take("k"), buckets.take("k")]
    empty_wait = buckets.take("k")
    now[0] = 0.5
    refilled = buckets.take("k")
    now[0] = 100.0
    after_idle = [buckets.take("k") for _ in range(3)]

    assert taken == [0.0, 0.0]
    assert empty_wait == pytest.approx(0.5)
    assert refilled == 0.0
    assert after_idle[:2] == [0.0, 0.0]
    assert after_idle[2] > 0


def test_token_buckets_drop_least_recently_used():
    buckets = TokenBuckets(rate_per_s=0.001, burst=1, clock=lambda: 0.0, max_buckets=2)

    buckets.take("a")
    buckets.take("b")
    buckets.take("c")

    assert buckets.wait_s("a") == 0.0
    assert buckets.wait_s("c") > 0


def test_client_key_groups_ipv6_by_64():
    assert client_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_key("127.0.0.1") == "127.0.0.1"
    assert client_key(None) == "unknown"


INJECTION_FIELDS = [
    {"webhook_auth_header_name": "X-A\r\nX-Injected", "webhook_auth_header_value": "v"},
    {"webhook_auth_header_name": "X-A: b", "webhook_auth_header_value": "v"},
    {"webhook_auth_header_name": "X A", "webhook_auth_header_value": "v"},
    {"webhook_auth_header_name": "Host", "webhook_auth_header_value": "evil.test"},
    {
        "webhook_auth_header_name": "Transfer-Encoding",
        "webhook_auth_header_value": "chunked",
    },
    {"webhook_auth_header_name": "X-Lasso-Signature", "webhook_auth_header_value": "v"},
    {
        "webhook_auth_header_name": "X-Token",
        "webhook_auth_header_value": "t\r\nX-Injected: 1",
    },
    {
        "webhook_auth_header_name": "X-Token",
        "webhook_auth_header_value": "t\nX-Injected: 1",
    },
    {
        "webhook_auth_header_name": "X-Token",
        "webhook_auth_header_value": "t\rX-Injected: 1",
    },
    {"webhook_auth_header_name": "X-Token", "webhook_auth_header_value": "t\x00"},
    {"webhook_auth_header_name": "X-Token", "webhook_auth_header_value": "t\u2028x"},
    {"webhook_auth_header_name": "X-Token", "webhook_auth_header_value": "t\u0085x"},
    {"webhook_url": "http://127.0.0.1:9/h\r\nX-Injected: 1"},
    {"webhook_url": "http://127.0.0.1:9/h HTTP/1.1\r\nHost: evil.test"},
    {"webhook_url": "http://evil.test\r\n.example.test/h"},
]


@pytest.mark.parametrize("fields", INJECTION_FIELDS)
async def test_header_injection_rejected(lassod, fields):
    key = await lassod.new_key()
    body = {"webhook_url": "http://127.0.0.1:9/hook", **fields}

    status, error = await create_table(lassod, key, **body)

    assert status == 422
    assert error["field"] in fields


async def test_encoded_crlf_in_url_stays_encoded(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    url = receiver.url + "?next=%0d%0aX-Injected:%20yes"
    status, table = await create_table(lassod, key, webhook_url=url)
    assert status == 201

    await lassod.request(
        "POST",
        f"/api/v1/tables/{table['id']}/status",
        key,
        json={"status": "completed"},
    )

    [item] = await receiver.wait_for(1)
    assert "X-Injected" not in item.headers
    assert item.path == "/hook"


async def test_database_files_private_whatever_umask(start_lassod, tmp_path):
    previous = os.umask(0)
    try:
        lassod = await start_lassod(make_settings(tmp_path))
        await lassod.new_key()
    finally:
        os.umask(previous)
    path = lassod.daemon.settings.database.path

    for suffix in ("", "-wal", "-shm"):
        mode = stat.S_IMODE(os.stat(path + suffix).st_mode)
        assert mode == 0o600, f"{path + suffix} has mode {oct(mode)}"


def test_key_cache_forgets_a_key_after_its_time():
    cache = KeyCache(ttl_s=0.05)
    cache.put("hash", "cmp_1")

    assert cache.get("hash") == "cmp_1"
    time.sleep(0.06)
    assert cache.get("hash") is None


@pytest.mark.parametrize(
    ("number", "field"),
    [
        ("123456789012345678901234567890", "attributes.qty"),
        ("-9223372036854775809", "attributes.qty"),
        ("1" + "0" * 300, "attributes.qty"),
    ],
)
async def test_inexact_whole_number_rejected(lassod, number, field):
    key = await lassod.new_key()
    await create_attribute(lassod, key, "qty", "number")
    text = '{"attributes": {"qty": ' + number + "}}"

    status, _, error = await raw_request(
        lassod,
        "POST",
        "/api/v1/catalog",
        key,
        data=text,
        headers={"Content-Type": "application/json"},
    )

    assert status == 422, error
    assert error["field"] == field
    assert "send larger ones as strings" in error["message"]
    assert len(error["message"]) < 300
    _, listing = await lassod.request("GET", "/api/v1/catalog", key)
    assert listing["pagination"]["total"] == 0


@pytest.mark.parametrize(
    "number", ["18446744073709551615", "-9223372036854775808", "1234567890123456789.5"]
)
async def test_whole_number_at_limits_kept(lassod, number):
    key = await lassod.new_key()
    await create_attribute(lassod, key, "qty", "number")
    await create_attribute(lassod, key, "note")
    text = '{"attributes": {"qty": ' + number + ', "note": "12345678901234567890123"}}'

    status, _, product = await raw_request(
        lassod,
        "POST",
        "/api/v1/catalog",
        key,
        data=text,
        headers={"Content-Type": "application/json"},
    )

    assert status == 201, product
    assert product["attributes"]["qty"] == json.loads(number)
    assert product["attributes"]["note"] == "12345678901234567890123"


async def send_malformed_request(lassod) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", lassod.daemon.port)
    writer.write(b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_malformed_request_lines_rate_limited(lassod, captured_logs, monkeypatch):
    monkeypatch.setattr(logs, "MALFORMED_REQUEST_LOG_INTERVAL_S", 0.5)

    answers = [await send_malformed_request(lassod) for _ in range(30)]
    await asyncio.sleep(0.6)
    answers.append(await send_malformed_request(lassod))

    assert all(
        answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request") for answer in answers
    )
    lines = [
        entry for entry in captured_logs if entry.get("logger") == "aiohttp.server"
    ]
    assert len(lines) == 2
    assert [line["log_level"] for line in lines] == ["warning", "warning"]
    assert "similar_lines_skipped" not in lines[0]
    assert lines[1]["similar_lines_skipped"] == 29
    assert lines[0]["error"].startswith("BadStatusLine")


def test_whole_number_check_memory_stays_small():
    # A long key over many values once made the check build a 40 kB path
    # string per value, gigabytes in all.
    body = orjson.dumps({"k" * 40_000: [0] * 100_000, "d": "1234567890123456789"})

    tracemalloc.start()
    try:
        common._reject_inexact_integers(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 50_000_000


async def test_transfer_encoding_gzip_gets_415(lassod):
    key = await lassod.new_key()
    body = gzip.compress(b'{"name": "n", "schema_id": "s", "source_text": "t"}')
    reader, writer = await asyncio.open_connection("127.0.0.1", lassod.daemon.port)
    writer.write(
        b"POST /api/v1/tables HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()

    head, _, text = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 415 Unsupported Media Type"
    error = orjson.loads(text)
    assert "Transfer-Encoding gzip is not supported" in error["message"]
