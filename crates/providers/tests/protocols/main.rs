//! The upstream protocols through the crate's public API: requests as an in-memory peer
//! receives them, refusals as classified, and answers read back as OpenAI chunks.

mod answers;
mod embed;
mod gemini;
mod oci;
mod oci_native;
mod props;
mod requests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use switchyard_core::AttemptError;
use switchyard_core::config::Protocol;
use switchyard_providers::sigv4::Credentials;
use switchyard_providers::{Auth, AzureCredential, Dial, Endpoint, Operation, Transport, Upstream};

const OPENAI_MODEL: &str = "gpt-4o-2024-08-06";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5-20250929";
const BEDROCK_MODEL: &str = "us.meta.llama3-3-70b-instruct-v1:0";
const BEDROCK_HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const AZURE_HOST: &str = "contoso-sweden.openai.azure.com";
/// An Azure deployment name: what goes in the URL, not a model id.
const AZURE_DEPLOYMENT: &str = "gpt-4o-prod";
const GEMINI_MODEL: &str = "gemini-2.5-flash";

fn openai() -> Endpoint {
    Endpoint {
        base: "http://vllm.internal:8000/v1".into(),
        protocol: Protocol::OpenAi,
        auth: Auth::Bearer("sk-test".into()),
        model: OPENAI_MODEL.into(),
        region: "local".into(),
    }
}

fn anthropic(key: Option<&str>) -> Endpoint {
    Endpoint {
        base: "https://api.anthropic.com/v1".into(),
        protocol: Protocol::Anthropic,
        auth: Auth::Anthropic { key: key.map(str::to_owned), version: "2023-06-01".into() },
        model: ANTHROPIC_MODEL.into(),
        region: "global".into(),
    }
}

fn bedrock(auth: Auth) -> Endpoint {
    Endpoint {
        base: format!("https://{BEDROCK_HOST}"),
        protocol: Protocol::Bedrock,
        auth,
        model: BEDROCK_MODEL.into(),
        region: "us-east-1".into(),
    }
}

/// An Azure OpenAI resource's deployment `AZURE_DEPLOYMENT`, at `base` (the resource, or its
/// v1 API under `/openai/v1`).
fn azure(base: &str, credential: AzureCredential) -> Endpoint {
    Endpoint {
        base: base.into(),
        protocol: Protocol::AzureOpenAi,
        auth: Auth::Azure { credential, api_version: "2024-10-21".into() },
        model: AZURE_DEPLOYMENT.into(),
        region: "swedencentral".into(),
    }
}

/// The key pair of AWS's published SigV4 test suite, with a session token when given.
fn aws(session_token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: session_token.map(str::to_owned),
    }
}

/// One request as the peer received it.
#[derive(Debug)]
struct Captured {
    method: Method,
    /// As sent: origin form, the path and query.
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("a text header"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What the peer answers every request with.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply { status, headers: vec![("content-type".into(), content_type.into())], body: body.into() }
    }

    /// A JSON answer, as every protocol's error bodies are.
    fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::new(status, "application/json", body)
    }

    fn with(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn response(&self) -> http::Response<Full<Bytes>> {
        let mut response = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            response = response.header(name, value);
        }
        response.body(Full::new(self.body.clone())).expect("a response")
    }
}

/// An in-memory peer: hyper's HTTP/1 server on a pipe per connection, recording each request
/// whole before it answers with its reply.
struct Peer {
    dial: Dial,
    requests: Arc<Mutex<Vec<Captured>>>,
    dials: Arc<AtomicUsize>,
}

impl Peer {
    fn answering(reply: Reply) -> Peer {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let dials = Arc::new(AtomicUsize::new(0));
        let (seen, counted) = (requests.clone(), dials.clone());
        let dial: Dial = Arc::new(move |_: &Uri| {
            counted.fetch_add(1, Ordering::Relaxed);
            let (near, far) = tokio::io::duplex(64 * 1024);
            let (seen, reply) = (seen.clone(), reply.clone());
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let (seen, reply) = (seen.clone(), reply.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let captured = Captured { method: parts.method, uri: parts.uri, headers: parts.headers, body };
                    seen.lock().expect("not poisoned").push(captured);
                    Ok::<_, hyper::Error>(reply.response())
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(far), service));
            Ok(near)
        });
        Peer { dial, requests, dials }
    }

    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.requests.lock().expect("not poisoned"))
    }

    fn dials(&self) -> usize {
        self.dials.load(Ordering::Relaxed)
    }
}

/// One attempt and what came of it.
struct Exchange {
    /// The answer's status and body, or the attempt's failure.
    outcome: Result<(u16, Bytes), AttemptError>,
    requests: Vec<Captured>,
    dials: usize,
}

impl Exchange {
    /// The one request the peer received.
    fn request(&self) -> &Captured {
        assert_eq!(self.requests.len(), 1, "one request sent: {:?}", self.outcome);
        &self.requests[0]
    }
}

/// Sends `body` (an OpenAI body, as the gateway hands over) to a deployment at `endpoint`
/// whose peer answers `reply`.
async fn exchange(endpoint: Endpoint, operation: Operation, body: &[u8], reply: Reply) -> Exchange {
    let peer = Peer::answering(reply);
    let upstream = Upstream::with_transport(Duration::from_secs(1), &[endpoint], Transport::Memory(peer.dial.clone()))
        .expect("an upstream");
    let outcome = match upstream.send(0, operation, body.to_vec(), Duration::from_secs(5)).await {
        Ok(response) => {
            let status = response.status().as_u16();
            Ok((status, response.into_body().collect().await.expect("the answer's body").to_bytes()))
        }
        Err(e) => Err(e),
    };
    Exchange { outcome, requests: peer.take(), dials: peer.dials() }
}

/// [`exchange`] of a chat completion answered with an empty JSON 200.
async fn chat(endpoint: Endpoint, body: &[u8]) -> Exchange {
    exchange(endpoint, Operation::ChatCompletions, body, Reply::json(200, "{}")).await
}
