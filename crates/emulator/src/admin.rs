//! The emulator's admin API: set fault plans live and read what each deployment saw.
//!
//! `PUT /faults/{deployment}` with a JSON array of faults (the config's fault shape) replaces
//! that deployment's plan, windows counting from now; `GET /stats` returns counts per outcome.
//!
//! It has no authentication, so it is for loopback only: `Emulator::start` refuses to listen on
//! another address, and requests from a peer that is not loopback get 403, unless remote access
//! is allowed explicitly (`AdminBind::allow_remote`, `switchyard emulate --admin-allow-remote`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::json;
use switchyard_core::config::emulation::faults_from_raw;
use switchyard_core::config::raw::RawFault;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::EmulatedDeployment;

type Deployments = BTreeMap<String, Arc<EmulatedDeployment>>;

/// Whether `addr` is a loopback address (an IPv4-mapped `::ffff:127.0.0.1` included).
pub(crate) fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

pub(crate) async fn serve(
    listener: TcpListener,
    deployments: Deployments,
    allow_remote: bool,
    mut stop: watch::Receiver<bool>,
) {
    let deployments = Arc::new(deployments);
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else { continue };
        let deployments = deployments.clone();
        let access = Access { peer, allow_remote };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(deployments.clone(), access, req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Who is asking, and whether remote peers may.
#[derive(Clone, Copy, Debug)]
struct Access {
    peer: SocketAddr,
    allow_remote: bool,
}

async fn handle<B>(
    deployments: Arc<Deployments>,
    access: Access,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !access.allow_remote && !is_loopback(access.peer) {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"error": format!("the admin API answers loopback peers only, not {}", access.peer.ip())}),
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "body too large"}));
        }
    };
    if method == Method::GET && path == "/stats" {
        let stats: BTreeMap<&str, BTreeMap<String, usize>> = deployments
            .iter()
            .map(|(name, d)| {
                let mut counts = BTreeMap::new();
                for r in d.records() {
                    *counts.entry(format!("{:?}", r.outcome)).or_insert(0) += 1;
                }
                (name.as_str(), counts)
            })
            .collect();
        return reply(StatusCode::OK, json!(stats));
    }
    if method == Method::PUT
        && let Some(name) = path.strip_prefix("/faults/")
    {
        let Some(dep) = deployments.get(name) else {
            return reply(StatusCode::NOT_FOUND, json!({"error": format!("unknown deployment {name}")}));
        };
        let raw: Vec<RawFault> = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()})),
        };
        return match faults_from_raw(&raw, "faults") {
            Ok(faults) => {
                let n = faults.len();
                dep.set_faults(faults);
                reply(StatusCode::OK, json!({"deployment": name, "faults": n}))
            }
            Err(errors) => reply(StatusCode::BAD_REQUEST, json!({"errors": errors})),
        };
    }
    reply(StatusCode::NOT_FOUND, json!({"error": format!("no route for {method} {path}")}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(peer: &str, allow_remote: bool) -> Access {
        Access { peer: peer.parse().unwrap(), allow_remote }
    }

    async fn status(access: Access, method: Method, path: &str) -> StatusCode {
        let req = Request::builder().method(method).uri(path).body(Full::new(Bytes::new())).unwrap();
        handle(Arc::new(Deployments::new()), access, req).await.unwrap().status()
    }

    #[test]
    fn loopback_addresses_are_recognised() {
        for addr in ["127.0.0.1:9100", "127.8.9.10:1", "[::1]:9100", "[::ffff:127.0.0.1]:9100"] {
            assert!(is_loopback(addr.parse().unwrap()), "{addr}");
        }
        for addr in ["0.0.0.0:9100", "10.0.0.7:9100", "[::]:9100", "[2001:db8::1]:9100", "[::ffff:10.0.0.7]:1"] {
            assert!(!is_loopback(addr.parse().unwrap()), "{addr}");
        }
    }

    #[tokio::test]
    async fn remote_peers_get_403_unless_allowed() {
        assert_eq!(status(access("10.0.0.7:5555", false), Method::GET, "/stats").await, StatusCode::FORBIDDEN);
        assert_eq!(status(access("[2001:db8::1]:5555", false), Method::PUT, "/faults/x").await, StatusCode::FORBIDDEN);
        assert_eq!(status(access("127.0.0.1:5555", false), Method::GET, "/stats").await, StatusCode::OK);
        assert_eq!(status(access("[::1]:5555", false), Method::GET, "/stats").await, StatusCode::OK);
        assert_eq!(status(access("10.0.0.7:5555", true), Method::GET, "/stats").await, StatusCode::OK);
    }

    const CONFIG: &str = r#"
clouds: [{ name: c, protocol: openai }]
deployments:
  - { name: d0, cloud: c, region: r, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: { input_per_mtok: 1 } }
aliases: [{ name: chat, deployments: [d0] }]
"#;

    #[tokio::test]
    async fn the_admin_api_refuses_to_listen_beyond_loopback() {
        let config = switchyard_core::Config::from_yaml(CONFIG, &switchyard_core::config::NoSecrets).unwrap();
        for addr in ["0.0.0.0:9100", "[::]:9100", "192.0.2.1:9100"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let result = crate::Emulator::start(&config, crate::Bind::Ephemeral, Some(addr), 1).await;
            let Err(e) = result else { panic!("{addr}: the admin API must not listen there") };
            assert!(matches!(e, crate::EmulatorError::RemoteAdmin(a) if a == addr), "{e}");
            assert!(e.to_string().contains("--admin-allow-remote"), "{e}");
        }
        let allowed = crate::AdminBind { addr: "0.0.0.0:9100".parse().unwrap(), allow_remote: true };
        assert!(allowed.check().is_ok());
    }

    #[tokio::test]
    async fn the_admin_api_serves_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = switchyard_core::Config::from_yaml(CONFIG, &switchyard_core::config::NoSecrets).unwrap();
        let admin = Some("127.0.0.1:0".parse().unwrap());
        let emulator = crate::Emulator::start(&config, crate::Bind::Ephemeral, admin, 1).await.unwrap();
        let mut stream = tokio::net::TcpStream::connect(emulator.admin_addr().unwrap()).await.unwrap();
        stream.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"d0\""), "{response}");
    }
}
