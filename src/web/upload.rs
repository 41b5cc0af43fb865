//! Reading uploads within the process's memory budget.
//!
//! Two parts keep a web process's memory bounded whatever its traffic:
//!
//! - [`Budget`]: the bytes request bodies may hold in memory at once, across all requests. A
//!   request is admitted for what it will hold (its declared length for a JSON body, which is
//!   parsed whole; about two parts for an upload) and waits briefly for room; past the wait it
//!   is refused with `503 overloaded` and a `Retry-After`, never queued without bound.
//! - [`Upload`]: a text, CSV or JSON lines body read as it arrives. Up to one part
//!   ([`PART_BYTES`]) it stays in memory and is submitted as before; beyond that each part is
//!   checked (UTF-8, not blank) and written to the database as soon as it is complete
//!   ([`crate::jobs::parts`]), so a 64 MiB upload costs the same memory as a 1 MiB one. The
//!   first part is kept for the checks that need the start of the input (columns, title).
//!   Parts of an upload that does not become a job are deleted when it is dropped.

use std::time::Duration;

use actix_web::web;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

use super::errors::ApiError;
use crate::analysis::pytext;
use crate::budget::ByteBudget;
use crate::jobs::parts::PART_BYTES;
use crate::jobs::store::JobStore;

/// How long a request waits for its share of the budget before it is refused.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(3);

/// Seconds a refused client is asked to wait.
pub const RETRY_AFTER_OVERLOADED: u64 = 5;

/// What an upload holds in memory at most: the part being filled, the kept first part, and a
/// chunk of the body on its way in.
pub const UPLOAD_HOLDS: usize = 2 * PART_BYTES + (64 << 10);

/// Bytes of request bodies held in memory at once, shared by every request of the process: a
/// [`ByteBudget`] that a request waits for only briefly.
#[derive(Debug)]
pub struct Budget {
    bytes: ByteBudget,
    wait: Duration,
}

impl Budget {
    /// A budget of `bytes`; a request waits up to `wait` for its share.
    pub fn new(bytes: usize, wait: Duration) -> Budget {
        Budget {
            bytes: ByteBudget::new(bytes),
            wait,
        }
    }

    /// Hold `bytes` of the budget (all of it, if more) while the permit lives.
    pub async fn admit(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        tokio::time::timeout(self.wait, self.bytes.hold(bytes))
            .await
            .map_err(|_| ApiError::Overloaded {
                retry_after_secs: RETRY_AFTER_OVERLOADED,
            })
    }
}

