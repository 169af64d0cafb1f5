//! One deployment's listener: accepts connections (resetting them during outages), hands each
//! request to its protocol's front end (`openai.rs`, `azure.rs`, `anthropic.rs`,
//! `bedrock.rs`, `gemini.rs`, `oci.rs`), and runs
//! the part every protocol shares: the connection faults (reset, no response), capacity (a
//! free slot, a place in the queue, or a refusal), and the answer's delivery: whole, after the
//! timing model's wait, or streamed (`stream.rs`). Every wait is a tokio timer (`sleep`,
//! `sleep_until`, tokio's `Instant`), so the emulator follows a paused test clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchyard_core::config::{Fault, FaultKind, Protocol};
use switchyard_wire::canonical::StreamEvent;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::answer::{self, Ask, Plan, Refusal, Verdict};
use crate::body::EmuBody;
use crate::stream::{Encode, Player};
use crate::{EmulatedDeployment, Seen, anthropic, azure, bedrock, gemini, oci, openai};

/// How long a hung response (no response, stall forever, a missing last event) is held at most.
pub(crate) const HANG: Duration = Duration::from_secs(600);
const MAX_BODY: usize = 16 * 1024 * 1024;

pub(crate) type Reply = Result<Response<EmuBody>, std::io::Error>;

pub(crate) async fn serve(listener: TcpListener, dep: Arc<EmulatedDeployment>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        if is_down(&dep) {
            dep.record(Seen::ConnectionReset, false, false);
            reset(&stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(dep.clone(), stream));
    }
}

/// Serves one connection to `dep`, over TCP or any other stream (an in-memory pipe).
pub(crate) async fn serve_connection<S>(dep: Arc<EmulatedDeployment>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| handle(dep.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
}

pub(crate) fn is_down(dep: &EmulatedDeployment) -> bool {
    dep.active_faults().iter().any(|f| matches!(f.kind, FaultKind::Outage | FaultKind::Flap { .. }))
}

/// Whether an outage hitting every request is on: cuts work in flight, without rolling
/// partial rates again for every token.
pub(crate) fn is_down_for_all(dep: &EmulatedDeployment) -> bool {
    dep.outage_for_all()
}

/// Closes with RST rather than FIN, as a dead host's stack or load balancer would.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

pub(crate) fn aborted() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "emulated fault: connection reset")
}

/// A whole response with extra headers; a Retry-After is sent both in seconds and, as OpenAI
/// and Azure do, in ms.
pub(crate) fn respond_with(
    status: StatusCode,
    content_type: &'static str,
    retry_after: Option<Duration>,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Reply {
    let mut builder = Response::builder().status(status).header(header::CONTENT_TYPE, content_type);
    if let Some(wait) = retry_after {
        builder = builder
            .header(header::RETRY_AFTER, wait.as_secs_f64().ceil().max(1.0).to_string())
            .header("retry-after-ms", wait.as_millis().to_string());
    }
    for (name, value) in headers {
        builder = builder.header(HeaderName::from_static(name), HeaderValue::from_str(value).map_err(invalid)?);
    }
    builder.body(EmuBody::full(body)).map_err(invalid)
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    retry_after: Option<Duration>,
    body: Vec<u8>,
) -> Reply {
    respond_with(status, content_type, retry_after, &[], body)
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Reply {
    respond(status, "application/json", None, body)
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A status from a fault plan, or 500 for one HTTP cannot carry.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Counts a request in flight until dropped.
pub(crate) struct InFlight(
    Arc<EmulatedDeployment>,
    #[expect(dead_code, reason = "held for its drop")] Option<OwnedSemaphorePermit>,
);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(dep: Arc<EmulatedDeployment>, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(aborted()),
    };
    match dep.protocol {
        Protocol::OpenAi => openai::handle(dep, &parts, body).await,
        Protocol::Anthropic => anthropic::handle(dep, &parts, body).await,
        Protocol::Bedrock => bedrock::handle(dep, &parts, body).await,
        Protocol::AzureOpenAi => azure::handle(dep, &parts, body).await,
        Protocol::Gemini => gemini::handle(dep, &parts, body).await,
        Protocol::Oci => oci::handle(dep, &parts, body).await,
    }
}

/// The faults that end a request before any response: an outage resets it, as does a reset
/// before headers; no response holds it. `Some` when one is active (after the wait).
pub(crate) async fn hang_up(dep: &EmulatedDeployment, faults: &[Fault]) -> Option<Reply> {
    let has = |pred: fn(&FaultKind) -> bool| faults.iter().any(|f| pred(&f.kind));
    if has(|k| matches!(k, FaultKind::Outage | FaultKind::Flap { .. })) {
        dep.record(Seen::ConnectionReset, false, false);
        return Some(Err(aborted()));
    }
    if has(|k| matches!(k, FaultKind::ResetBeforeHeaders)) {
        dep.record(Seen::ResetBeforeHeaders, false, false);
        return Some(Err(aborted()));
    }
    if has(|k| matches!(k, FaultKind::NoResponse)) {
        dep.record(Seen::NoResponse, false, false);
        tokio::time::sleep(HANG).await;
        return Some(Err(aborted()));
    }
    None
}

/// Capacity: a free slot, else a place in the queue, else `Err` (with the request counted in
/// flight either way, until the guard is dropped).
async fn admit(dep: &Arc<EmulatedDeployment>) -> Result<InFlight, InFlight> {
    let permit = match &dep.slots {
        None => Ok(None),
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) if dep.waiting.fetch_add(1, Ordering::Relaxed) < dep.spec.max_queue => {
                let permit = slots.clone().acquire_owned().await;
                dep.waiting.fetch_sub(1, Ordering::Relaxed);
                permit.map(Some).map_err(|_| ())
            }
            Err(_) => {
                dep.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(())
            }
        },
    };
    dep.in_flight.fetch_add(1, Ordering::Relaxed);
    match permit {
        Ok(permit) => Ok(InFlight(dep.clone(), permit)),
        Err(()) => Err(InFlight(dep.clone(), None)),
    }
}

