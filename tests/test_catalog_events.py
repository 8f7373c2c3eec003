"""Catalog events end to end: each event reaches exactly its subscribers."""

from __future__ import annotations

import asyncio

from tests.catalog_support import (
    create_attribute,
    create_product,
    envelopes,
    event_names,
    settle,
    subscribe,
)

AUTH = {"auth_header_name": "X-Receiver-Token", "auth_header_value": "tok-123"}


async def test_each_event_reaches_only_its_subscribers(lassod, make_receiver):
    key = await lassod.new_key()
    names = [
        "attribute.created",
        "product.created",
        "product.updated",
        "product.deleted",
        "attribute.updated",
        "attribute.deleted",
    ]
    receivers = {}
    for name in names:
        receivers[name] = await make_receiver()
        await subscribe(lassod, key, receivers[name], events=[name], **AUTH)

    await create_attribute(lassod, key, "color")
    product = await create_product(lassod, key, attributes={"color": "red"})
    await lassod.request(
        "PATCH", f"/api/v1/catalog/{product['id']}", key, json={"status": "active"}
    )
    await lassod.request("DELETE", f"/api/v1/catalog/{product['id']}", key)
    await lassod.request(
        "PUT", "/api/v1/attributes/color", key, json={"label": "Colour"}
    )
    await lassod.request("DELETE", "/api/v1/attributes/color", key)

    for name in names:
        items = await settle(receivers[name], 1, quiet_s=0.1)
        assert event_names(items) == [name], name
        assert receivers[name].verified(items[0]), name
        assert items[0].headers["X-Receiver-Token"] == "tok-123"
        assert items[0].headers["X-Lasso-Event"] == name


