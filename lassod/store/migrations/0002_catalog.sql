-- The catalog: the attribute dictionary, products and webhook subscriptions.
-- A subscription's URL, secret, auth header and active flag live in its
-- endpoints row (kind 'subscription', same id), so the delivery engine reads
-- them when each attempt starts.

CREATE TABLE attributes (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT NOT NULL,
    -- JSON arrays of strings, or NULL.
    enum_values TEXT,
    tags_values TEXT,
    description TEXT,
    is_reviewed INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (company_id, key)
);

-- attributes is a JSON object of attribute key to value. updated_us grows
-- strictly with every write to a product, so (updated_us, id) orders the
-- changes feed without ties inside one product.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    schema_id TEXT,
    status TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX products_by_company ON products(company_id, created_us DESC, id DESC);
CREATE INDEX products_by_change ON products(company_id, updated_us, id);

-- events is a JSON array of event names.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY REFERENCES endpoints(id),
    company_id TEXT NOT NULL REFERENCES companies(id),
    events TEXT NOT NULL,
    description TEXT,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX subscriptions_by_company ON subscriptions(company_id, created_us DESC, id DESC);
