//! OCI request signatures: a known key at a fixed time gives exactly the headers the oci Python
//! SDK gives (pinned here; `tests/oci/test_oci_signer.py` compares fresh keys live), an
//! `oci-openai` deployment's requests carry them over the body as sent, and the check refuses
//! what was not signed.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Uri};
use serde_json::json;
use switchyard_core::config::{OciCredentials, Secret};
use switchyard_providers::oci::{Request, Signer, VerifyError};

use super::*;

const KEY: &str = include_str!("../../../../tests/oci/test_key.pem");
const KEY_PKCS1: &str = include_str!("../../../../tests/oci/test_key_pkcs1.pem");
const OTHER_KEY: &str = include_str!("../../../../tests/oci/other_key.pem");
const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaatest";
const FINGERPRINT: &str = "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b";
const KEY_ID: &str =
    "ocid1.tenancy.oc1..aaaaaaaatest/ocid1.user.oc1..aaaaaaaauser/ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b";
const HOST: &str = "inference.generativeai.us-chicago-1.oci.oraclecloud.com";
const BODY: &[u8] = br#"{"model":"xai.grok-4","messages":[{"role":"user","content":"hello"}]}"#;
/// 2024-05-01T12:34:56Z.
const AT: u64 = 1_714_566_896;

/// The oci SDK's `Signer` on the same key, request and time (`date` set to the time).
const SDK_POST_SIGNATURE: &str = "GT1UxNApne5ijGcgQ6tW5rPUBr6HqSUwqg2BTApIPOK0aLhRlA4PfiooQAMcmIUDF4oCc7l1/sZta5d5oxCjiA+QgMXngAs7MSw06eZjpSLwCy2qoxab6zrmXR5kCgHIwVVOEFtfN9UsUG76UuiXjkoVyBgawoZWNnDZiRqgG5gTlkezw0tDEIez+SYn5XGehmMviF2Tph2QKfq9HalAu/R2xRCxjQhtCJ+cWX2i1b2lK9XCxdJvER/wVegOLGv1t034WidVpglrerxV0hYufrPFG0sMPyLW3nSSSy4tv1yOIpF9UfLRchcMw/nwGY8mHywpqo/uc999jiku140T9A==";
const SDK_GET_SIGNATURE: &str = "a1iIonehOwxK5H9K5wz3GBNHny10f0zIhZY5CLAuIJgh1lpgf6s1IcXEEkAp+gFN3+dAq6M/tMeT+M4JLEVQgUVs1SdveCgRcsni9uXg8aoeTgau7fkWD1iK9wy8NZgM0zDZXdV9IjDxYPNMkw91VcAdbFMx+vGsRbAwyJaOO600TrfAhgCeWNd5P5gOBypX6rphPxMdGYiLKYmv8FXs1JNKpc6YbeKyDf+MXHH1wq+az+4qptFPYgs4vRTXu3JnRY41avndnvysz9buYtLbvvPHnJlvSN4MTPnJCKmWLzmd4dc4IPj1/FaUBdrs55XecGG5OtfY6sziL+MwzeZ8+Q==";

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn sign(pem: &str, method: &Method, url: &str, body: &[u8], time: SystemTime) -> HeaderMap {
    let uri: Uri = url.parse().expect("uri");
    let request = Request { method, uri: &uri, content_type: "application/json", body };
    Signer::from_pem(KEY_ID.into(), pem).expect("a key").sign(&request, time).expect("signed").into_iter().collect()
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().expect("text"))
}

#[test]
fn a_known_key_at_a_fixed_time_gives_the_sdks_headers() {
    let url = format!("https://{HOST}/openai/v1/chat/completions");
    for pem in [KEY, KEY_PKCS1] {
        let headers = sign(pem, &Method::POST, &url, BODY, at(AT));
        assert_eq!(text(&headers, "date"), "Wed, 01 May 2024 12:34:56 GMT");
        assert_eq!(text(&headers, "host"), HOST);
        assert_eq!(text(&headers, "content-length"), "69");
        assert_eq!(text(&headers, "content-type"), "application/json");
        assert_eq!(text(&headers, "x-content-sha256"), "asLmdAoiHLxQDtU5YS8q+8J/B71IqQr43vz0Q00MAOk=");
        assert_eq!(
            text(&headers, "authorization"),
            format!(
                "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host content-length content-type \
                 x-content-sha256\",keyId=\"{KEY_ID}\",signature=\"{SDK_POST_SIGNATURE}\",version=\"1\""
            )
        );
        assert_eq!(headers.len(), 6, "{headers:?}");
    }
    let get = sign(KEY, &Method::GET, &format!("https://{HOST}/openai/v1/models?limit=5"), b"", at(AT));
    assert_eq!(
        text(&get, "authorization"),
        format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"{KEY_ID}\",\
             signature=\"{SDK_GET_SIGNATURE}\",version=\"1\""
        )
    );
    assert_eq!((get.len(), get.contains_key("x-content-sha256")), (3, false), "no body headers without a body");
}

