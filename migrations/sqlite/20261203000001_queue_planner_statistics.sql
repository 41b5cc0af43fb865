-- Tell SQLite's query planner that the queue's `lock_by` column (index `LIdx` of apalis-sqlite's
-- `Jobs` table) picks out many entries, not few: one worker locks every entry it ever runs, and
-- its finished entries are kept for a day.
--
-- apalis-sqlite acknowledges finished entries with one `UPDATE Jobs ... FROM json_each(?1)
-- WHERE Jobs.id = task_id AND Jobs.lock_by = ?2`. Without statistics the planner walks the
-- `lock_by` index, i.e. every entry this worker ever locked, for each acknowledgement: 75 ms
-- with 45,000 finished entries, all of it holding the database's one write lock. With this row
-- it looks each acknowledged entry up by its id (0.3 ms). A later `ANALYZE` replaces the row
-- with measured figures, which say the same once the queue has run for a while.
--
-- `ANALYZE Jobs` only creates the statistics table; what it measured of a new, empty queue
-- ("0 rows") is removed again, so only this row speaks for the queue.
ANALYZE Jobs;
DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('Jobs', 'LIdx', '1000000 100000');
-- Load the statistics into this connection now; connections opened later read them at start.
ANALYZE sqlite_schema;
