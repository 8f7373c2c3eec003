"""Catalog products: merging, stale writes, write times and the changes feed."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

from lassod.catalog import products
from lassod.clock import parse_iso
from lassod.store import products as product_queries
from tests.catalog_support import create_attribute, create_product
from tests.delivery_helpers import company_of


async def setup_attributes(lassod, key):
    for name in ("color", "size", "weight"):
        await create_attribute(lassod, key, name)


async def patch(lassod, key, product_id, **body):
    return await lassod.request(
        "PATCH", f"/api/v1/catalog/{product_id}", key, json=body
    )


async def test_create_defaults(lassod):
    key = await lassod.new_key()
    product = await create_product(lassod, key)

    assert product["status"] == "draft"
    assert product["schema_id"] is None
    assert product["attributes"] == {}
    assert product["created_at"] == product["updated_at"]
    assert len(product["updated_at"]) == len("2026-01-01T00:00:00.000000Z")
    status, fetched = await lassod.request(
        "GET", f"/api/v1/catalog/{product['id']}", key
    )
    assert status == 200
    assert fetched == product


async def test_create_takes_null_as_absent(lassod):
    key = await lassod.new_key()

    product = await create_product(lassod, key, schema_id=None)
    attribute = await create_attribute(lassod, key, "color", description=None)

    assert product["schema_id"] is None
    assert attribute["description"] is None


async def test_patch_merges_and_null_removes(lassod):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    product = await create_product(
        lassod, key, attributes={"color": "red", "size": {"eu": 42}}
    )

    status, updated = await patch(
        lassod,
        key,
        product["id"],
        attributes={"size": None, "weight": 1.5},
        status="active",
    )
    assert status == 200, updated
    assert updated["attributes"] == {"color": "red", "weight": 1.5}
    assert updated["status"] == "active"
    assert updated["created_at"] == product["created_at"]
    assert parse_iso(updated["updated_at"]) > parse_iso(product["updated_at"])


async def test_updated_at_grows_on_every_write(lassod):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    product = await create_product(lassod, key)

    seen = [parse_iso(product["updated_at"])]
    for number in range(20):
        status, updated = await patch(
            lassod, key, product["id"], attributes={"weight": number}
        )
        assert status == 200
        seen.append(parse_iso(updated["updated_at"]))
    assert seen == sorted(set(seen))


async def test_stale_write_is_rejected_untouched(lassod, make_receiver):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    product = await create_product(lassod, key, attributes={"color": "red"})
    status, first = await patch(
        lassod,
        key,
        product["id"],
        attributes={"color": "blue"},
        expected_updated_at=product["updated_at"],
    )
    assert status == 200

    status, error = await patch(
        lassod,
        key,
        product["id"],
        attributes={"color": "green"},
        expected_updated_at=product["updated_at"],
    )
    assert status == 409
    assert error["code"] == "stale_write"
    assert error["updated_at"] == first["updated_at"]
    _, stored = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert stored == first


async def test_expected_updated_at_compares_instants(lassod):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    product = await create_product(lassod, key)
    moment = datetime.fromisoformat(product["updated_at"])
    # The same instant written in another zone, so the strings differ.
    same_instant = moment.astimezone(
        timezone(timedelta(hours=5, minutes=30))
    ).isoformat()
    earlier = (moment - timedelta(microseconds=1)).isoformat()
    assert same_instant != product["updated_at"]

    status, error = await patch(
        lassod, key, product["id"], status="active", expected_updated_at=earlier
    )
    assert status == 409
    assert error["code"] == "stale_write"
    status, updated = await patch(
        lassod, key, product["id"], status="active", expected_updated_at=same_instant
    )
    assert status == 200, updated
    status, error = await patch(
        lassod, key, product["id"], status="archived", expected_updated_at=same_instant
    )
    assert status == 409
    assert error["code"] == "stale_write"


async def test_unknown_attribute_key_is_named(lassod):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    status, error = await lassod.request(
        "POST",
        "/api/v1/catalog",
        key,
        json={"attributes": {"color": "red", "flavour": "x"}},
    )
    assert status == 422
    assert error["field"] == "attributes.flavour"
    product = await create_product(lassod, key)
    status, error = await patch(lassod, key, product["id"], attributes={"taste": 1})
    assert status == 422
    assert error["field"] == "attributes.taste"
    _, listing = await lassod.request("GET", "/api/v1/catalog", key)
    assert listing["pagination"]["total"] == 1


async def test_changes_feed_pages_by_cursor(lassod):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    _, start = await lassod.request("GET", "/api/v1/catalog/changes", key)
    created = [await create_product(lassod, key) for _ in range(5)]
    # Touching the first product moves it to the end of the feed.
    _, touched = await patch(lassod, key, created[0]["id"], status="active")

    ids, cursor, pages = [], None, 0
    while True:
        query = f"?since={start['sync_timestamp']}&page_size=2"
        if cursor:
            query += f"&cursor={cursor}"
        status, page = await lassod.request(
            "GET", "/api/v1/catalog/changes" + query, key
        )
        assert status == 200, page
        pages += 1
        ids += [product["id"] for product in page["products"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert pages == 3
    assert ids == [product["id"] for product in created[1:]] + [touched["id"]]

    query = f"?since={page['sync_timestamp']}"
    _, later = await lassod.request("GET", "/api/v1/catalog/changes" + query, key)
    assert later["products"] == []
    _, after_write = await patch(lassod, key, created[2]["id"], status="archived")
    _, later = await lassod.request("GET", "/api/v1/catalog/changes" + query, key)
    assert later["products"] == [after_write]


async def test_changes_and_webhooks_routes_not_captured(lassod):
    key = await lassod.new_key()
    status, changes = await lassod.request("GET", "/api/v1/catalog/changes", key)
    assert status == 200
    assert set(changes) == {"products", "next_cursor", "has_more", "sync_timestamp"}
    status, webhooks = await lassod.request("GET", "/api/v1/catalog/webhooks", key)
    assert status == 200
    assert webhooks["data"] == []


async def test_delete_product(lassod):
    key = await lassod.new_key()
    product = await create_product(lassod, key)
    status, _ = await lassod.request("DELETE", f"/api/v1/catalog/{product['id']}", key)
    assert status == 204
    status, error = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert status == 404
    assert error["error_type"] == "not_found"
    status, _ = await lassod.request("DELETE", f"/api/v1/catalog/{product['id']}", key)
    assert status == 404


async def test_changes_feed_waits_for_stamped_write(lassod):
    key = await lassod.new_key()
    company = await company_of(lassod)
    _, start = await lassod.request("GET", "/api/v1/catalog/changes", key)
    release = threading.Event()

    def insert_then_wait(connection, company_id, new):
        change = product_queries.insert_product(connection, company_id, new)
        # This keeps the group open, with the product stamped but not committed.
        release.wait(5)
        return change

    writing = asyncio.ensure_future(
        lassod.daemon.database.transaction(
            insert_then_wait, company, products.parse_new({"attributes": {}})
        )
    )
    await asyncio.sleep(0.2)
    query = f"?since={start['sync_timestamp']}"
    polling = asyncio.ensure_future(
        lassod.request("GET", "/api/v1/catalog/changes" + query, key)
    )
    await asyncio.sleep(0.2)
    release.set()
    change = await writing
    _, page = await polling
    query = f"?since={page['sync_timestamp']}"
    _, later = await lassod.request("GET", "/api/v1/catalog/changes" + query, key)

    # A feed read while the write was stamped but not committed must not
    # move sync_timestamp past it, or no poll would ever return it.
    seen = [product["id"] for product in page["products"] + later["products"]]
    assert change.product.id in seen


async def test_oversized_product_is_rejected(lassod):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    big = "x" * (products.MAX_ATTRIBUTES_BYTES // 2)
    status, error = await lassod.request(
        "POST",
        "/api/v1/catalog",
        key,
        json={"attributes": {"color": big, "size": big, "weight": 1}},
    )
    assert status == 422
    assert error["field"] == "attributes"
    assert str(products.MAX_ATTRIBUTES_BYTES) in error["message"]

    product = await create_product(lassod, key, attributes={"color": big})
    status, error = await patch(lassod, key, product["id"], attributes={"size": big})
    assert status == 422
    assert error["field"] == "attributes"
    _, stored = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert stored == product
    _, listing = await lassod.request("GET", "/api/v1/catalog", key)
    assert listing["pagination"]["total"] == 1


async def test_oversized_product_may_shrink(lassod, monkeypatch):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    product = await create_product(
        lassod, key, attributes={"color": "x" * 1000, "size": "y" * 1000}
    )
    # As if the product had been stored before a lower limit.
    monkeypatch.setattr(products, "MAX_ATTRIBUTES_BYTES", 100)
    status, error = await patch(lassod, key, product["id"], attributes={"weight": 1})
    assert status == 422, error
    status, shrunk = await patch(lassod, key, product["id"], attributes={"size": None})
    assert status == 200, shrunk
    assert set(shrunk["attributes"]) == {"color"}


async def test_changes_page_ends_at_byte_budget(lassod, monkeypatch):
    key = await lassod.new_key()
    await setup_attributes(lassod, key)
    _, start = await lassod.request("GET", "/api/v1/catalog/changes", key)
    created = [
        await create_product(lassod, key, attributes={"color": str(i) * 1000})
        for i in range(5)
    ]
    # Two products of about 1 kB reach the budget; a third would pass it.
    monkeypatch.setattr(products, "MAX_CHANGES_PAGE_BYTES", 1500)

    sizes, ids, cursor = [], [], None
    for _ in range(10):
        query = f"?since={start['sync_timestamp']}&page_size=100"
        if cursor:
            query += f"&cursor={cursor}"
        status, page = await lassod.request(
            "GET", "/api/v1/catalog/changes" + query, key
        )
        assert status == 200, page
        sizes.append(len(page["products"]))
        ids += [product["id"] for product in page["products"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert sizes == [2, 2, 1]
    assert ids == [product["id"] for product in created]


async def test_rename_cannot_outgrow_size_limit(lassod, monkeypatch):
    key = await lassod.new_key()
    await create_attribute(lassod, key, "a")
    product = await create_product(lassod, key, attributes={"a": "x" * 40})
    monkeypatch.setattr(products, "MAX_ATTRIBUTES_BYTES", 60)

    status, error = await lassod.request(
        "POST",
        "/api/v1/attributes/a/rename",
        key,
        json={"new_key": "a_much_longer_key_than_before"},
    )

    assert status == 422
    assert error["field"] == "new_key"
    assert product["id"] in error["message"]
    _, stored = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert stored == product
    status, _ = await lassod.request("GET", "/api/v1/attributes/a", key)
    assert status == 200
