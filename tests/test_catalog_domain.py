"""Pure catalog rules: write times, merging, cursors, secrets and checks."""

from __future__ import annotations

import base64
import itertools

import pytest

from lassod.config import SecuritySettings

from lassod.catalog import attributes, products, subscriptions, write_time_us
from lassod.catalog.attributes import AttributeInput, AttributeRow
from lassod.catalog.products import ProductPatch, ProductRow
from lassod.clock import now_us
from lassod.validation import ValidationError, check_header_name


def make_product(**fields) -> ProductRow:
    values = {
        "id": "7f0c5a52-0000-4000-8000-000000000001",
        "company_id": "cmp_1",
        "schema_id": None,
        "status": "draft",
        "attributes": {"color": "red", "size": "M"},
        "created_us": 1_000,
        "updated_us": 2_000,
    }
    values.update(fields)
    return ProductRow(**values)


def make_patch(**fields) -> ProductPatch:
    values = {
        "schema_id": products.UNSET,
        "status": None,
        "attributes": {},
        "expected_updated_us": None,
    }
    values.update(fields)
    return ProductPatch(**values)


def test_write_time_passes_future_previous():
    future = now_us() + 60_000_000

    assert write_time_us(future) == future + 1


def test_write_time_strictly_increases():
    times = [write_time_us()]
    for _ in range(1000):
        times.append(write_time_us(times[-1]))

    assert all(later > earlier for earlier, later in itertools.pairwise(times))


def test_merge_sets_and_removes_keys():
    patch = make_patch(attributes={"size": None, "weight": 2, "missing": None})

    schema_id, status, merged = products.merge(make_product(), patch)

    assert merged == {"color": "red", "weight": 2}
    assert schema_id is None
    assert status == "draft"


def test_merge_sets_schema_to_null():
    product = make_product(schema_id="sch_1")

    schema_id, _, _ = products.merge(product, make_patch(schema_id=None))
    unchanged, _, _ = products.merge(product, make_patch())

    assert schema_id is None
    assert unchanged == "sch_1"


def test_patch_null_schema_id_clears_it():
    patch = products.parse_patch({"schema_id": None})

    schema_id, _, _ = products.merge(make_product(schema_id="sch_1"), patch)

    assert patch.schema_id is None
    assert schema_id is None


@pytest.mark.parametrize(
    ("expected_us", "stale"),
    [(None, False), (2_000, False), (2_001, False), (1_999, True)],
)
def test_is_stale_compares_instants(expected_us, stale):
    patch = make_patch(expected_updated_us=expected_us)

    assert products.is_stale(make_product(), patch) is stale


def test_cursor_round_trip():
    product = make_product(updated_us=1_733_000_000_123_456)

    cursor = products.encode_cursor(product)

    assert products.decode_cursor(cursor) == (1_733_000_000_123_456, product.id)



@pytest.mark.parametrize("raw", [b"99999999999999999999999:prd_1", b"-5:prd_1"])
def test_cursor_out_of_range_is_invalid(raw):
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    with pytest.raises(ValidationError) as caught:
        products.decode_cursor(cursor)

    assert caught.value.field == "cursor"

def test_since_includes_its_own_microsecond():
    query = products.parse_changes_query({"since": "2026-01-01T00:00:00.000001Z"})

    assert query.after == (1_767_225_600_000_001, "")
    assert query.page_size == products.DEFAULT_CHANGES_PAGE_SIZE


def test_cursor_takes_precedence_over_since():
    cursor = products.encode_cursor(make_product())

    query = products.parse_changes_query(
        {"since": "2020-01-01T00:00:00Z", "cursor": cursor}
    )

    assert query.after == (2_000, make_product().id)


def make_attribute(**fields) -> AttributeRow:
    values = {
        "id": "a",
        "company_id": "cmp_1",
        "key": "size",
        "label": "Size",
        "type": "enum",
        "enum_values": ("S", "M"),
        "tags_values": None,
        "description": None,
        "is_reviewed": False,
        "created_us": 1,
        "updated_us": 1,
    }
    values.update(fields)
    return AttributeRow(**values)


