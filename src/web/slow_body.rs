//! Pacing of request bodies: a client must keep sending, or its request ends with a 408.
//!
//! actix bounds the time to send a request's headers (`client_request_timeout`), not its body.
//! A client that trickles a body a byte a second would hold its connection, its share of the
//! body budget ([`super::upload::Budget`]) and its handler for as long as it likes; a few
//! hundred such clients would keep everyone else's uploads waiting for the budget. So every
//! body is read through [`Paced`]: it must bring at least [`MIN_BYTES_PER_WINDOW`] in every
//! [`WINDOW`] the server spends waiting for it (about 1 KiB/s, far below any real link), or
//! reading it fails with [`TooSlow`] and the request is answered `408 body_too_slow`.
//!
//! Only time spent waiting on the client counts: while a handler is not reading (waiting for
//! the body budget, writing a part to the database) the clock stops, so a slow server never
//! blames its client.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// The span of waiting over which a body's pace is judged.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The least a body must bring in each [`WINDOW`] of waiting, unless it ends first.
pub const MIN_BYTES_PER_WINDOW: u64 = 10 * 1024;

/// Why a body was cut off: it came slower than the least pace.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived too slowly: this server needs at least {} KiB in every {} s",
    MIN_BYTES_PER_WINDOW / 1024,
    WINDOW.as_secs()
)]
pub struct TooSlow;

/// Whether `e`, or an error under it, is a body cut off by [`Paced`].
pub fn is_too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<TooSlow>())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// actix-web middleware (use with `actix_web::middleware::from_fn`): every request body is
/// read through [`Paced`].
pub async fn pace_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let body = req.take_payload();
    if matches!(body, Payload::None) {
        // No body to wait for (most requests): nothing to pace, and nothing to allocate.
        req.set_payload(body);
    } else {
        let paced: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(Paced::new(body));
        req.set_payload(Payload::from(paced));
    }
    next.call(req).await
}

/// A body stream that fails with [`TooSlow`] when its client falls below the least pace.
pub struct Paced<S> {
    inner: S,
    /// Bytes received since the window began.
    bytes: u64,
    /// Waiting done in this window before the current wait.
    waited: Duration,
    /// When the current wait for the client began (None: not waiting).
    waiting_since: Option<Instant>,
    /// Fires when the current wait would use up the window.
    timer: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl<S> Paced<S> {
    pub fn new(inner: S) -> Paced<S> {
        Paced {
            inner,
            bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            failed: false,
        }
    }
}

impl<S> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                this.bytes += chunk.len() as u64;
                if this.bytes >= MIN_BYTES_PER_WINDOW {
                    // Enough for this window: the next one starts now.
                    this.bytes = 0;
                    this.waited = Duration::ZERO;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let deadline = since + WINDOW.saturating_sub(this.waited);
                if now >= deadline {
                    this.failed = true;
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, TooSlow);
                    return Poll::Ready(Some(Err(PayloadError::Io(e))));
                }
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    // The deadline passed between the check and now: judge on the next poll.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunk(n: usize) -> Result<Bytes, PayloadError> {
        Ok(Bytes::from(vec![b'a'; n]))
    }

    /// A body whose chunks come `every` apart.
    fn trickle(
        chunks: usize,
        size: usize,
        every: Duration,
    ) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        Box::pin(futures_util::stream::unfold(0, move |i| async move {
            if i == chunks {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((chunk(size), i + 1))
        }))
    }

    async fn read_all(
        mut body: impl Stream<Item = Result<Bytes, PayloadError>> + Unpin,
    ) -> Result<u64, PayloadError> {
        let mut n = 0;
        while let Some(c) = body.next().await {
            n += c?.len() as u64;
        }
        Ok(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_trickled_a_byte_a_second_is_cut_off_after_one_window() {
        let started = Instant::now();
        let e = read_all(Paced::new(trickle(1000, 1, Duration::from_secs(1))))
            .await
            .expect_err("too slow");
        assert!(is_too_slow(&e), "{e}");
        assert_eq!(started.elapsed().as_secs(), WINDOW.as_secs());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_body_of_2_kib_a_second_is_read_whole() {
        let n = read_all(Paced::new(trickle(60, 2048, Duration::from_secs(1))))
            .await
            .expect("steady enough");
        assert_eq!(n, 60 * 2048);
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_reader_spends_elsewhere_is_not_held_against_the_client() {
        // The client sent everything at once; the reader took 30 s over each chunk.
        let mut body = Paced::new(futures_util::stream::iter([chunk(10), chunk(10)]));
        for _ in 0..2 {
            tokio::time::sleep(3 * WINDOW).await;
            assert_eq!(body.next().await.unwrap().unwrap().len(), 10);
        }
        assert!(body.next().await.is_none());
    }

    #[test]
    fn a_cut_off_body_is_recognised_under_the_form_parser_s_error_too() {
        let cut = || PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, TooSlow));
        assert!(is_too_slow(&cut()));
        assert!(is_too_slow(
            &actix_multipart::MultipartError::Payload(cut())
        ));
        let other = std::io::Error::new(std::io::ErrorKind::TimedOut, "elsewhere");
        assert!(!is_too_slow(&PayloadError::Io(other)));
        assert!(!is_too_slow(&PayloadError::Overflow));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_silent_for_a_whole_window_is_cut_off_even_after_a_fast_start() {
        let fast = futures_util::stream::iter([chunk(20 * 1024)]);
        let silent = futures_util::stream::pending();
        let mut body = Paced::new(Box::pin(fast.chain(silent)));
        assert!(body.next().await.unwrap().is_ok());
        let started = Instant::now();
        let e = body.next().await.unwrap().expect_err("silent");
        assert!(is_too_slow(&e));
        assert_eq!(started.elapsed(), WINDOW);
        assert!(body.next().await.is_none(), "nothing after the error");
    }
}
