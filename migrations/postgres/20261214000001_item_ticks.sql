-- Each chunk of items carries its items' compound scores in ticks (ten-thousandths, two bytes
-- each, `jobs::items::Chunk::ticks`): a page of a job's items in score order, or of one label,
-- reads them for every chunk of the job and decompresses only the bodies its 50 items are in.
-- NULL for chunks written before; the reader then works them out from the body. The body is
-- stored out of line (STORAGE EXTERNAL), so reading this column does not touch it.
ALTER TABLE job_item_chunks ADD COLUMN ticks BYTEA;
