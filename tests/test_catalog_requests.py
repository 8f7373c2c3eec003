"""Catalog request checks, all-or-nothing bulk upserts and company isolation."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.catalog_support import (
    count_rows,
    create_attribute,
    create_product,
    subscribe,
)

HOOK = "http://127.0.0.1:9/hook"
PRODUCT = "{product}"
SUBSCRIPTION = "{subscription}"

BAD_REQUESTS = [
    # (method, path, body, status, field)
    ("POST", "/api/v1/attributes", {"key": "1color", "type": "text"}, 422, "key"),
    ("POST", "/api/v1/attributes", {"key": "co-lor", "type": "text"}, 422, "key"),
    ("POST", "/api/v1/attributes", {"key": "fresh"}, 422, "type"),
    ("POST", "/api/v1/attributes", {"key": "color", "type": None}, 422, "type"),
    ("PUT", "/api/v1/attributes/color", {"type": None}, 422, "type"),
    ("POST", "/api/v1/attributes", {"key": "fresh", "type": "colour"}, 422, "type"),
    (
        "POST",
        "/api/v1/attributes",
        {"key": "fresh", "type": "enum"},
        422,
        "enum_values",
    ),
    (
        "POST",
        "/api/v1/attributes",
        {"key": "fresh", "type": "text", "enum_values": ["a"]},
        422,
        "enum_values",
    ),
    (
        "POST",
        "/api/v1/attributes",
        {"key": "fresh", "type": "tags", "tags_values": ["a", "a"]},
        422,
        "tags_values",
    ),
    (
        "POST",
        "/api/v1/attributes",
        {"key": "fresh", "type": "text", "colour": 1},
        422,
        "colour",
    ),
    ("POST", "/api/v1/attributes", {"key": "color", "type": "number"}, 422, "type"),
    ("POST", "/api/v1/attributes", {"attributes": []}, 422, "attributes"),
    (
        "POST",
        "/api/v1/attributes",
        {"attributes": [{"key": "a", "type": "text"}, {"key": "a", "type": "text"}]},
        422,
        "attributes[1].key",
    ),
    ("POST", "/api/v1/attributes", [1, 2], 422, "body"),
    ("PUT", "/api/v1/attributes/color", {"type": "number"}, 422, "type"),
    ("PUT", "/api/v1/attributes/color", {"key": "colour"}, 422, "key"),
    ("PUT", "/api/v1/attributes/color", {"is_reviewed": "yes"}, 422, "is_reviewed"),
    ("PUT", "/api/v1/attributes/missing", {"label": "x"}, 404, None),
    ("POST", "/api/v1/attributes/color/rename", {"new_key": "size"}, 409, "new_key"),
    ("POST", "/api/v1/attributes/color/rename", {"new_key": "9lives"}, 422, "new_key"),
    ("POST", "/api/v1/attributes/missing/rename", {"new_key": "other"}, 404, None),
    ("DELETE", "/api/v1/attributes/missing", None, 404, None),
    ("POST", "/api/v1/catalog", {"status": "published"}, 422, "status"),
    ("POST", "/api/v1/catalog", {"attributes": ["color"]}, 422, "attributes"),
    (
        "POST",
        "/api/v1/catalog",
        {"attributes": {"color": None}},
        422,
        "attributes.color",
    ),
    (
        "POST",
        "/api/v1/catalog",
        {"attributes": {"flavour": 1}},
        422,
        "attributes.flavour",
    ),
    ("POST", "/api/v1/catalog", {"id": "mine"}, 422, "id"),
    (
        "PATCH",
        f"/api/v1/catalog/{PRODUCT}",
        {"expected_updated_at": "yesterday"},
        422,
        "expected_updated_at",
    ),
    (
        "PATCH",
        f"/api/v1/catalog/{PRODUCT}",
        {"expected_updated_at": "2026-01-01T00:00:00"},
        422,
        "expected_updated_at",
    ),
    ("PATCH", f"/api/v1/catalog/{PRODUCT}", {"status": "gone"}, 422, "status"),
    ("PATCH", "/api/v1/catalog/no-such-product", {"status": "active"}, 404, None),
    ("GET", "/api/v1/catalog/changes?page_size=0", None, 422, "page_size"),
    ("GET", "/api/v1/catalog/changes?page_size=many", None, 422, "page_size"),
    ("GET", "/api/v1/catalog/changes?since=noon", None, 422, "since"),
    ("GET", "/api/v1/catalog/changes?cursor=%21%21", None, 422, "cursor"),
    ("GET", "/api/v1/catalog/changes?cursor=bm9jb2xvbg", None, 422, "cursor"),
    ("GET", "/api/v1/catalog/changes?limit=5", None, 422, "limit"),
    ("GET", "/api/v1/catalog?page_size=5", None, 422, "page_size"),
    ("GET", "/api/v1/attributes?sort=key", None, 422, "sort"),
    ("GET", "/api/v1/catalog/webhooks?active=true", None, 422, "active"),
    ("POST", "/api/v1/catalog/webhooks", {"events": ["product.created"]}, 422, "url"),
    (
        "POST",
        "/api/v1/catalog/webhooks",
        {"url": "ftp://127.0.0.1/x", "events": ["product.created"]},
        422,
        "url",
    ),
    ("POST", "/api/v1/catalog/webhooks", {"url": HOOK}, 422, "events"),
    ("POST", "/api/v1/catalog/webhooks", {"url": HOOK, "events": []}, 422, "events"),
    (
        "POST",
        "/api/v1/catalog/webhooks",
        {"url": HOOK, "events": ["table.completed"]},
        422,
        "events[0]",
    ),
    (
        "POST",
        "/api/v1/catalog/webhooks",
        {"url": HOOK, "events": ["product.created"], "auth_header_name": "X-Token"},
        422,
        "auth_header_value",
    ),
    (
        "POST",
        "/api/v1/catalog/webhooks",
        {
            "url": HOOK,
            "events": ["product.created"],
            "auth_header_name": "Host",
            "auth_header_value": "x",
        },
        422,
        "auth_header_name",
    ),
    (
        "POST",
        "/api/v1/catalog/webhooks",
        {
            "url": HOOK,
            "events": ["product.created"],
            "auth_header_name": "X-Token",
            "auth_header_value": "a\nb",
        },
        422,
        "auth_header_value",
    ),
    (
        "POST",
        "/api/v1/catalog/webhooks",
        {"url": HOOK, "events": ["product.created"], "active": "yes"},
        422,
        "active",
    ),
    (
        "PATCH",
        "/api/v1/catalog/webhooks/no-such-subscription",
        {"active": False},
        404,
        None,
    ),
    ("DELETE", "/api/v1/catalog/webhooks/no-such-subscription", None, 404, None),
    ("PATCH", f"/api/v1/catalog/webhooks/{SUBSCRIPTION}", {}, 422, "body"),
    ("PATCH", f"/api/v1/catalog/webhooks/{SUBSCRIPTION}", {"url": "nope"}, 422, "url"),
    ("PATCH", f"/api/v1/catalog/webhooks/{SUBSCRIPTION}", {"url": None}, 422, "url"),
    (
        "PATCH",
        f"/api/v1/catalog/webhooks/{SUBSCRIPTION}",
        {"events": []},
        422,
        "events",
    ),
    (
        "PATCH",
        f"/api/v1/catalog/webhooks/{SUBSCRIPTION}",
        {"active": None},
        422,
        "active",
    ),
    (
        "PATCH",
        f"/api/v1/catalog/webhooks/{SUBSCRIPTION}",
        {"auth_header_name": "X-Token"},
        422,
        "auth_header_value",
    ),
    (
        "PATCH",
        f"/api/v1/catalog/webhooks/{SUBSCRIPTION}",
        {"secret": 42},
        422,
        "secret",
    ),
]


@pytest.fixture
async def catalog(lassod):
    key = await lassod.new_key()
    await create_attribute(lassod, key, "color")
    await create_attribute(lassod, key, "size")
    product = await create_product(lassod, key, attributes={"color": "red"})
    status, subscription = await lassod.request(
        "POST",
        "/api/v1/catalog/webhooks",
        key,
        json={"url": HOOK, "events": ["product.updated"]},
    )
    assert status == 201
    return key, product, subscription


@pytest.mark.parametrize(("method", "path", "body", "expected", "field"), BAD_REQUESTS)
async def test_bad_request_is_rejected(
    lassod, catalog, method, path, body, expected, field
):
    key, product, subscription = catalog
    path = path.replace(PRODUCT, product["id"])
    path = path.replace(SUBSCRIPTION, subscription["id"])
    status, error = await lassod.request(method, path, key, json=body)

    assert status == expected, error
    assert error["status_code"] == expected
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    _, stored = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert stored == product
    _, listing = await lassod.request("GET", "/api/v1/catalog/webhooks", key)
    assert listing["data"] == [
        {name: value for name, value in subscription.items() if name != "secret"}
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/attributes"),
        ("POST", "/api/v1/catalog"),
        ("PATCH", "/api/v1/catalog/x"),
        ("POST", "/api/v1/catalog/webhooks"),
    ],
)
async def test_malformed_json_is_400(lassod, method, path):
    key = await lassod.new_key()
    status, error = await lassod.request(
        method,
        path,
        key,
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert error["error_type"] == "invalid_request"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/attributes",
        "/api/v1/catalog",
        "/api/v1/catalog/changes",
        "/api/v1/catalog/webhooks",
    ],
)
async def test_missing_key_is_401(lassod, path):
    status, error = await lassod.request("GET", path)
    assert status == 401
    assert error["error_type"] == "unauthenticated"


async def test_bulk_upsert_of_500(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await subscribe(lassod, key, receiver, events=["attribute.created"])
    items = [{"key": f"field_{number}", "type": "text"} for number in range(500)]

    status, body = await lassod.request(
        "POST", "/api/v1/attributes", key, json={"attributes": items}
    )
    assert status == 200, body
    assert body["created"] == 500
    await receiver.wait_for(500, timeout_s=20)
    _, listing = await lassod.request("GET", "/api/v1/attributes?limit=1", key)
    assert listing["pagination"]["total"] == 500


async def test_bulk_upsert_over_limit_stores_nothing(lassod, make_receiver):
    key = await lassod.new_key()
    items = [{"key": f"field_{number}", "type": "text"} for number in range(501)]

    status, error = await lassod.request(
        "POST", "/api/v1/attributes", key, json={"attributes": items}
    )
    assert status == 422
    assert error["field"] == "attributes"
    assert "500" in error["message"]
    _, listing = await lassod.request("GET", "/api/v1/attributes", key)
    assert listing["pagination"]["total"] == 0


async def test_bulk_upsert_rolls_back_on_one_bad_item(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await create_attribute(lassod, key, "color", label="Color")
    await create_attribute(lassod, key, "material")
    await subscribe(lassod, key, receiver)
    events_before = await count_rows(lassod, "SELECT COUNT(*) FROM events")
    items = [
        {"key": "size", "type": "text"},
        {"key": "color", "type": "text", "label": "Colour"},
        # Well-formed, but material is stored as text and its type cannot
        # change: the store finds this after writing the first two items.
        {"key": "material", "type": "number"},
    ]

    status, error = await lassod.request(
        "POST", "/api/v1/attributes", key, json={"attributes": items}
    )
    assert status == 422
    assert error["field"] == "attributes[2].type"
    _, listing = await lassod.request("GET", "/api/v1/attributes", key)
    assert [item["key"] for item in listing["data"]] == ["color", "material"]
    assert listing["data"][0]["label"] == "Color"
    assert await count_rows(lassod, "SELECT COUNT(*) FROM events") == events_before
    assert await count_rows(lassod, "SELECT COUNT(*) FROM deliveries") == 0
    await asyncio.sleep(0.3)
    assert receiver.received == []


async def test_company_isolation(lassod, make_receiver):
    acme_receiver = await make_receiver()
    globex_receiver = await make_receiver()
    acme = await lassod.new_key("acme")
    globex = await lassod.new_key("globex")
    acme_subscription = await subscribe(lassod, acme, acme_receiver)
    await subscribe(lassod, globex, globex_receiver)
    await create_attribute(lassod, acme, "color")
    product = await create_product(lassod, acme, attributes={"color": "red"})
    await acme_receiver.wait_for(2)

    for method, path, body in [
        ("GET", f"/api/v1/catalog/{product['id']}", None),
        ("PATCH", f"/api/v1/catalog/{product['id']}", {"status": "active"}),
        ("DELETE", f"/api/v1/catalog/{product['id']}", None),
        ("GET", "/api/v1/attributes/color", None),
        ("PUT", "/api/v1/attributes/color", {"label": "Stolen"}),
        ("POST", "/api/v1/attributes/color/rename", {"new_key": "stolen"}),
        ("DELETE", "/api/v1/attributes/color", None),
        ("GET", f"/api/v1/catalog/webhooks/{acme_subscription['id']}", None),
        (
            "PATCH",
            f"/api/v1/catalog/webhooks/{acme_subscription['id']}",
            {"url": globex_receiver.url},
        ),
        ("DELETE", f"/api/v1/catalog/webhooks/{acme_subscription['id']}", None),
    ]:
        status, _ = await lassod.request(method, path, globex, json=body)
        assert status == 404, (method, path)

    status, error = await lassod.request(
        "POST", "/api/v1/catalog", globex, json={"attributes": {"color": "blue"}}
    )
    assert status == 422
    assert error["field"] == "attributes.color"
    for path in ("/api/v1/catalog", "/api/v1/attributes"):
        _, listing = await lassod.request("GET", path, globex)
        assert listing["pagination"]["total"] == 0, path
    _, listing = await lassod.request("GET", "/api/v1/catalog/webhooks", globex)
    assert listing["pagination"]["total"] == 1
    _, changes = await lassod.request("GET", "/api/v1/catalog/changes", globex)
    assert changes["products"] == []

    # The same key in another company is a separate attribute.
    await create_attribute(lassod, globex, "color", "number")
    await globex_receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(acme_receiver.received) == 2
    assert len(globex_receiver.received) == 1
    _, acme_color = await lassod.request("GET", "/api/v1/attributes/color", acme)
    assert acme_color["type"] == "text"


@pytest.mark.parametrize("path", ["/api/v1/catalog/changes", "/api/v1/catalog/webhooks"])
async def test_sibling_path_is_not_a_product(lassod, path):
    key = await lassod.new_key()

    status, body = await lassod.request("DELETE", path, key)

    assert status == 405
    assert body["error_type"] == "invalid_request"


async def test_changes_cursor_too_large_is_422(lassod):
    key = await lassod.new_key()
    cursor = base64.urlsafe_b64encode(b"99999999999999999999999:prd_1").decode()

    status, body = await lassod.request(
        "GET", f"/api/v1/catalog/changes?cursor={cursor.rstrip('=')}", key
    )

    assert status == 422
    assert body["field"] == "cursor"


async def test_upsert_without_type_updates_existing(lassod, catalog):
    key, _, _ = catalog
    _, before = await lassod.request("GET", "/api/v1/attributes/color", key)

    status, updated = await lassod.request(
        "POST", "/api/v1/attributes", key, json={"key": "color", "label": "Colour"}
    )

    assert status == 200, updated
    assert updated["label"] == "Colour"
    assert updated["type"] == before["type"]
