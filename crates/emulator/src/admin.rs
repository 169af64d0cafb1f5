//! The emulator's admin API: set fault plans live and read what each deployment saw.
//!
//! `PUT /faults/{deployment}` with a JSON array of faults (the config's fault shape) replaces
//! that deployment's plan, windows counting from now; `GET /stats` returns counts per outcome.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use switchyard_core::config::emulation::faults_from_raw;
use switchyard_core::config::raw::RawFault;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::EmulatedDeployment;

type Deployments = BTreeMap<String, Arc<EmulatedDeployment>>;

pub(crate) async fn serve(listener: TcpListener, deployments: Deployments, mut stop: watch::Receiver<bool>) {
    let deployments = Arc::new(deployments);
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let deployments = deployments.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(deployments.clone(), req));
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

async fn handle(
    deployments: Arc<Deployments>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
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
