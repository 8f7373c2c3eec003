"""The tables API: validation, errors, pagination and authentication."""

from __future__ import annotations

import io
import json

import pytest

VALID = {"name": "Invoices", "schema_id": "sch_1", "file_ids": ["f_1"]}


def with_fields(**changes):
    body = dict(VALID)
    for name, value in changes.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return body


BAD_BODIES = [
    ("missing name", with_fields(name=...), "name"),
    ("name not a string", with_fields(name=5), "name"),
    ("empty name", with_fields(name=""), "name"),
    ("missing schema_id", with_fields(schema_id=...), "schema_id"),
    ("no source", with_fields(file_ids=...), "file_ids"),
    ("two sources", with_fields(source_text="x"), "file_ids"),
    ("file_ids not a list", with_fields(file_ids="f_1"), "file_ids"),
    ("file_ids with a number", with_fields(file_ids=[1]), "file_ids[0]"),
    ("unknown field", with_fields(colour="red"), "colour"),
    ("relative webhook_url", with_fields(webhook_url="/hook"), "webhook_url"),
    ("ftp webhook_url", with_fields(webhook_url="ftp://example.com/x"), "webhook_url"),
    ("webhook_url with user info", with_fields(webhook_url="http://u:p@127.0.0.1/"), "webhook_url"),
    ("webhook_url with a space", with_fields(webhook_url="http://a b.com/"), "webhook_url"),
    ("secret without url", with_fields(webhook_secret="s"), "webhook_url"),
    (
        "header name without value",
        with_fields(webhook_url="http://127.0.0.1/h", webhook_auth_header_name="X-Token"),
        "webhook_auth_header_value",
    ),
    (
        "reserved header name",
        with_fields(
            webhook_url="http://127.0.0.1/h",
            webhook_auth_header_name="X-Lasso-Signature",
            webhook_auth_header_value="v",
        ),
        "webhook_auth_header_name",
    ),
    (
        "standard webhooks header name",
        with_fields(
            webhook_url="http://127.0.0.1/h",
            webhook_auth_header_name="webhook-id",
            webhook_auth_header_value="v",
        ),
        "webhook_auth_header_name",
    ),
    (
        "header name with a colon",
        with_fields(
            webhook_url="http://127.0.0.1/h",
            webhook_auth_header_name="X-A: b",
            webhook_auth_header_value="v",
        ),
        "webhook_auth_header_name",
    ),
    (
        "header value with CRLF",
        with_fields(
            webhook_url="http://127.0.0.1/h",
            webhook_auth_header_name="X-Token",
            webhook_auth_header_value="a\r\nX-Evil: 1",
        ),
        "webhook_auth_header_value",
    ),
    ("body is a list", [VALID], "body"),
]


@pytest.mark.parametrize("case, body, field", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_create_rejects_bad_body(lassod, case, body, field):
    key = await lassod.new_key()

    status, error = await lassod.request("POST", "/api/v1/tables", key, json=body)

    assert status == 422
    assert error["error_type"] == "validation_error"
    assert error["status_code"] == 422
    assert error["field"] == field
    assert field.split("[")[0] in error["message"]
    assert error["request_id"]
    _, listing = await lassod.request("GET", "/api/v1/tables", key)
    assert listing["pagination"]["total"] == 0


@pytest.mark.parametrize("raw", [b"{", b"not json", b"", b"{\"name\": }"])
async def test_malformed_json_is_400(lassod, raw):
    key = await lassod.new_key()

    status, error = await lassod.request("POST", "/api/v1/tables", key, data=raw)

    assert status == 400
    assert error["error_type"] == "invalid_request"


async def test_oversized_body_is_413(lassod):
    key = await lassod.new_key()
    body = with_fields(source_text="x" * (1024 * 1024 + 10), file_ids=...)
    raw = io.BytesIO(json.dumps(body).encode())

    status, error = await lassod.request("POST", "/api/v1/tables", key, data=raw)

    assert status == 413
    assert error["error_type"] == "payload_too_large"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer lasso_wrong"}],
)
async def test_bad_credentials_are_401(lassod, headers):
    status, error = await lassod.request("GET", "/api/v1/tables", headers=headers)

    assert status == 401
    assert error["error_type"] == "unauthenticated"


BAD_REPORTS = [
    ({"status": "done"}, "status"),
    ({}, "status"),
    ({"status": "processing", "progress": 101}, "progress"),
    ({"status": "processing", "progress": "50"}, "progress"),
    ({"status": "completed", "total_rows": -1}, "total_rows"),
    ({"status": "completed", "total_rows": 1.5}, "total_rows"),
    ({"status": "failed", "error_message": 7}, "error_message"),
    ({"status": "queued", "extra": 1}, "extra"),
]


@pytest.mark.parametrize("body, field", BAD_REPORTS)
async def test_status_report_rejects_bad_body(lassod, body, field):
    key = await lassod.new_key()
    _, table = await lassod.request("POST", "/api/v1/tables", key, json=VALID)

    status, error = await lassod.request(
        "POST", f"/api/v1/tables/{table['id']}/status", key, json=body
    )

    assert status == 422
    assert error["field"] == field
    _, stored = await lassod.request("GET", f"/api/v1/tables/{table['id']}", key)
    assert stored["status"] == "queued"


