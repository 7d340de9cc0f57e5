-- Checkpoints in object stores (issue 13): each complete checkpoint the
-- server found (or copied) in one of a workload's stores, and the
-- checkpoint each attempt was handed to resume from.
CREATE TABLE checkpoints (
    workload_id BIGINT NOT NULL,
    store TEXT NOT NULL,
    step BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    files BIGINT NOT NULL,
    written_at_ms BIGINT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    -- The store it was copied from, when Skyward replicated it.
    copied_from TEXT,
    PRIMARY KEY (workload_id, store, step)
);
CREATE TABLE resumes (
    workload_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    store TEXT NOT NULL,
    step BIGINT,
    PRIMARY KEY (workload_id, attempt)
);
