-- Ledger on PostgreSQL (alone, or in the control plane's database): the
-- schema SQLite reaches through migrations 1–4, in one step. Amounts are
-- integer nano-dollars; sums are cast back to BIGINT by the queries.

CREATE TABLE imports (
    id            BIGSERIAL PRIMARY KEY,
    file_name     TEXT    NOT NULL,
    sha256        TEXT    NOT NULL UNIQUE,
    format        TEXT    NOT NULL,
    rows          BIGINT  NOT NULL,
    buckets       BIGINT  NOT NULL,
    first_charge  BIGINT,
    last_charge   BIGINT,
    replaced      TEXT    NOT NULL DEFAULT '',
    imported_at   BIGINT  NOT NULL
);

CREATE TABLE charges_daily (
    import_id          BIGINT NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    partition          TEXT   NOT NULL,
    day                BIGINT NOT NULL,
    provider           TEXT   NOT NULL,
    billing_account    TEXT   NOT NULL,
    region             TEXT   NOT NULL,
    service            TEXT   NOT NULL,
    sku                TEXT   NOT NULL,
    category           TEXT   NOT NULL,
    pricing_category   TEXT   NOT NULL,
    commitment_id      TEXT   NOT NULL,
    commitment_status  TEXT   NOT NULL,
    billed_nanos       BIGINT NOT NULL,
    effective_nanos    BIGINT NOT NULL,
    list_nanos         BIGINT NOT NULL,
    contracted_nanos   BIGINT NOT NULL,
    rows               BIGINT NOT NULL,
    tags               TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX charges_daily_partition ON charges_daily (partition);
CREATE INDEX charges_daily_provider_day ON charges_daily (provider, day);
CREATE INDEX charges_daily_import ON charges_daily (import_id);

CREATE TABLE usage_hourly (
    import_id         BIGINT NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    partition         TEXT   NOT NULL,
    hour              BIGINT NOT NULL,
    provider          TEXT   NOT NULL,
    pricing_category  TEXT   NOT NULL,
    billed_nanos      BIGINT NOT NULL,
    effective_nanos   BIGINT NOT NULL,
    list_nanos        BIGINT NOT NULL,
    rows              BIGINT NOT NULL,
    region            TEXT   NOT NULL DEFAULT '',
    sku               TEXT   NOT NULL DEFAULT '',
    quantity_nanos    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX usage_hourly_partition ON usage_hourly (partition);
CREATE INDEX usage_hourly_provider_hour ON usage_hourly (provider, hour);

CREATE TABLE partition_imports (
    id                 BIGSERIAL PRIMARY KEY,
    partition          TEXT   NOT NULL,
    import_id          BIGINT NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    rows               BIGINT NOT NULL,
    sampled            BIGINT NOT NULL,
    usage_rows         BIGINT NOT NULL DEFAULT 0,
    spread_usage_rows  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX partition_imports_partition ON partition_imports (partition);
CREATE INDEX partition_imports_import ON partition_imports (import_id);

CREATE TABLE partition_fingerprints (
    part_id  BIGINT NOT NULL REFERENCES partition_imports(id) ON DELETE CASCADE,
    hash     BIGINT NOT NULL,
    PRIMARY KEY (part_id, hash)
);

CREATE TABLE contract_sets (
    version     BIGSERIAL PRIMARY KEY,
    file_name   TEXT   NOT NULL,
    sha256      TEXT   NOT NULL,
    text        TEXT   NOT NULL,
    contracts   BIGINT NOT NULL,
    applied_at  BIGINT NOT NULL,
    applied_by  TEXT   NOT NULL DEFAULT ''
);
