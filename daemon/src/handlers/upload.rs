//! Streamed uploads (`docker load`, `import`, `cp` into a container): the body becomes a
//! blocking reader for the engine, and what the engine leaves unread is drained before the
//! response goes out.
//!
//! The draining matters: when the engine refuses an upload early (a missing destination, a
//! bad archive) or stops at the tar's end-of-archive blocks, hyper would close the
//! connection with the client still writing, and the client would report "broken pipe"
//! instead of the error berthd sent. Go's net/http drains a little for the same reason.
//! berthd waits up to [`DRAIN_TIME`] for the rest of the body before it answers; an upload
//! still going after that gets its answer while berthd goes on discarding, up to
//! [`DRAIN_LIMIT`] bytes, and then the connection is closed.

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::io::{StreamReader, SyncIoBridge};

/// The most berthd reads and discards of an upload nobody wants any more.
pub const DRAIN_LIMIT: usize = 1 << 30;
/// The longest berthd waits for a client to finish an upload nobody wants any more.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Turns a request body into a blocking reader for the engine (streamed, never held whole
/// in memory) and the [`Drain`] to await, once the reader is dropped, before answering.
pub fn upload(body: Body) -> (Box<dyn Read + Send>, Drain) {
    // A few chunks in flight: enough to keep the blocking reader busy, little memory.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let forwarder = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut wanted = true;
        let mut drained = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            if wanted {
                wanted = tx.send(chunk).await.is_ok();
                continue;
            }
            match chunk {
                Ok(bytes) if drained + bytes.len() <= DRAIN_LIMIT => drained += bytes.len(),
                _ => break,
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
