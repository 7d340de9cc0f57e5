-- Ledger: imported billing data, folded into daily and hourly buckets.
-- Amounts are integer nano-dollars (a bucket holds at most ~$9.2B); sums
-- are taken in Rust as 128-bit integers, never in SQL.

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    file_name     TEXT    NOT NULL,
    sha256        TEXT    NOT NULL UNIQUE,
    format        TEXT    NOT NULL,
    rows          INTEGER NOT NULL,
    buckets       INTEGER NOT NULL,
    first_charge  INTEGER,
    last_charge   INTEGER,
    replaced      TEXT    NOT NULL DEFAULT '',
    imported_at   INTEGER NOT NULL
);

CREATE TABLE charges_daily (
    import_id          INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    partition          TEXT    NOT NULL,
    day                INTEGER NOT NULL,
    provider           TEXT    NOT NULL,
    billing_account    TEXT    NOT NULL,
    region             TEXT    NOT NULL,
    service            TEXT    NOT NULL,
    sku                TEXT    NOT NULL,
    category           TEXT    NOT NULL,
    pricing_category   TEXT    NOT NULL,
    commitment_id      TEXT    NOT NULL,
    commitment_status  TEXT    NOT NULL,
    billed_nanos       INTEGER NOT NULL,
    effective_nanos    INTEGER NOT NULL,
    list_nanos         INTEGER NOT NULL,
    contracted_nanos   INTEGER NOT NULL,
    rows               INTEGER NOT NULL
);
CREATE INDEX charges_daily_partition ON charges_daily (partition);
CREATE INDEX charges_daily_provider_day ON charges_daily (provider, day);
CREATE INDEX charges_daily_import ON charges_daily (import_id);

CREATE TABLE usage_hourly (
    import_id         INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    partition         TEXT    NOT NULL,
    hour              INTEGER NOT NULL,
    provider          TEXT    NOT NULL,
    pricing_category  TEXT    NOT NULL,
    billed_nanos      INTEGER NOT NULL,
    effective_nanos   INTEGER NOT NULL,
    list_nanos        INTEGER NOT NULL,
    rows              INTEGER NOT NULL
);
CREATE INDEX usage_hourly_partition ON usage_hourly (partition);
CREATE INDEX usage_hourly_provider_hour ON usage_hourly (provider, hour);
