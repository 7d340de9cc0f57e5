-- Contracts as stored, versioned objects: each `skyward contracts apply`
-- of a validated file that differs from the current one is a new version;
-- the latest is what the ledger commands read when no --contracts is given.
CREATE TABLE contract_sets (
    version     INTEGER PRIMARY KEY,
    file_name   TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    contracts   INTEGER NOT NULL,
    applied_at  INTEGER NOT NULL,
    -- Who applied it (the OS user, or --by).
    applied_by  TEXT    NOT NULL DEFAULT ''
);
