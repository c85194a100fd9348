-- A machine's image (issue 13): a name in the host's image store. NULL:
-- the default root (a read-only view of the host's system directories).
ALTER TABLE machines ADD COLUMN image TEXT;
