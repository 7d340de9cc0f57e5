-- Skyward control plane (SQLite). Times are Unix milliseconds.
CREATE TABLE workloads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    priority INTEGER NOT NULL,
    submitted_at_ms INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_sha256 TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    -- submitted (not yet seen by the scheduler), pending, dispatched,
    -- running, succeeded, failed, cancelled
    state TEXT NOT NULL,
    site TEXT,
    accelerators INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    since_ms INTEGER,
    updated_at_ms INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workloads_state ON workloads (state, id);
CREATE INDEX workloads_cancel ON workloads (cancel_requested, state);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    workload_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    site TEXT,
    attempt INTEGER NOT NULL
);
CREATE INDEX events_workload ON events (workload_id, seq);

CREATE TABLE usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workload_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    site TEXT NOT NULL,
    provider TEXT NOT NULL,
    region TEXT NOT NULL,
    accelerator TEXT NOT NULL,
    accelerators INTEGER NOT NULL,
    price_basis TEXT NOT NULL,
    price_micro_usd_per_accelerator_hour INTEGER NOT NULL,
    accelerator_hours REAL NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    UNIQUE (workload_id, attempt)
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    term INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
INSERT INTO leader (id, holder, term, expires_at_ms) VALUES (1, '', 0, 0);
