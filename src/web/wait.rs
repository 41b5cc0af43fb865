//! Waiting for a job instead of polling it: RFC 7240's `Prefer: wait=N`.
//!
//! - `POST /api/jobs` with `Prefer: wait=N` holds its answer until the job is final, for at most
//!   N seconds: `200` with the job, else the usual `202`.
//! - `GET /api/jobs/{id}` with `Prefer: wait=N` and an `If-None-Match` that matches holds its
//!   `304` until the job changes (then `200` with the new version), for at most N seconds.
//!
//! N is at most [`MAX_WAIT_SECS`]: the router in front of the app (Heroku's) ends a request
//! after 30 s, and a wait must end before it does. A `wait` that is not a whole number of seconds
//! from 0 to 25 is refused (`400 bad_prefer`) rather than ignored: a client that asked for 60 s
//! and silently got an immediate answer would poll in a tight loop. Every other preference
//! (`respond-async`, `return=minimal`, parameters after `;`) is ignored, as RFC 7240 says, and
//! of several `wait`s the first counts. An answer whose wait was applied names it in
//! `Preference-Applied: wait=N`, the `202` too: so a client tells "waited N s, not final yet"
//! from "did not wait" (`wait=0`, or the cap of waiting requests reached). No `Vary: Prefer`:
//! what a GET answers does not depend on the preference, only when it answers, and submissions
//! are never cached.
//!
//! A waiting request follows the job as the event stream does ([`Follower`]): it wakes on the
//! job's change signals (from every process with Redis) or a periodic re-read, and re-reads the
//! row; it holds no database connection between reads. Waiting requests are counted against
//! `MAX_WAITERS` per process ([`Waiters`]), and all of them answer at once when the server
//! stops, so they do not hold up a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use tokio::sync::watch;
use tokio::time::Instant;

use super::AppState;
use super::errors::ApiError;
use crate::db::Db;
use crate::jobs::events::Watch;
use crate::jobs::model::{self, JobRow};

/// The longest wait a request may ask for, in seconds (under a router's 30 s limit).
pub const MAX_WAIT_SECS: u64 = 25;

/// The response header naming the preference applied.
pub const PREFERENCE_APPLIED: &str = "Preference-Applied";

/// How often a follower re-reads the row when no change signal came: often when the jobs run in
/// another process whose signals cannot reach this one (a separate worker on the embedded
/// queue), rarely when every change signals this process: with Redis, or when this process
/// runs the jobs itself (the embedded default). A thousand followers re-reading every 250 ms
/// cost a SQLite web process a good part of a core; every 10 s, nothing to speak of.
const POLL_LOCAL: Duration = Duration::from_millis(250);
const POLL_SIGNALLED: Duration = Duration::from_secs(10);

/// The `wait` of the request's `Prefer` headers, in seconds: None without one, or with
/// `wait=0` (nothing to wait for). A malformed or too long wait is a `400 bad_prefer`.
pub fn preferred(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    for value in req.headers().get_all("prefer") {
        // Bytes that are not text belong to some other preference, which is ignored anyway.
        let value = String::from_utf8_lossy(value.as_bytes());
        if let Some((_, wait)) = preferences(&value)
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("wait"))
        {
            return seconds(wait.as_deref().unwrap_or("")).map(|n| (n > 0).then_some(n));
        }
    }
    Ok(None)
}

/// A `wait` value: delta-seconds, at most [`MAX_WAIT_SECS`].
fn seconds(text: &str) -> Result<u64, ApiError> {
    let shown: String = text.chars().take(40).collect();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadPrefer(format!(
            "Prefer: wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}, \
             not {shown:?}"
        )));
    }
    // Digits only: a number too long for u64 is merely out of range.
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_WAIT_SECS => Ok(n),
        _ => Err(ApiError::BadPrefer(format!(
            "Prefer: wait={shown} is longer than this server waits: at most {MAX_WAIT_SECS} \
             seconds (then poll, or follow /api/jobs/{{id}}/events)"
        ))),
    }
}

/// The preferences of one `Prefer` value in order, each name with its value (unquoted; None
/// without `=`). RFC 7240: `1#preference`, `preference = token [ BWS "=" BWS word ] *( OWS ";"
/// [ OWS parameter ] )`; parameters are left out, and commas or semicolons inside a quoted
/// string do not split.
fn preferences(value: &str) -> Vec<(&str, Option<String>)> {
    split_unquoted(value, ',')
        .into_iter()
        .filter_map(|element| {
            let head = split_unquoted(element, ';').into_iter().next()?;
            let (name, word) = match head.split_once('=') {
                Some((name, word)) => (name.trim(), Some(unquote(word.trim()))),
                None => (head.trim(), None),
            };
            (!name.is_empty()).then_some((name, word))
        })
        .collect()
}

