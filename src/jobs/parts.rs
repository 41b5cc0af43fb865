//! Inputs stored in parts: how a large upload reaches the database without ever being held
//! whole, and how the worker reads it back a part at a time.
//!
//! A web process writes each [`PART_BYTES`] of an upload as it arrives (through
//! [`crate::jobs::store::JobStore::stage_input_part`]), before the job exists; the job's row and
//! its `job_inputs` row (empty body, `parts` = how many) are then written by the usual
//! submission, so a job is never visible with half an input. Parts of an upload that never
//! became a job (refused, abandoned by its client, or its process died) are deleted by the
//! upload itself or, failing that, by the pruner after [`ABANDONED_AFTER`]. Deleting the
//! `job_inputs` row deletes the parts (a trigger in both schemas), so finishing, deleting and
//! expiring a job need nothing new.
//!
//! The worker reads a job's parts with [`PartsReader`], a blocking [`Read`] for the analysis
//! thread: one part in memory at a time, whatever the size of the input.

use std::io::{self, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::db::Db;
use crate::on_db;

/// Bytes of an input per stored part: also the size above which an upload is written in parts
/// rather than held, and what one upload holds in memory while it arrives.
pub const PART_BYTES: usize = 1 << 20;

/// Parts older than this with no job are an upload that never finished.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Write part `seq` of the input of the job `id` will have.
pub async fn write(db: &Db, id: &str, seq: u32, body: &[u8]) -> Result<(), sqlx::Error> {
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query(
            "INSERT INTO job_input_parts (job_id, seq, staged_at, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(seq as i64)
        .bind(epoch_seconds())
        .bind(body)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

/// Delete the parts written for `id` (an upload that did not become a job).
pub async fn discard(db: &Db, id: &str) -> Result<u64, sqlx::Error> {
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query(
            "DELETE FROM job_input_parts WHERE job_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM job_inputs WHERE job_inputs.job_id = $1)",
        )
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

/// Delete the parts of uploads that were abandoned (no job, and older than `older_than`).
pub async fn sweep(db: &Db, older_than: Duration) -> Result<u64, sqlx::Error> {
    let before = epoch_seconds() - older_than.as_secs() as i64;
    let _write = db.write_permit().await;
    on_db!(db, |pool| {
        sqlx::query(
            "DELETE FROM job_input_parts WHERE staged_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM job_inputs WHERE job_inputs.job_id = job_input_parts.job_id)",
        )
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
}

/// Part `seq` of job `id`'s input.
pub async fn read(db: &Db, id: &str, seq: u32) -> Result<Option<Vec<u8>>, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_scalar("SELECT body FROM job_input_parts WHERE job_id = $1 AND seq = $2")
            .bind(id)
            .bind(seq as i64)
            .fetch_optional(pool)
            .await
    })
}

/// How many parts are stored for `id` (tests, and the checks of an abandoned upload).
pub async fn count(db: &Db, id: &str) -> Result<i64, sqlx::Error> {
    on_db!(db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM job_input_parts WHERE job_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
    })
}

/// A job's input in parts, read in order on a blocking thread (each part fetched through the
/// runtime `handle`). A part missing, or a total that is not the job's `input_bytes`, is an
/// error: the input is never analysed short.
pub struct PartsReader {
    handle: tokio::runtime::Handle,
    db: Db,
    id: String,
    parts: u32,
    bytes: u64,
    next: u32,
    read: u64,
    current: Vec<u8>,
    at: usize,
}

impl PartsReader {
    pub fn new(handle: tokio::runtime::Handle, db: Db, id: &str, parts: u32, bytes: u64) -> Self {
        PartsReader {
            handle,
            db,
            id: id.to_owned(),
            parts,
            bytes,
            next: 0,
            read: 0,
            current: Vec::new(),
            at: 0,
        }
    }

    fn fetch(&mut self) -> io::Result<()> {
        let part = self
            .handle
            .block_on(read(&self.db, &self.id, self.next))
            .map_err(io::Error::other)?
            .ok_or_else(|| {
                io::Error::other(format!("part {} of the input is missing", self.next))
            })?;
        self.next += 1;
        self.read += part.len() as u64;
        if self.next == self.parts && self.read != self.bytes {
            return Err(io::Error::other(format!(
                "the input's parts hold {} bytes, not {}",
                self.read, self.bytes
            )));
        }
        self.current = part;
        self.at = 0;
        Ok(())
    }
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.next == self.parts {
                return Ok(0);
            }
            self.fetch()?;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
