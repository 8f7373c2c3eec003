-- Companies, API keys, tables, and the delivery engine's events, deliveries
-- and attempts. Times are integer Unix microseconds (*_us) or milliseconds
-- (*_ms), always UTC.

CREATE TABLE companies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_us INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    revoked_us INTEGER
);

-- A webhook target: a table's webhook or a catalog subscription. Its id is
-- the owner's id, so deliveries.endpoint_id names the table or subscription.
-- Attempts read the endpoint when they start, so a changed URL, secret or
-- header applies to pending retries.
CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT,
    previous_secret TEXT,
    previous_secret_until_ms INTEGER,
    auth_header_name TEXT,
    auth_header_value TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);

CREATE TABLE tables (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    name TEXT NOT NULL,
    schema_id TEXT NOT NULL,
    source TEXT NOT NULL,
    additional_context TEXT,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    total_rows INTEGER,
    error_message TEXT,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE INDEX tables_by_company ON tables(company_id, created_us DESC, id DESC);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    name TEXT NOT NULL,
    body BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);

-- status: pending, succeeded, abandoned or cancelled.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events(id),
    company_id TEXT NOT NULL REFERENCES companies(id),
    endpoint_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_due_ms INTEGER,
    last_attempt_ms INTEGER,
    reason TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_due_ms, id) WHERE status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries(endpoint_id, created_ms);
CREATE INDEX deliveries_by_company ON deliveries(company_id, created_ms);

-- One row per attempt, written before the request is sent. A row whose
-- outcome is still NULL at start-up was in flight when the process died.
-- outcome: succeeded, failed or interrupted.
CREATE TABLE attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id),
    number INTEGER NOT NULL,
    attempt_id TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER,
    status_code INTEGER,
    error_kind TEXT,
    response_excerpt TEXT,
    outcome TEXT,
    PRIMARY KEY (delivery_id, number)
);
CREATE INDEX attempts_unfinished ON attempts(delivery_id) WHERE outcome IS NULL;