/// The declared `Content-Length` of a request, if any.
pub fn declared_length(req: &actix_web::HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// What an upload holds for a body of `declared` bytes (unknown: the most an upload holds).
pub fn upload_share(declared: Option<u64>) -> usize {
    match declared {
        Some(len) if len <= PART_BYTES as u64 => len as usize + (64 << 10),
        _ => UPLOAD_HOLDS,
    }
}

/// An upload read to its end: in memory, or in parts in the database.
#[derive(Debug)]
pub enum Uploaded {
    Whole { body: Vec<u8>, digest: [u8; 32] },
    Staged(Box<Staged>),
}

impl Uploaded {
    /// A body read whole by other means (a urlencoded form's field).
    pub fn whole(body: Vec<u8>) -> Uploaded {
        let digest = Sha256::digest(&body).into();
        Uploaded::Whole { body, digest }
    }

    /// SHA-256 of the body (what an idempotency key's fingerprint covers).
    pub fn digest(&self) -> [u8; 32] {
        match self {
            Uploaded::Whole { digest, .. } => *digest,
            Uploaded::Staged(s) => s.digest,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Uploaded::Whole { body, .. } => body.len(),
            Uploaded::Staged(s) => s.bytes as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An upload written in parts, not yet a job: its parts are deleted when this is dropped
/// unless [`Staged::keep`] was called (its job was written).
#[derive(Debug)]
pub struct Staged {
    pub id: Uuid,
    pub bytes: u64,
    pub parts: u32,
    /// The first part (valid UTF-8, cut at a character boundary).
    pub head: Vec<u8>,
    pub digest: [u8; 32],
    guard: Discard,
}

impl Staged {
    /// The parts now belong to a job: keep them.
    pub fn keep(mut self) {
        self.guard.store = None;
    }
}

/// Deletes the parts written for `id` when dropped, unless disarmed.
#[derive(Debug)]
struct Discard {
    store: Option<JobStore>,
    id: Uuid,
}

impl Drop for Discard {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let id = self.id.to_string();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // the pruner removes them later
        };
        runtime.spawn(async move {
            match store.discard_staged_input(&id).await {
                Ok(parts) => tracing::info!(upload_id = %id, parts, "parts of an upload that did not become a job deleted"),
                Err(e) => tracing::warn!(upload_id = %id, error = %e, "parts of an abandoned upload not deleted; the pruner will"),
            }
        });
    }
}

/// A body being read; see the module documentation.
pub struct Upload {
    store: JobStore,
    id: Uuid,
    limit: usize,
    buf: Vec<u8>,
    head: Vec<u8>,
    parts: u32,
    received: u64,
    /// Bytes and line feeds in the parts written (for the position of a bad byte).
    written: u64,
    lines: u64,
    /// Only whitespace in the parts written so far.
    blank: bool,
    hash: Sha256,
    guard: Option<Discard>,
}

impl Upload {
    pub fn new(store: JobStore, limit: usize) -> Upload {
        Upload {
            store,
            id: Uuid::new_v4(),
            limit,
            buf: Vec::new(),
            head: Vec::new(),
            parts: 0,
            received: 0,
            written: 0,
            lines: 0,
            blank: true,
            hash: Sha256::new(),
            guard: None,
        }
    }

    /// Read `body` to its end. Past `limit` bytes: 413 (the rest is not read).
    pub async fn read<S, E>(mut self, mut body: S) -> Result<Uploaded, ApiError>
    where
        S: Stream<Item = Result<web::Bytes, E>> + Unpin,
        E: std::error::Error + 'static,
    {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ApiError::unreadable("the body", &e))?;
            self.push(&chunk).await?;
        }
        self.finish().await
    }

    /// Take the next bytes of the body.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.received += chunk.len() as u64;
        if self.received > self.limit as u64 {
            return Err(ApiError::PayloadTooLarge { limit: self.limit });
        }
        self.hash.update(chunk);
        if self.buf.capacity() == 0 {
            self.buf.reserve(PART_BYTES.min(self.limit) + (64 << 10));
        }
        self.buf.extend_from_slice(chunk);
        while self.buf.len() > PART_BYTES {
            self.write_part(false).await?;
        }
        Ok(())
    }

    /// Write the next part: [`PART_BYTES`] of the buffer cut back to a character boundary (or
    /// all of it, for the `last`).
    async fn write_part(&mut self, last: bool) -> Result<(), ApiError> {
        let take = if last { self.buf.len() } else { PART_BYTES };
        let cut = match std::str::from_utf8(&self.buf[..take]) {
            Ok(_) => take,
            // A character split by the cut: it starts the next part.
            Err(e) if e.error_len().is_none() && !last && e.valid_up_to() > 0 => e.valid_up_to(),
            Err(e) => {
                let at = e.valid_up_to();
                let line = self.lines + memchr::memchr_iter(b'\n', &self.buf[..at]).count() as u64;
                return Err(crate::analysis::AnalysisError::InvalidUtf8 {
                    line: line + 1,
                    byte_offset: self.written + at as u64,
                }
                .into());
            }
        };
        let part = &self.buf[..cut];
        if self.blank {
            let text = std::str::from_utf8(part).expect("checked above");
            let text = match self.parts {
                0 => text.strip_prefix('\u{feff}').unwrap_or(text),
                _ => text,
            };
            self.blank = pytext::strip(text).is_empty();
        }
        if self.guard.is_none() {
            self.guard = Some(Discard {
                store: Some(self.store.clone()),
                id: self.id,
            });
        }
        self.store
            .stage_input_part(&self.id.to_string(), self.parts, part)
            .await?;
        if self.parts == 0 {
            self.head = part.to_vec();
        }
        self.lines += memchr::memchr_iter(b'\n', part).count() as u64;
        self.written += cut as u64;
        self.parts += 1;
        self.buf.drain(..cut);
        Ok(())
    }

    /// The body read: in memory if it fit in one part, else its last part written.
    pub async fn finish(mut self) -> Result<Uploaded, ApiError> {
        let digest: [u8; 32] = self.hash.clone().finalize().into();
        if self.parts == 0 {
            return Ok(Uploaded::Whole {
                body: std::mem::take(&mut self.buf),
                digest,
            });
        }
        if !self.buf.is_empty() {
            self.write_part(true).await?;
        }
        let guard = self.guard.take().expect("a part was written");
        if self.blank {
            // Dropping the guard deletes the parts.
            drop(guard);
            return Err(ApiError::EmptyInput(
                "nothing to analyse: the text is empty".into(),
            ));
        }
        Ok(Uploaded::Staged(Box::new(Staged {
            id: self.id,
            bytes: self.written,
            parts: self.parts,
            head: std::mem::take(&mut self.head),
            digest,
            guard,
        })))
    }
}
