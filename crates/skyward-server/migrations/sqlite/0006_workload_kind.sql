-- A workload's kind (train, batch, serve), kept so that lists and the
-- dashboard can filter on it (issue 16). Workloads stored before it
-- existed had none kept and are trains, the submission default.
ALTER TABLE workloads ADD COLUMN kind TEXT NOT NULL DEFAULT 'train';
CREATE INDEX workloads_kind ON workloads (kind, id);
