-- A machine's size (issue 13). NULL for machines made before sizes were
-- kept: they get the daemon's configured default.
ALTER TABLE machines ADD COLUMN guest_cpus INTEGER;
ALTER TABLE machines ADD COLUMN guest_memory_mb INTEGER;
