-- Machines attached to a network namespace made by someone else (issue
-- 14: a CNI ADD, or an attach by path): what was attached, as JSON. NULL
-- for machines boxfence made itself.
ALTER TABLE machines ADD COLUMN attached TEXT;
