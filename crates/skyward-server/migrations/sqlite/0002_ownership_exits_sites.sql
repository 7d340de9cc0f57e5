-- Ownership (issue 9): a token belongs to a user (its name) in a team; a
-- workload to the team and user that submitted it. Tokens expire and are
-- revoked. Runs record how they ended. Sites are remembered, so work on a
-- site that leaves the configuration is stopped and billed at its price.
ALTER TABLE tokens ADD COLUMN team TEXT NOT NULL DEFAULT 'default';
ALTER TABLE tokens ADD COLUMN expires_at_ms INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at_ms INTEGER;
ALTER TABLE workloads ADD COLUMN team TEXT NOT NULL DEFAULT 'default';
ALTER TABLE workloads ADD COLUMN exit_code INTEGER;
ALTER TABLE workloads ADD COLUMN end_note TEXT;
ALTER TABLE events ADD COLUMN exit_code INTEGER;
ALTER TABLE events ADD COLUMN note TEXT;
CREATE INDEX workloads_team ON workloads (team, id);

CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    region TEXT NOT NULL,
    accelerator TEXT NOT NULL,
    accelerators INTEGER NOT NULL,
    price_micro_usd_per_accelerator_hour INTEGER NOT NULL,
    spot INTEGER NOT NULL,
    price_basis TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