/// `text` split at each `sep` outside a quoted string.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A word: a token as it is, a quoted string without its quotes and escapes.
fn unquote(word: &str) -> String {
    match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            out
        }
        None => word.to_owned(),
    }
}

/// The requests of this process that wait (or stream events), counted against their cap, and
/// the signal that ends every wait when the server stops. Each one holds a connection, a
/// follower and the buffers of its answer for as long as it waits: the cap is what keeps their
/// memory bounded whatever clients do.
#[derive(Debug)]
pub struct Waiters {
    waiting: AtomicUsize,
    max: usize,
    stopping: watch::Sender<bool>,
}

impl Waiters {
    pub fn new(max: usize) -> Waiters {
        Waiters {
            waiting: AtomicUsize::new(0),
            max,
            stopping: watch::Sender::new(false),
        }
    }

    /// A place for one more waiting request, or None when `max` wait already. The slot owns
    /// its share of the count, so a stream that outlives its handler can carry it.
    pub fn enter(self: &Arc<Self>) -> Option<Slot> {
        self.waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            waiters: self.clone(),
            stopping: self.stopping.subscribe(),
        })
    }

    /// Most requests that may wait at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The server stops: every wait ends now, and later ones end at once.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// One waiting request's place under the cap; freed when dropped.
pub struct Slot {
    waiters: Arc<Waiters>,
    stopping: watch::Receiver<bool>,
}

