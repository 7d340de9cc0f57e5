-- Partitions become provider × billing account × billing period (they were
-- provider × billing period, so a second payer account looked like a
-- re-export of the first). Existing keys are rewritten from the stored
-- account; hourly rows take their import's account for the same old key.
UPDATE usage_hourly SET partition = COALESCE(
    (SELECT d.provider || '|' || MIN(d.billing_account) || '|' || substr(usage_hourly.partition, length(usage_hourly.provider) + 2)
       FROM charges_daily d
      WHERE d.import_id = usage_hourly.import_id AND d.partition = usage_hourly.partition),
    partition);
UPDATE charges_daily SET partition = provider || '|' || billing_account || '|' || substr(partition, length(provider) + 2);

-- Which imports hold rows of a partition, and fingerprints of their rows
-- (all of them up to 4,096 rows per file, else one in 32), so another part
-- of a multi-part export (new rows) adds up while a re-export (rows already
-- stored) is refused.
CREATE TABLE partition_imports (
    id         INTEGER PRIMARY KEY,
    partition  TEXT    NOT NULL,
    import_id  INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    rows       INTEGER NOT NULL,
    sampled    INTEGER NOT NULL,
    -- Usage rows, and those longer than an hour (spread evenly over hours).
    usage_rows         INTEGER NOT NULL DEFAULT 0,
    spread_usage_rows  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX partition_imports_partition ON partition_imports (partition);
CREATE INDEX partition_imports_import ON partition_imports (import_id);

-- One row per distinct fingerprint of a partition in one import; the key
-- is the table (no separate index), so it stays small.
CREATE TABLE partition_fingerprints (
    part_id  INTEGER NOT NULL REFERENCES partition_imports(id) ON DELETE CASCADE,
    hash     INTEGER NOT NULL,
    PRIMARY KEY (part_id, hash)
) WITHOUT ROWID;

-- FOCUS Tags of the charges (canonical JSON, keys sorted), for breakdowns
-- and showback by any tag.
ALTER TABLE charges_daily ADD COLUMN tags TEXT NOT NULL DEFAULT '';
