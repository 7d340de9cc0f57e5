-- Sites run work through an executor (issue 13): 'local' (processes on
-- the server's machine) or 'slurm:<slurm.conf path>' (jobs of a Slurm
-- cluster; empty path: Slurm's default). Remembered so that the runs of a
-- site that leaves the configuration are found and stopped where they run.
ALTER TABLE sites ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