async def test_product_payloads_match_api_objects(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await subscribe(
        lassod,
        key,
        receiver,
        events=["product.created", "product.updated", "product.deleted"],
    )
    await create_attribute(lassod, key, "title")
    product = await create_product(
        lassod, key, schema_id="sch_9", attributes={"title": "Thé vert ☕"}
    )
    status, updated = await lassod.request(
        "PATCH", f"/api/v1/catalog/{product['id']}", key, json={"status": "archived"}
    )
    assert status == 200
    status, _ = await lassod.request("DELETE", f"/api/v1/catalog/{product['id']}", key)
    assert status == 204

    created, changed, deleted = envelopes(await settle(receiver, 3))
    by_name = {envelope["event"]: envelope for envelope in (created, changed, deleted)}
    assert by_name["product.created"]["data"] == {
        "product_id": product["id"],
        "product": product,
    }
    assert by_name["product.updated"]["data"] == {
        "product_id": product["id"],
        "product": updated,
    }
    assert by_name["product.deleted"]["data"] == {
        "product_id": product["id"],
        "product": updated,
    }
    assert all(receiver.verified(item) for item in receiver.received)


async def test_attribute_payloads_match_api_objects(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await subscribe(
        lassod,
        key,
        receiver,
        events=["attribute.created", "attribute.updated", "attribute.deleted"],
    )
    created = await create_attribute(
        lassod, key, "size", "enum", enum_values=["S", "M"]
    )
    status, updated = await lassod.request(
        "PUT",
        "/api/v1/attributes/size",
        key,
        json={"enum_values": ["S", "M", "L"], "is_reviewed": True},
    )
    assert status == 200
    status, _ = await lassod.request("DELETE", "/api/v1/attributes/size", key)
    assert status == 204

    by_name = {
        envelope["event"]: envelope for envelope in envelopes(await settle(receiver, 3))
    }
    assert by_name["attribute.created"]["data"] == {
        "attribute_id": created["id"],
        "attribute": created,
    }
    assert by_name["attribute.updated"]["data"] == {
        "attribute_id": created["id"],
        "attribute": updated,
    }
    assert by_name["attribute.deleted"]["data"] == {
        "attribute_id": created["id"],
        "attribute": updated,
    }
    assert updated["enum_values"] == ["S", "M", "L"]


async def test_rename_moves_values_and_emits(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await create_attribute(lassod, key, "colour")
    await create_attribute(lassod, key, "size")
    first = await create_product(lassod, key, attributes={"colour": "red", "size": "M"})
    second = await create_product(lassod, key, attributes={"size": "L"})
    await subscribe(lassod, key, receiver)

    status, renamed = await lassod.request(
        "POST", "/api/v1/attributes/colour/rename", key, json={"new_key": "color"}
    )
    assert status == 200
    assert renamed["key"] == "color"

    items = await settle(receiver, 2)
    assert sorted(event_names(items)) == ["attribute.updated", "product.updated"]
    by_name = {envelope["event"]: envelope for envelope in envelopes(items)}
    assert by_name["attribute.updated"]["data"]["previous_key"] == "colour"
    assert by_name["attribute.updated"]["data"]["attribute"] == renamed
    moved = by_name["product.updated"]["data"]["product"]
    assert moved["id"] == first["id"]
    assert moved["attributes"] == {"color": "red", "size": "M"}
    _, stored = await lassod.request("GET", f"/api/v1/catalog/{first['id']}", key)
    assert stored == moved
    _, untouched = await lassod.request("GET", f"/api/v1/catalog/{second['id']}", key)
    assert untouched == second


async def test_attribute_delete_cascades_to_products(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await create_attribute(lassod, key, "color")
    await create_attribute(lassod, key, "size")
    products = [
        await create_product(lassod, key, attributes={"color": "red", "size": "M"}),
        await create_product(lassod, key, attributes={"color": "blue"}),
        await create_product(lassod, key, attributes={"size": "S"}),
    ]
    await subscribe(lassod, key, receiver)

    status, _ = await lassod.request("DELETE", "/api/v1/attributes/color", key)
    assert status == 204

    items = await settle(receiver, 3)
    assert sorted(event_names(items)) == [
        "attribute.deleted",
        "product.updated",
        "product.updated",
    ]
    changed = {
        envelope["data"]["product_id"]: envelope["data"]["product"]["attributes"]
        for envelope in envelopes(items)
        if envelope["event"] == "product.updated"
    }
    assert changed == {products[0]["id"]: {"size": "M"}, products[1]["id"]: {}}
    status, _ = await lassod.request("GET", "/api/v1/attributes/color", key)
    assert status == 404


async def test_noop_updates_emit_nothing(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await create_attribute(lassod, key, "color", label="Color")
    product = await create_product(lassod, key, attributes={"color": "red"})
    await subscribe(lassod, key, receiver)

    for method, path, body in [
        ("PUT", "/api/v1/attributes/color", {"label": "Color"}),
        (
            "POST",
            "/api/v1/attributes",
            {"key": "color", "type": "text", "label": "Color"},
        ),
        ("POST", "/api/v1/attributes/color/rename", {"new_key": "color"}),
        ("PATCH", f"/api/v1/catalog/{product['id']}", {"attributes": {"color": "red"}}),
        ("PATCH", f"/api/v1/catalog/{product['id']}", {"attributes": {"size": None}}),
        ("PATCH", f"/api/v1/catalog/{product['id']}", {"status": "draft"}),
        ("PATCH", f"/api/v1/catalog/{product['id']}", {"schema_id": None}),
        ("PUT", "/api/v1/attributes/color", {"description": None}),
        (
            "POST",
            "/api/v1/attributes",
            {"attributes": [{"key": "color", "description": None}]},
        ),
    ]:
        status, body = await lassod.request(method, path, key, json=body)
        assert status == 200, (path, body)

    _, after = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert after["updated_at"] == product["updated_at"]
    await asyncio.sleep(0.3)
    assert receiver.received == []


async def test_clearing_field_emits_update(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await create_attribute(lassod, key, "color", description="Shade")
    await create_attribute(lassod, key, "size", description="EU size")
    product = await create_product(lassod, key, schema_id="sch_1")
    await subscribe(lassod, key, receiver)

    status, color = await lassod.request(
        "PUT", "/api/v1/attributes/color", key, json={"description": None}
    )
    assert status == 200, color
    status, size = await lassod.request(
        "POST", "/api/v1/attributes", key, json={"key": "size", "description": None}
    )
    assert status == 200, size
    status, cleared = await lassod.request(
        "PATCH", f"/api/v1/catalog/{product['id']}", key, json={"schema_id": None}
    )
    assert status == 200, cleared

    assert color["description"] is None
    assert size["description"] is None
    assert cleared["schema_id"] is None
    assert cleared["updated_at"] > product["updated_at"]
    _, stored = await lassod.request("GET", f"/api/v1/catalog/{product['id']}", key)
    assert stored == cleared
    _, stored = await lassod.request("GET", "/api/v1/attributes/color", key)
    assert stored == color
    by_name = {}
    for envelope in envelopes(await settle(receiver, 3)):
        by_name.setdefault(envelope["event"], []).append(envelope["data"])
    assert sorted(by_name) == ["attribute.updated", "product.updated"]
    assert by_name["product.updated"] == [
        {"product_id": product["id"], "product": cleared}
    ]
    updated = sorted(
        by_name["attribute.updated"], key=lambda data: data["attribute"]["key"]
    )
    assert updated == [
        {"attribute_id": color["id"], "attribute": color},
        {"attribute_id": size["id"], "attribute": size},
    ]


async def test_inactive_subscription_gets_nothing(lassod, make_receiver):
    active = await make_receiver()
    inactive = await make_receiver()
    key = await lassod.new_key()
    await subscribe(lassod, key, active)
    paused = await subscribe(lassod, key, inactive, active=False)
    assert paused["active"] is False

    await create_attribute(lassod, key, "color")
    await settle(active, 1)
    assert inactive.received == []

    status, resumed = await lassod.request(
        "PATCH", f"/api/v1/catalog/webhooks/{paused['id']}", key, json={"active": True}
    )
    assert status == 200
    assert resumed["active"] is True
    await create_attribute(lassod, key, "size")
    items = await settle(inactive, 1)
    assert event_names(items) == ["attribute.created"]


async def test_bulk_upsert_emits_one_event_per_change(lassod, make_receiver):
    receiver = await make_receiver()
    key = await lassod.new_key()
    await create_attribute(lassod, key, "color", label="Color")
    await create_attribute(lassod, key, "size", label="Size")
    await subscribe(lassod, key, receiver)

    status, body = await lassod.request(
        "POST",
        "/api/v1/attributes",
        key,
        json={
            "attributes": [
                {"key": "color", "type": "text", "label": "Color"},
                {"key": "size", "label": "Size (EU)"},
                {"key": "weight", "type": "number"},
            ]
        },
    )
    assert status == 200, body
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 1)
    assert [item["key"] for item in body["data"]] == ["color", "size", "weight"]

    items = await settle(receiver, 2)
    assert sorted(event_names(items)) == ["attribute.created", "attribute.updated"]
    keys = sorted(envelope["data"]["attribute"]["key"] for envelope in envelopes(items))
    assert keys == ["size", "weight"]
