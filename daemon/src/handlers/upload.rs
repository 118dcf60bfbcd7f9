//! Request bodies nobody reads to the end: streamed uploads (`docker load`, `import`, `cp`
//! into a container), whose body becomes a blocking reader for the engine, and every early
//! answer (a route berthd does not serve, a refused API version, a bad query or body),
//! whose request body is read and discarded before the answer goes out.
//!
//! The draining matters: when berthd answers before it has the whole body (an unknown
//! route, an upload the engine refuses early or stops reading at the tar's end-of-archive
//! blocks), hyper would close the connection with the client still writing, and the client
//! would report "broken pipe" instead of the answer berthd sent. Go's net/http drains a
//! little for the same reason. berthd waits up to [`DRAIN_TIME`] for the rest of the body
//! before it answers; a body still coming after that gets its answer while berthd goes on
//! discarding, up to [`DRAIN_LIMIT`] bytes, and then the connection is closed.

use std::io::Read;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// The most berthd reads and discards of a body nobody wants any more.
pub const DRAIN_LIMIT: usize = 1 << 30;
/// The longest berthd waits for a client to finish a body nobody wants any more.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Turns a request body into a blocking reader for the engine (streamed, never held whole
/// in memory) and the [`Drain`] to await, once the reader is dropped, before answering.
pub fn upload(body: Body) -> (Box<dyn Read + Send>, Drain) {
    // A few chunks in flight: enough to keep the blocking reader busy, little memory.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let forwarder = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            if tx.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                // The engine stopped reading: the rest is discarded.
                discard(stream).await;
                return;
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let reader = SyncIoBridge::new(StreamReader::new(Box::pin(chunks)));
    (Box::new(reader), Drain(forwarder))
}

/// What is left of an upload once the engine has its reader.
pub struct Drain(JoinHandle<()>);

impl Drain {
    /// Waits until the client has sent the whole body (or the drain limits are reached).
    /// The engine's reader must be dropped by then, or this waits the whole [`DRAIN_TIME`].
    pub async fn finish(self) {
        let _ = tokio::time::timeout(DRAIN_TIME, self.0).await;
    }
}

/// Reads and discards the rest of a body, at most [`DRAIN_LIMIT`] bytes (or until it fails).
async fn discard(mut stream: axum::body::BodyDataStream) {
    let mut drained = 0usize;
    while let Some(Ok(bytes)) = stream.next().await {
        drained += bytes.len();
        if drained > DRAIN_LIMIT {
            return;
        }
    }
}

/// Middleware: every answer goes out once the client has sent its whole request body (or
/// the drain limits are reached), whether the handler read the body or not. A body still
/// held by the handler's work when the answer is ready (an upload being drained, a
/// hijacked stream) is left to it.
pub async fn read_body_first(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    // A body announced larger than the limit would not be read whole anyway: its answer
    // goes out at once.
    let too_large = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > DRAIN_LIMIT as u64);
    if body.is_end_stream() || too_large {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let (back, returned) = oneshot::channel();
    let body = Body::new(Unread {
        inner: body,
        back: Some(back),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if let Ok(rest) = { returned }.try_recv() {
        let _ = tokio::time::timeout(DRAIN_TIME, discard(rest.into_data_stream())).await;
    }
    response
}

/// A request body that, dropped before its end, hands what is left back to
/// [`read_body_first`].
struct Unread {
    inner: Body,
    back: Option<oneshot::Sender<Body>>,
}

impl hyper::body::Body for Unread {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(back) = self.back.take() {
            if !self.inner.is_end_stream() {
                let _ = back.send(std::mem::take(&mut self.inner));
            }
        }
    }
}