async def test_unknown_table_is_404(lassod):
    key = await lassod.new_key()

    status, error = await lassod.request("GET", "/api/v1/tables/tbl_missing", key)

    assert status == 404
    assert error["error_type"] == "not_found"


async def test_unknown_route_is_json_404(lassod):
    status, error = await lassod.request("GET", "/api/v1/nothing")

    assert status == 404
    assert error["error_type"] == "not_found"


async def test_table_object_hides_secrets(lassod):
    key = await lassod.new_key()
    body = with_fields(
        webhook_url="http://127.0.0.1:9/h",
        webhook_secret="top-secret-value",
        webhook_auth_header_name="Authorization",
        webhook_auth_header_value="Bearer hidden-token",
    )

    status, table = await lassod.request("POST", "/api/v1/tables", key, json=body)

    assert status == 201
    assert table["id"].startswith("tbl_")
    assert table["has_webhook_secret"] is True
    assert table["webhook_auth_header_name"] == "Authorization"
    assert "top-secret-value" not in str(table)
    assert "hidden-token" not in str(table)
    assert table["status"] == "queued"


async def test_list_is_paginated_newest_first(lassod):
    key = await lassod.new_key()
    ids = []
    for number in range(5):
        _, table = await lassod.request("POST", "/api/v1/tables", key, json=with_fields(name=f"t{number}"))
        ids.append(table["id"])

    status, first = await lassod.request("GET", "/api/v1/tables?limit=2", key)
    _, third = await lassod.request("GET", "/api/v1/tables?limit=2&page=3", key)

    assert status == 200
    assert [t["id"] for t in first["data"]] == ids[::-1][:2]
    assert first["pagination"] == {"page": 1, "limit": 2, "total": 5}
    assert [t["id"] for t in third["data"]] == ids[:1]


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("limit=5_0", "limit"),
        ("limit=%205", "limit"),
        ("page=%D9%A3", "page"),  # an Arabic-Indic digit, which int() takes
        ("colour=red", "colour"),
        ("page=1&per_page=5", "per_page"),
    ],
)
async def test_list_rejects_bad_pagination(lassod, query, field):
    key = await lassod.new_key()

    status, error = await lassod.request("GET", f"/api/v1/tables?{query}", key)

    assert status == 422
    assert error["field"] == field


async def test_unknown_list_parameter_checked_after_auth(lassod):
    status, error = await lassod.request("GET", "/api/v1/tables?colour=red")

    assert status == 401
    assert error["error_type"] == "unauthenticated"


async def test_get_of_one_table_ignores_query(lassod):
    key = await lassod.new_key()
    _, table = await lassod.request("POST", "/api/v1/tables", key, json=with_fields())

    status, found = await lassod.request(
        "GET", f"/api/v1/tables/{table['id']}?colour=red&limit=5", key
    )

    assert status == 200
    assert found == table


WEBHOOKS = [
    {},
    {"webhook_url": "http://127.0.0.1:9/h"},
    {
        "webhook_url": "http://127.0.0.1:9/h",
        "webhook_secret": "s3cret",
        "webhook_auth_header_name": "X-Token",
        "webhook_auth_header_value": "abc",
    },
]
REPORTS = [
    {"status": "processing", "progress": 40},
    {"status": "processing", "progress": 12.5, "total_rows": 7},
    {"status": "processing", "progress": -0.0},
    {"status": "completed", "total_rows": 12},
    {"status": "failed", "error_message": "no rows found"},
]


@pytest.mark.parametrize("webhook", WEBHOOKS)
async def test_created_table_matches_stored_table(lassod, webhook):
    key = await lassod.new_key()

    _, created = await lassod.request("POST", "/api/v1/tables", key, json=with_fields(**webhook))
    _, stored = await lassod.request("GET", f"/api/v1/tables/{created['id']}", key)

    # Compared as text, so that 40 against 40.0 or -0.0 against 0.0 shows.
    assert json.dumps(created, sort_keys=True) == json.dumps(stored, sort_keys=True)


@pytest.mark.parametrize("webhook", WEBHOOKS)
@pytest.mark.parametrize("report", REPORTS)
async def test_reported_table_matches_stored_table(lassod, webhook, report):
    key = await lassod.new_key()
    _, created = await lassod.request("POST", "/api/v1/tables", key, json=with_fields(**webhook))
    path = f"/api/v1/tables/{created['id']}"

    status, reported = await lassod.request("POST", f"{path}/status", key, json=report)
    _, stored = await lassod.request("GET", path, key)

    assert status == 200
    # The new delivery's first attempt may finish between the two requests.
    reported.pop("webhook_last_attempt_at")
    stored.pop("webhook_last_attempt_at")
    assert json.dumps(reported, sort_keys=True) == json.dumps(stored, sort_keys=True)