def test_attribute_type_cannot_change():
    update = AttributeInput("size", "text", {})

    with pytest.raises(ValidationError) as raised:
        attributes.merged_state(make_attribute(), update)

    assert raised.value.field == "type"
    assert "cannot change" in raised.value.message


def test_attribute_update_keeps_absent_fields():
    update = AttributeInput("size", None, {"is_reviewed": True})

    state = attributes.merged_state(make_attribute(), update)

    assert state["enum_values"] == ("S", "M")
    assert state["is_reviewed"] is True
    assert attributes.differs(make_attribute(), state)


def test_attribute_null_description_clears_it():
    current = make_attribute(description="Shoe size")
    update = attributes.parse_put("size", {"description": None})

    state = attributes.merged_state(current, update)

    assert state["description"] is None
    assert attributes.differs(current, state)


def test_enum_attribute_needs_values():
    update = AttributeInput("size", None, {"enum_values": None})

    with pytest.raises(ValidationError) as raised:
        attributes.merged_state(make_attribute(), update)

    assert raised.value.field == "enum_values"


@pytest.mark.parametrize("key", ["a", "Color", "color_2", "x" * 128])
def test_valid_attribute_keys(key):
    assert attributes.check_key("key", key) == key


@pytest.mark.parametrize(
    "key", ["", "2x", "_x", "co lor", "ç", "x" * 129, 7, None, "color\n"]
)
def test_invalid_attribute_keys(key):
    with pytest.raises(ValidationError):
        attributes.check_key("key", key)


def test_bulk_error_names_item_index():
    body = {"attributes": [{"key": "a", "type": "text"}, {"key": "b", "type": "nope"}]}

    with pytest.raises(ValidationError) as raised:
        attributes.parse_bulk(body)

    assert raised.value.field == "attributes[1].type"


@pytest.mark.parametrize("item", [5, "a", None, ["key"]])
def test_bulk_error_names_non_object_item(item):
    body = {"attributes": [{"key": "a", "type": "text"}, item]}

    with pytest.raises(ValidationError) as raised:
        attributes.parse_bulk(body)

    assert raised.value.field == "attributes[1]"
    assert raised.value.message == "must be a JSON object"


def test_bulk_error_names_unknown_body_field():
    body = {"attributes": [{"key": "a", "type": "text", "body": 1}]}

    with pytest.raises(ValidationError) as raised:
        attributes.parse_bulk(body)

    assert raised.value.field == "attributes[0].body"


def test_generated_secret_form():
    first = subscriptions.generate_secret()
    second = subscriptions.generate_secret()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_patch_with_no_fields_is_rejected():
    with pytest.raises(ValidationError) as raised:
        subscriptions.parse_patch({}, SecuritySettings())

    assert raised.value.field == "body"


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "http://169.254.169.254/", "http://[::1]/x"])
def test_subscription_url_blocked_address_rejected(url):
    body = {"url": url, "events": ["product.created"]}

    with pytest.raises(ValidationError) as created:
        subscriptions.parse_new(body, SecuritySettings())
    with pytest.raises(ValidationError) as patched:
        subscriptions.parse_patch({"url": url}, SecuritySettings())

    assert created.value.field == "url"
    assert patched.value.field == "url"


def test_subscription_http_rejected_when_https_required():
    security = SecuritySettings(require_https=True)

    with pytest.raises(ValidationError) as raised:
        subscriptions.parse_new({"url": "http://example.com/h", "events": ["product.created"]}, security)

    assert "https" in raised.value.message


@pytest.mark.parametrize("name", ["X-Token\n", "X Token", "", "X-Tökén"])
def test_invalid_header_names(name):
    with pytest.raises(ValidationError) as raised:
        check_header_name("auth_header_name", name)

    assert raised.value.field == "auth_header_name"
