//! Deployments reached without a socket: a connection is any `AsyncRead + AsyncWrite` stream
//! (an in-memory pipe, in the gateway's tests), served by the code that serves a TCP
//! connection. With no kernel IO in the way, a test on tokio's paused clock sees the
//! emulator's timing exactly.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http::Uri;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::sync::watch;

use crate::{EmulatedDeployment, Seen, server};

/// What each direction of an in-memory connection buffers before its writer waits: about what
/// a loopback socket takes.
const PIPE_BYTES: usize = 256 * 1024;

/// Connects to the emulator's deployments in memory, each by the host and port of its
/// endpoint ([`EmulatedDeployment::addr`]). Works whatever the [`Bind`](crate::Bind); with
/// `Bind::Memory` it is the only way in. Cheap to clone. Once the emulator is dropped, every
/// connection is refused.
#[derive(Clone)]
pub struct Dialer {
    deployments: Arc<BTreeMap<SocketAddr, Arc<EmulatedDeployment>>>,
    stop: watch::Receiver<bool>,
}

impl Dialer {
    pub(crate) fn new(
        deployments: impl Iterator<Item = Arc<EmulatedDeployment>>,
        stop: watch::Receiver<bool>,
    ) -> Dialer {
        Dialer { deployments: Arc::new(deployments.map(|d| (d.addr, d)).collect()), stop }
    }

    /// Opens a connection to the deployment that `uri`'s host and port name, served on a task
    /// of its own; the caller gets the other end of an in-memory pipe. Must be called within a
    /// tokio runtime.
    pub fn connect(&self, uri: &Uri) -> io::Result<DuplexStream> {
        let (near, far) = tokio::io::duplex(PIPE_BYTES);
        self.accept(uri, far)?;
        Ok(near)
    }

    /// Serves `stream` as a connection to the deployment that `uri`'s host and port name, on a
    /// task of its own. As a listener does, it takes the connection and, during an outage,
    /// drops it at once (the peer reads the end of the stream); an address that names no
    /// deployment is refused.
    pub fn accept<S>(&self, uri: &Uri, stream: S) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let refused = |why: String| io::Error::new(io::ErrorKind::ConnectionRefused, why);
        if self.stop.has_changed().is_err() {
            return Err(refused("the emulator has stopped".into()));
        }
        let dep = uri
            .authority()
            .and_then(|a| a.as_str().replace("localhost", "127.0.0.1").parse::<SocketAddr>().ok())
            .and_then(|addr| self.deployments.get(&addr))
            .ok_or_else(|| refused(format!("no emulated deployment at {uri}")))?;
        if server::is_down(dep) {
            dep.record(Seen::ConnectionReset, false, false);
            return Ok(());
        }
        tokio::spawn(server::serve_connection(dep.clone(), stream));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchyard_core::config::{Config, NoSecrets};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::{Bind, Emulator};

    const CONFIG: &str = r#"
clouds: [{ name: one, protocol: openai }]
deployments:
  - name: d1
    cloud: one
    region: r1
    jurisdiction: us
    model: m
    endpoint: http://127.0.0.1:1/v1
    price: { input_per_mtok: 1, output_per_mtok: 2 }
    capabilities: { context_window: 4096 }
    emulation: { ttft_ms: { fixed: 40 }, tokens_per_s: { fixed: 100 }, answer_tokens: [5, 5] }
aliases: [{ name: chat, deployments: [d1] }]
"#;

    /// One request on a fresh in-memory connection; the whole response as text.
    async fn exchange(emulator: &Emulator, uri: &str) -> std::io::Result<String> {
        let mut pipe = emulator.dialer().connect(&uri.parse().expect("uri"))?;
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        pipe.write_all(head.as_bytes()).await?;
        pipe.write_all(body.as_bytes()).await?;
        let mut out = String::new();
        pipe.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test(start_paused = true)]
    async fn deployments_answer_in_memory_on_the_paused_clock() {
        let config = Config::from_yaml(CONFIG, &NoSecrets).expect("config");
        let emulator = Emulator::start(&config, Bind::Memory, None, 1).await.expect("emulator");
        let d1 = emulator.deployment("d1").expect("d1").clone();
        let started = tokio::time::Instant::now();
        let answer = exchange(&emulator, &d1.endpoint()).await.expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // 40 ms to the first token, then four more at 10 ms each: exact on the paused clock.
        assert_eq!(started.elapsed(), Duration::from_millis(80));
        assert_eq!(d1.count(crate::Seen::Completed), 1);

        emulator.set_faults("d1", vec![outage()]).expect("d1");
        // Taken and dropped at once: writing finds the pipe closed, or reading finds it empty.
        let reset = exchange(&emulator, &d1.endpoint()).await;
        assert!(
            reset.as_ref().map_or_else(|e| e.kind() == std::io::ErrorKind::BrokenPipe, String::is_empty),
            "{reset:?}"
        );
        assert_eq!(d1.count(crate::Seen::ConnectionReset), 1);
        let elsewhere = exchange(&emulator, "http://127.0.0.1:2/v1").await.expect_err("no deployment there");
        assert_eq!(elsewhere.kind(), std::io::ErrorKind::ConnectionRefused);
        let dialer = emulator.dialer();
        drop(emulator);
        let stopped = dialer.connect(&d1.endpoint().parse().expect("uri")).expect_err("stopped");
        assert_eq!(stopped.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    fn outage() -> switchyard_core::config::Fault {
        let raw: Vec<switchyard_core::config::raw::RawFault> =
            serde_json::from_str(r#"[{"kind":"outage"}]"#).expect("fault json");
        switchyard_core::config::emulation::faults_from_raw(&raw, "faults").expect("fault").remove(0)
    }
}
