//! Reading request bodies: within a deadline, within the per-request limit and a global bound on
//! the bytes all requests hold while they are being received; and draining a body the gateway
//! refuses, so that the caller reads the answer instead of a broken pipe.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::Gateway;
use crate::error::ApiError;

/// Most bytes read and thrown away from a body the gateway refuses before it answers.
const MAX_DRAIN: usize = 64 * 1024 * 1024;

/// Bytes of request bodies being received right now, across all connections.
#[derive(Debug, Default)]
pub(crate) struct BodyBytes(AtomicUsize);

/// A share of [`BodyBytes`], given back when dropped.
struct Hold<'a> {
    total: &'a BodyBytes,
    n: usize,
}

impl Hold<'_> {
    /// Grows the hold to `n` bytes, unless that takes the total past `limit`.
    fn grow_to(&mut self, n: usize, limit: usize) -> Result<(), ApiError> {
        if n <= self.n {
            return Ok(());
        }
        let more = n - self.n;
        let before = self.total.0.fetch_add(more, Ordering::Relaxed);
        if before.saturating_add(more) > limit {
            self.total.0.fetch_sub(more, Ordering::Relaxed);
            return Err(ApiError::Overloaded);
        }
        self.n = n;
        Ok(())
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.total.0.fetch_sub(self.n, Ordering::Relaxed);
    }
}

impl BodyBytes {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads a request body: at most `server.body_limit_bytes` (413), within
/// `server.timeouts.body_read` (408), holding a share of `server.buffered_body_limit_bytes`
/// while it arrives (503 when the gateway holds too much). A body the client cut short is a 400.
/// A refused body is drained first, so the client sees the status.
pub(crate) async fn read_body(gw: &Gateway, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let server = &gw.config.server;
    let deadline = Instant::now() + server.timeouts.body_read;
    let limit = server.body_limit_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit) {
        return Err(refuse(gw, headers, body, deadline, ApiError::PayloadTooLarge(limit)).await);
    }
    let mut hold = Hold { total: &gw.body_bytes, n: 0 };
    if let Some(n) = declared
        && let Err(e) = hold.grow_to(n, server.buffered_body_limit_bytes)
    {
        drop(hold);
        return Err(refuse(gw, headers, body, deadline, e).await);
    }
    let mut body = body;
    // A body that arrives in one frame (the usual case) is kept as it is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    // One timer for the whole body, not one per frame.
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut timer => return Err(ApiError::BodyTimeout(server.timeouts.body_read)),
        };
        let frame = match frame {
            None => break,
            Some(Err(_)) => {
                return Err(ApiError::BadRequest {
                    message: "the request body was cut off before its end".to_owned(),
                    param: None,
                });
            }
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let held = first.as_ref().map_or(buf.len(), Bytes::len);
        let len = held.saturating_add(data.len());
        if len > limit {
            drop(hold);
            return Err(refuse(gw, headers, body, deadline, ApiError::PayloadTooLarge(limit)).await);
        }
        if let Err(e) = hold.grow_to(len, server.buffered_body_limit_bytes) {
            drop(hold);
            return Err(refuse(gw, headers, body, deadline, e).await);
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(earlier) => {
                buf.reserve(declared.unwrap_or(len).max(len));
                buf.extend_from_slice(&earlier);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Reads and discards what is left of a refused body (bounded in bytes and by the body
/// deadline), then hands back the error to answer with. A client that asked to wait for
/// `100 Continue` is not drained: it has not sent the body and will read the status first.
pub(crate) async fn refuse(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    deadline: Instant,
    error: ApiError,
) -> ApiError {
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !expects_continue {
        drain(body, deadline.min(Instant::now() + gw.config.server.timeouts.body_read)).await;
    }
    error
}

async fn drain(mut body: Body, deadline: Instant) {
    let mut seen = 0usize;
    while seen <= MAX_DRAIN {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen = seen.saturating_add(frame.data_ref().map_or(0, Bytes::len)),
            Ok(Some(Err(_)) | None) | Err(_) => return,
        }
    }
}
