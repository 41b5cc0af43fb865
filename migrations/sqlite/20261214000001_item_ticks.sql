-- Each chunk of items carries its items' compound scores in ticks (ten-thousandths, two bytes
-- each, `jobs::items::Chunk::ticks`): a page of a job's items in score order, or of one label,
-- reads them for every chunk of the job and decompresses only the bodies its 50 items are in.
-- NULL for chunks written before; the reader then works them out from the body.
--
-- The column goes before `body`: SQLite stores a row's columns in order, and a large body runs
-- onto overflow pages, so a column after it could be read only by walking those pages. Adding a
-- column puts it last, hence a new table. The trigger that deletes a job's chunks names the
-- table, so it is dropped while the table is replaced and created again after.
DROP TRIGGER job_deleted;

CREATE TABLE job_item_chunks_new (
    job_id TEXT NOT NULL,
    last_position INTEGER NOT NULL,
    first_position INTEGER NOT NULL,
    items INTEGER NOT NULL,
    ticks BLOB,
    body BLOB NOT NULL,
    PRIMARY KEY (job_id, last_position)
);
INSERT INTO job_item_chunks_new (job_id, last_position, first_position, items, body)
    SELECT job_id, last_position, first_position, items, body FROM job_item_chunks;
DROP TABLE job_item_chunks;
ALTER TABLE job_item_chunks_new RENAME TO job_item_chunks;

CREATE TRIGGER job_deleted AFTER DELETE ON sentiq_jobs
BEGIN
    DELETE FROM job_item_chunks WHERE job_id = OLD.id;
    DELETE FROM job_transitions WHERE job_id = OLD.id;
END;