/// A protocol's way of writing what [`answer::plan`] decided.
pub(crate) trait Speaker: Send + 'static {
    type Encoder: Encode;
    /// A content filter ends an answer (its finish reason) rather than refusing the request.
    const IN_BAND_FILTER: bool;
    /// How a tool call's id begins.
    const TOOL_ID_PREFIX: &'static str;
    fn refuse(&self, dep: &EmulatedDeployment, refusal: &Refusal) -> Reply;
    fn whole(&self, dep: &EmulatedDeployment, plan: &Plan) -> Reply;
    /// The stream's encoder, its opening event and its response head.
    fn stream(&self, dep: &EmulatedDeployment, plan: &Plan) -> (Self::Encoder, StreamEvent, http::response::Builder);
}

/// Serves a decoded chat request: capacity, the decision, then the answer whole or streamed.
pub(crate) async fn chat<S: Speaker>(dep: Arc<EmulatedDeployment>, speaker: S, ask: Ask, faults: Vec<Fault>) -> Reply {
    let stream = ask.stream;
    let guard = match admit(&dep).await {
        Ok(guard) => guard,
        Err(_guard) => {
            dep.record(Seen::RateLimited, stream, false);
            return speaker.refuse(&dep, &Refusal::Capacity { retry_after: dep.spec.retry_after });
        }
    };
    let plan = match answer::plan(&dep, &ask, &faults, S::IN_BAND_FILTER, S::TOOL_ID_PREFIX) {
        Verdict::Answer(plan) => *plan,
        Verdict::Refuse(refusal, seen) => {
            dep.record(seen, stream, seen == Seen::PrefillRejected);
            return speaker.refuse(&dep, &refusal);
        }
        Verdict::Garbage => {
            dep.record(Seen::Garbage, stream, false);
            let page = b"<html><body>502 Bad Gateway (upstream proxy)</body></html>".to_vec();
            return respond(StatusCode::OK, "text/html", None, page);
        }
    };
    if !stream {
        let n = u32::try_from(plan.answer.pieces().len()).unwrap_or(u32::MAX);
        tokio::time::sleep(plan.ttft + plan.per_token * n.saturating_sub(1)).await;
        if is_down_for_all(&dep) {
            // The deployment went down while this request was being served.
            dep.record(Seen::ConnectionReset, false, plan.prefill);
            return Err(aborted());
        }
        dep.record(plan.outcome, false, plan.prefill);
        drop(guard);
        return speaker.whole(&dep, &plan);
    }
    let (encoder, start, head) = speaker.stream(&dep, &plan);
    let (tx, body) = EmuBody::channel();
    let player = Player { dep: dep.clone(), plan, start, encoder };
    tokio::spawn(async move {
        let _guard = guard;
        player.run(tx).await;
    });
    head.status(StatusCode::OK).body(body).map_err(invalid)
}