#[test]
fn the_check_refuses_what_was_not_signed() {
    let url = format!("https://{HOST}/openai/v1/chat/completions");
    let uri: Uri = "/openai/v1/chat/completions".parse().expect("uri");
    let verifier = Signer::from_pem(KEY_ID.into(), KEY).expect("a key").verifier();
    let headers = sign(KEY, &Method::POST, &url, BODY, at(AT));
    let check =
        |headers: &HeaderMap, body: &[u8], now: u64| verifier.check(&Method::POST, &uri, headers, body, at(now));
    assert_eq!(check(&headers, BODY, AT + 299), Ok(()));
    assert_eq!(check(&headers, BODY, AT - 299), Ok(()));
    assert_eq!(check(&headers, BODY, AT + 301), Err(VerifyError::Date));
    assert_eq!(check(&headers, b"{}", AT), Err(VerifyError::Body));
    assert_eq!(check(&HeaderMap::new(), BODY, AT), Err(VerifyError::Missing));
    let other = uri.clone();
    assert_eq!(verifier.check(&Method::PUT, &other, &headers, BODY, at(AT)), Err(VerifyError::Mismatch));
    let foreign = sign(OTHER_KEY, &Method::POST, &url, BODY, at(AT));
    assert_eq!(check(&foreign, BODY, AT), Err(VerifyError::Mismatch), "the same keyId, another key");
    let mut moved = headers.clone();
    moved.insert("host", "elsewhere.example".parse().expect("value"));
    assert_eq!(check(&moved, BODY, AT), Err(VerifyError::Mismatch));
    let get = sign(KEY, &Method::GET, &url, b"", at(AT));
    assert_eq!(check(&get, BODY, AT), Err(VerifyError::Unsigned("content-length")), "a body needs its headers signed");
}

fn oci_endpoint(pem: &str) -> Endpoint {
    let credentials = OciCredentials {
        tenancy: TENANCY.into(),
        user: "ocid1.user.oc1..aaaaaaaauser".into(),
        fingerprint: FINGERPRINT.into(),
        private_key: Secret::new(pem.into()),
        compartment: "ocid1.compartment.oc1..aaaaaaaagenai".into(),
    };
    Endpoint {
        base: format!("https://{HOST}/openai/v1"),
        protocol: Protocol::OpenAi,
        auth: Auth::Oci(credentials),
        model: "xai.grok-4".into(),
        region: "us-chicago-1".into(),
    }
}

/// The request a deployment sends is signed over what it sends, at the time it sends it.
#[tokio::test]
async fn an_oci_deployment_signs_each_request_as_sent() {
    let body = json!({"model": "xai.grok-4", "messages": [{"role": "user", "content": "hello"}], "stream": true});
    let body = serde_json::to_vec(&body).expect("json");
    let before = SystemTime::now();
    let sent = chat(oci_endpoint(KEY), &body).await;
    let request = sent.request();
    assert_eq!(request.uri, "/openai/v1/chat/completions");
    assert_eq!(request.header("host"), Some(HOST));
    assert_eq!(request.header("opc-compartment-id"), Some("ocid1.compartment.oc1..aaaaaaaagenai"));
    assert_eq!(&request.body[..], &body[..], "OpenAI's body passes through");
    assert!(request.header("authorization").is_some_and(|a| a.starts_with("Signature algorithm=\"rsa-sha256\"")));
    let verifier = Signer::from_pem(KEY_ID.into(), KEY).expect("a key").verifier();
    let check = |body: &[u8]| verifier.check(&request.method, &request.uri, &request.headers, body, before);
    assert_eq!(check(&request.body), Ok(()));
    assert_eq!(check(b"{}"), Err(VerifyError::Body));

    let unusable = Upstream::with_transport(
        Duration::from_secs(1),
        &[oci_endpoint("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")],
        Transport::Tcp,
    );
    assert!(unusable.is_err(), "a key that does not load is refused when the upstream is built");
}