impl Slot {
    /// Resolves when the server stops (at once if it has).
    pub async fn stopped(&mut self) {
        // Err only if the sender is gone, which is the server gone: stopped too.
        let _ = self.stopping.wait_for(|stopping| *stopping).await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.waiters.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Following one job: its change signals, and a periodic re-read for the changes no signal
/// reaches this process about. The row is the truth; a signal only says when to read it.
pub struct Follower {
    db: Db,
    id: String,
    watch: Watch,
    poll: Duration,
}

impl Follower {
    /// Follow job `id` (already a canonical UUID). Signals count from now on, so a change
    /// between now and the next [`Follower::read`] is never missed.
    pub fn new(state: &AppState, id: &str) -> Follower {
        let store = &state.deps.store;
        let signalled = store.events_cross_processes() || state.config.worker.run_in_process;
        Follower {
            db: state.db().clone(),
            id: id.to_owned(),
            watch: store.events().watch(id),
            poll: if signalled {
                POLL_SIGNALLED
            } else {
                POLL_LOCAL
            },
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The job's JSON, with its webhook's delivery when it has one.
    pub async fn view(&self, job: &JobRow) -> Result<crate::jobs::model::JobView, sqlx::Error> {
        crate::jobs::webhooks::job_view(&self.db, job).await
    }

    /// The row as it is now (None: no such job); the signals so far are seen.
    pub async fn read(&mut self) -> Result<Option<JobRow>, sqlx::Error> {
        self.watch.mark_seen();
        model::get(&self.db, &self.id).await
    }

    /// Resolves at the job's next change signal not yet seen, or after the poll interval.
    pub async fn changed(&mut self) {
        tokio::select! {
            _ = self.watch.changed() => {}
            _ = tokio::time::sleep(self.poll) => {}
        }
    }

    /// Read the row until `done` holds of it, `deadline` passes or the server stops, whichever
    /// comes first: the last row read (None: the job is gone).
    pub async fn until(
        &mut self,
        slot: &mut Slot,
        deadline: Instant,
        done: impl Fn(&JobRow) -> bool,
    ) -> Result<Option<JobRow>, sqlx::Error> {
        loop {
            let job = self.read().await?;
            if job.as_ref().is_none_or(&done) || Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::select! {
                biased;
                _ = slot.stopped() => return Ok(job),
                _ = self.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(job),
            }
        }
    }
}

/// What came of a submission's wait.
pub enum Waited {
    /// No wait was asked for, or none could be granted: answer at once.
    NotApplied,
    /// Waited up to `secs`; the job is final.
    Final { job: Box<JobRow>, secs: u64 },
    /// Waited `secs`; the job is not final yet.
    NotFinal { secs: u64 },
}

impl Waited {
    /// The `Preference-Applied` value of the answer, when the wait was applied.
    pub fn applied(&self) -> Option<String> {
        match self {
            Waited::NotApplied => None,
            Waited::Final { secs, .. } | Waited::NotFinal { secs } => Some(format!("wait={secs}")),
        }
    }
}

/// Wait up to `secs` for the submitted job `id` to be final. Never an error: the job is
/// written, so a refusal now would only make the client submit it again. Past the cap of
/// waiting requests the wait is simply not applied; a failed read ends it.
pub async fn for_final(state: &AppState, id: &str, secs: Option<u64>) -> Waited {
    let Some(secs) = secs else {
        return Waited::NotApplied;
    };
    let Some(mut slot) = state.waiters.enter() else {
        tracing::warn!(job_id = %id, "too many requests waiting: a submission answers at once");
        return Waited::NotApplied;
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut follower = Follower::new(state, id);
    match follower
        .until(&mut slot, deadline, |job| job.status.is_final())
        .await
    {
        Ok(Some(job)) if job.status.is_final() => Waited::Final {
            job: Box::new(job),
            secs,
        },
        Ok(_) => Waited::NotFinal { secs },
        Err(e) => {
            tracing::warn!(job_id = %id, error = %e, "waiting for a submitted job failed: answering 202");
            Waited::NotFinal { secs }
        }
    }
}

/// Wait up to `secs` for job `id` to stop being `unchanged` (a long-poll): the row then (None:
/// the job is gone). Past the cap of waiting requests: `503 too_many_waiters`.
pub async fn for_change(
    state: &AppState,
    id: &str,
    secs: u64,
    unchanged: impl Fn(&JobRow) -> bool,
) -> Result<Option<JobRow>, ApiError> {
    let mut slot = state.waiters.enter().ok_or(ApiError::TooManyWaiters)?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut follower = Follower::new(state, id);
    Ok(follower
        .until(&mut slot, deadline, |job| !unchanged(job))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn wait(values: &[&str]) -> Result<Option<u64>, String> {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header(("Prefer", *v));
        }
        preferred(&req.to_http_request()).map_err(|e| format!("{} {e}", e.code()))
    }

    #[test]
    fn the_wait_preference_is_read_among_others_as_rfc_7240_writes_them() {
        assert_eq!(wait(&[]), Ok(None));
        assert_eq!(wait(&["wait=5"]), Ok(Some(5)));
        assert_eq!(wait(&["respond-async, wait=10"]), Ok(Some(10)));
        assert_eq!(
            wait(&["return=minimal; foo=\"a,wait=99\", WAIT = 3"]),
            Ok(Some(3))
        );
        assert_eq!(wait(&["wait=\"7\"; unit=s"]), Ok(Some(7)));
        assert_eq!(wait(&["respond-async", "wait=25"]), Ok(Some(25)));
        // The first of several counts.
        assert_eq!(wait(&["wait=2, wait=99"]), Ok(Some(2)));
        assert_eq!(wait(&["wait=4", "wait=abc"]), Ok(Some(4)));
        // Nothing to wait for.
        assert_eq!(wait(&["wait=0"]), Ok(None));
        assert_eq!(wait(&["waiting=99, handling=lenient, , ;x"]), Ok(None));
        assert_eq!(wait(&["respond-async, \u{e9}t\u{e9}"]), Ok(None));
    }

    #[test]
    fn a_wait_that_is_not_whole_seconds_up_to_25_is_refused() {
        for bad in [
            "wait=26",
            "wait=99999999999999999999999",
            "wait=abc",
            "wait=-1",
            "wait=1.5",
            "wait=",
            "wait",
            "wait=\"\"",
            "wait=5s",
        ] {
            let e = wait(&[bad]).expect_err(bad);
            assert!(e.starts_with("bad_prefer Prefer: wait"), "{bad}: {e}");
        }
        assert!(
            wait(&["wait=26"])
                .unwrap_err()
                .contains("at most 25 seconds")
        );
    }

    #[test]
    fn waiters_past_the_cap_get_no_slot_until_one_leaves() {
        let waiters = Arc::new(Waiters::new(2));
        let a = waiters.enter().expect("first");
        let _b = waiters.enter().expect("second");
        assert!(waiters.enter().is_none());
        assert_eq!(waiters.waiting(), 2);
        drop(a);
        assert!(waiters.enter().is_some());
        assert!(Arc::new(Waiters::new(0)).enter().is_none());
    }

    #[tokio::test]
    async fn stopping_ends_every_wait_at_once() {
        let waiters = Arc::new(Waiters::new(1));
        let mut slot = waiters.enter().unwrap();
        waiters.stop();
        tokio::time::timeout(Duration::from_secs(1), slot.stopped())
            .await
            .expect("ends at once");
    }
}
