//! How the upstream client reaches a deployment: TCP (or TLS over it), as in production, or an
//! in-memory peer that a test or an embedder supplies, so that a whole exchange runs without a
//! socket. With no kernel IO to wait on, a test on tokio's paused clock has every wait be a
//! timer, and its time jumps exactly.

use std::fmt;
use std::future::Ready;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

/// Opens an in-memory connection to the peer that a request's URI names (by its host and
/// port), or fails as a connect would: the error becomes the attempt's connect failure.
pub type Dial = Arc<dyn Fn(&Uri) -> io::Result<DuplexStream> + Send + Sync>;

/// Where upstream connections go.
#[derive(Clone, Default)]
pub enum Transport {
    /// TCP, with TLS for `https` endpoints: production.
    #[default]
    Tcp,
    /// An in-memory pipe per connection, opened by the function given; for tests and
    /// embedders. The connect timeout does not apply.
    Memory(Dial),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "Tcp",
            Transport::Memory(_) => "Memory",
        })
    }
}

/// The client's connector for [`Transport::Memory`]: each call dials one new connection.
#[derive(Clone)]
pub(crate) struct MemoryConnector(pub(crate) Dial);

impl tower_service::Service<Uri> for MemoryConnector {
    type Response = TokioIo<MemoryStream>;
    type Error = io::Error;
    type Future = Ready<io::Result<TokioIo<MemoryStream>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        std::future::ready((self.0)(&uri).map(|pipe| TokioIo::new(MemoryStream(pipe))))
    }
}

/// One in-memory connection, as the client's pool needs it.
pub(crate) struct MemoryStream(DuplexStream);

impl Connection for MemoryStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MemoryStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for MemoryStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use switchyard_core::AttemptError;

    use super::*;
    use crate::{Endpoint, Operation, Upstream};

    /// A peer that answers every request with `status` and a fixed body, over hyper's server.
    fn answering(status: u16) -> Dial {
        Arc::new(move |_: &Uri| {
            let (near, far) = tokio::io::duplex(64 * 1024);
            let service = hyper::service::service_fn(move |_req| async move {
                let mut response = http::Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
                *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
                Ok::<_, io::Error>(response)
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(far), service));
            Ok(near)
        })
    }

    fn upstream(dial: Dial) -> Upstream {
        let endpoint = Endpoint {
            base: "http://127.0.0.1:1/v1".into(),
            protocol: switchyard_core::config::Protocol::OpenAi,
            auth: crate::Auth::Bearer("k".into()),
            model: "m".into(),
            region: "r".into(),
        };
        Upstream::with_transport(Duration::from_millis(100), &[endpoint], Transport::Memory(dial)).expect("upstream")
    }

    async fn send(upstream: &Upstream) -> Result<crate::Response, AttemptError> {
        upstream.send(0, Operation::ChatCompletions, b"{}".to_vec(), Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn a_memory_transport_carries_whole_exchanges_and_reuses_its_connection() {
        let dials = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let inner = answering(200);
        let counted = dials.clone();
        let counting = upstream(Arc::new(move |uri: &Uri| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            inner(uri)
        }));
        for _ in 0..3 {
            let response = send(&counting).await.expect("answered");
            let body = response.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"{\"ok\":true}");
        }
        assert_eq!(dials.load(std::sync::atomic::Ordering::Relaxed), 1, "kept alive and pooled");
        assert_eq!(send(&upstream(answering(503))).await.err(), Some(AttemptError::ServerError { status: 503 }));
    }

    #[tokio::test]
    async fn memory_connect_failures_and_resets_classify_as_over_tcp() {
        let refused = upstream(Arc::new(|_: &Uri| Err(io::Error::from(io::ErrorKind::ConnectionRefused))));
        assert!(matches!(send(&refused).await, Err(AttemptError::ConnectFailed { .. })));
        // The peer takes the connection and drops it at once, as a reset at accept does.
        let reset = upstream(Arc::new(|_: &Uri| Ok(tokio::io::duplex(1024).0)));
        assert_eq!(send(&reset).await.err(), Some(AttemptError::ResetBeforeHeaders));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_memory_peer_times_out_at_first_byte_on_the_paused_clock() {
        let (keep, _held) = tokio::sync::mpsc::unbounded_channel::<DuplexStream>();
        let silent = upstream(Arc::new(move |_: &Uri| {
            let (near, far) = tokio::io::duplex(1024);
            let _ = keep.send(far);
            Ok(near)
        }));
        let started = tokio::time::Instant::now();
        assert_eq!(send(&silent).await.err(), Some(AttemptError::FirstByteTimeout));
        assert_eq!(started.elapsed(), Duration::from_secs(1), "exactly the first-byte timeout");
    }
}
