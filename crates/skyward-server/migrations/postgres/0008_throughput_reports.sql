-- Throughput reported by runs (issue 17): a run prints
-- `##skyward-metric throughput=N unit=U` (`skyward metric N --unit U`);
-- when it succeeds the leader stores the last such line with the run's
-- class (team/name) and the alternative it ran on (`H100:8`). The newest
-- 100,000 are kept.
CREATE TABLE throughput_reports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    class TEXT NOT NULL,
    alternative TEXT NOT NULL,
    rate DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    workload_id BIGINT NOT NULL
);
CREATE INDEX throughput_reports_class ON throughput_reports (class, id);
