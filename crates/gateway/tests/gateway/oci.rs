//! OCI Generative AI's OpenAI-compatible endpoint with request signing, end to end: the gateway
//! signs each attempt with the cloud's API key, the emulator verifies it with the public half
//! and answers as OpenAI; a gateway holding another key is refused with OCI's 401, which fails
//! over as `UpstreamRefused`.

use switchyard_core::config::SecretSource;
use switchyard_emulator::Seen;

use crate::support::*;

const OCI_KEY: &str = include_str!("../../../../tests/oci/test_key.pem");
const OTHER_KEY: &str = include_str!("../../../../tests/oci/other_key.pem");

const CONFIG: &str = r#"
server:
  timeouts: { connect_ms: 500, first_byte_ms: 3000, first_token_ms: 3000, stream_idle_ms: 2000, request_ms: 8000 }
routing:
  outlier: { consecutive_failures: 3, base_ejection_ms: 1000, max_ejection_ms: 2000, max_ejected_share: 0.5 }
clouds:
  - name: oci
    protocol: oci-openai
    oci:
      tenancy: ocid1.tenancy.oc1..aaaaaaaatest
      user: ocid1.user.oc1..aaaaaaaauser
      fingerprint: "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b"
      private_key: "env:OCI_PRIVATE_KEY"
  - { name: oai, protocol: openai }
deployments:
  - name: grok
    cloud: oci
    region: us-chicago-1
    jurisdiction: us
    model: xai.grok-4
    endpoint: https://inference.generativeai.us-chicago-1.oci.oraclecloud.com/openai/v1
    price: { input_per_mtok: 3, output_per_mtok: 15 }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
  - name: oa
    cloud: oai
    region: us
    jurisdiction: us
    model: gpt-4o-mini
    endpoint: http://127.0.0.1:3/v1
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
    emulation: { ttft_ms: { fixed: 5 }, tokens_per_s: { fixed: 1000 }, answer_tokens: [12, 12] }
aliases:
  - { name: oci, policy: priority, deployments: [grok] }
  - { name: oci-oa, policy: priority, deployments: [grok, oa] }
tenants:
  - { name: global, keys: ["KEYHASH"], jurisdictions: [us], aliases: ["*"] }
"#;

/// The private key a secret reference resolves to.
struct Key(&'static str);

impl SecretSource for Key {
    fn env(&self, name: &str) -> Option<String> {
        (name == "OCI_PRIVATE_KEY").then(|| self.0.to_owned())
    }

    fn file(&self, path: &str) -> Result<String, String> {
        Err(format!("no file {path}"))
    }
}

/// The emulator expecting `OCI_KEY`'s signatures, the gateway signing with `held`.
async fn harness(held: &'static str) -> Harness {
    let config = CONFIG.replace("KEYHASH", &switchyard_core::config::key_hash_text(KEY));
    Harness::memory_with_secrets(&config, &Key(OCI_KEY), &Key(held)).await
}

#[tokio::test(start_paused = true)]
async fn a_signed_oci_deployment_answers() {
    let h = harness(OCI_KEY).await;
    let r = h.chat(ask("oci", "signed by OCI")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "grok");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "1");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("signed by OCI"));
    let mut streamed = ask("oci", "streamed from OCI");
    streamed["stream"] = true.into();
    let r = h.chat(streamed).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((h.seen("grok", Seen::Completed), h.seen("grok", Seen::Unauthorized)), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_oci_key_is_refused_and_fails_over() {
    let h = harness(OTHER_KEY).await;
    let r = h.chat(ask("oci-oa", "signed wrong")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r.headers, "x-switchyard-deployment"), "oa");
    assert_eq!(header(&r.headers, "x-switchyard-attempts"), "2");
    assert_eq!(r.body["choices"][0]["message"]["content"], expected_answer("signed wrong"));
    assert_eq!(h.seen("grok", Seen::Unauthorized), 1, "the signature was checked and refused");
    let metrics = h.metrics().await;
    let refused = "switchyard_upstream_attempts_total{deployment=\"grok\",result=\"upstream_refused\"} 1";
    assert!(metrics.contains(refused), "{metrics}");
    // With nowhere else to go, the caller is told of the 401.
    let r = h.chat(ask("oci", "nowhere")).await;
    assert_eq!(r.status, 502, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("grok:") && message.contains("401"), "{message}");
    assert_eq!(h.seen("grok", Seen::Completed), 0);
}
