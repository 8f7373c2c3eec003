"""Catalog event names and the `data` each one carries."""

from __future__ import annotations

from typing import Any

from lassod.catalog import attributes, products
from lassod.catalog.attributes import AttributeRow
from lassod.catalog.products import ProductRow

PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
PRODUCT_DELETED = "product.deleted"
ATTRIBUTE_CREATED = "attribute.created"
ATTRIBUTE_UPDATED = "attribute.updated"
ATTRIBUTE_DELETED = "attribute.deleted"
EVENT_NAMES = (
    PRODUCT_CREATED,
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
    ATTRIBUTE_CREATED,
    ATTRIBUTE_UPDATED,
    ATTRIBUTE_DELETED,
)


def attribute_data(
    attribute: AttributeRow, previous_key: str | None = None
) -> dict[str, Any]:
    """Return the `data` of an attribute event. A rename adds previous_key."""
    data: dict[str, Any] = {
        "attribute_id": attribute.id,
        "attribute": attributes.public(attribute),
    }
    if previous_key is not None:
        data["previous_key"] = previous_key
    return data


def product_data(product: ProductRow) -> dict[str, Any]:
    """Return the `data` of a product event. A delete carries the last state."""
    return {"product_id": product.id, "product": products.public(product)}
