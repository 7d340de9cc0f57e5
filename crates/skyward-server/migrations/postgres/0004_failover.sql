-- A workload's failover state (issue 13): how many times sites failed it
-- and where it avoids until when, as the core's JSON; kept so a restarted
-- server neither forgets max_restarts nor sends work back to a site that
-- just failed it.
ALTER TABLE workloads ADD COLUMN failover TEXT;
