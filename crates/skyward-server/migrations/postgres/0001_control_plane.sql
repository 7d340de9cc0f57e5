-- Skyward control plane (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE workloads (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    priority BIGINT NOT NULL,
    submitted_at_ms BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_sha256 TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    -- submitted (not yet seen by the scheduler), pending, dispatched,
    -- running, succeeded, failed, cancelled
    state TEXT NOT NULL,
    site TEXT,
    accelerators BIGINT NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 0,
    since_ms BIGINT,
    updated_at_ms BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX workloads_state ON workloads (state, id);
CREATE INDEX workloads_cancel ON workloads (cancel_requested, state);

CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workload_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    site TEXT,
    attempt BIGINT NOT NULL
);
CREATE INDEX events_workload ON events (workload_id, seq);

CREATE TABLE usage (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workload_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    site TEXT NOT NULL,
    provider TEXT NOT NULL,
    region TEXT NOT NULL,
    accelerator TEXT NOT NULL,
    accelerators BIGINT NOT NULL,
    price_basis TEXT NOT NULL,
    price_micro_usd_per_accelerator_hour BIGINT NOT NULL,
    accelerator_hours DOUBLE PRECISION NOT NULL,
    cost_micro_usd BIGINT NOT NULL,
    from_ms BIGINT NOT NULL,
    to_ms BIGINT NOT NULL,
    UNIQUE (workload_id, attempt)
);

CREATE TABLE tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE leader (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    term BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
INSERT INTO leader (id, holder, term, expires_at_ms) VALUES (1, '', 0, 0);
