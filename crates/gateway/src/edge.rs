//! What every request goes through before routing: a request id (the caller's `x-request-id`
//! when it is a sane one, else a new one) that names the request's span, so every log line of
//! the request carries it, and comes back on every response, errors included; and the check
//! that an HTTP/1.1 request carries `Host`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::convert::Infallible;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower_service::Service;
use tracing::Instrument;

use crate::Gateway;
use crate::error::ApiError;

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in its extensions for the handlers (the ledger keys records by it).
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) std::sync::Arc<str>);

/// Makes request ids: a per-process nonce and a counter, no lock.
#[derive(Debug)]
pub(crate) struct RequestIds {
    nonce: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new(nonce: u64) -> RequestIds {
        RequestIds { nonce, next: AtomicU64::new(0) }
    }

    /// `req_` and 24 hex digits: 12 of the nonce, 12 of the counter.
    pub(crate) fn make(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(28);
        id.push_str("req_");
        for word in [self.nonce, n] {
            for shift in (0..12).rev() {
                id.push(char::from(HEX[((word >> (shift * 4)) & 0xf) as usize]));
            }
        }
        id
    }
}

/// A caller's id is kept when it is 1 to 128 characters of letters, digits and `-_.:/+=`.
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// Serves one request through `router`, as the connection's service: no middleware layer, so
/// nothing is boxed or cloned per request beyond the router's `Arc`.
pub(crate) async fn handle(
    gw: Arc<Gateway>,
    mut router: axum::Router,
    mut request: hyper::Request<hyper::body::Incoming>,
) -> Result<Response, Infallible> {
    let id = match request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(given) if sane(given) => given.to_owned(),
        _ => gw.request_ids.make(),
    };
    let span = tracing::info_span!("request", id = %id, tenant = tracing::field::Empty, key = tracing::field::Empty);
    request.extensions_mut().insert(RequestId(std::sync::Arc::from(id.as_str())));
    let mut response =
        if request.version() == axum::http::Version::HTTP_11 && !request.headers().contains_key(header::HOST) {
            let message = "HTTP/1.1 requests must carry a Host header".to_owned();
            ApiError::BadRequest { message, param: None }.into_response()
        } else {
            match router.call(request.map(axum::body::Body::new)).instrument(span).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_callers_ids_are_checked() {
        let ids = RequestIds::new(0xabc);
        let (a, b) = (ids.make(), ids.make());
        assert_ne!(a, b);
        assert!(sane(&a) && a.starts_with("req_"), "{a}");
        assert_eq!(a, "req_000000000abc000000000000");
        assert!(sane("3f2a-9c.01:trace/x+y="));
        assert!(!sane("") && !sane("a b") && !sane("bad\nid") && !sane(&"x".repeat(129)));
    }
}
