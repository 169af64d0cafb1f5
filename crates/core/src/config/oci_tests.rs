//! The `oci` block of an `oci-openai` or `oci` cloud: OCIDs, the fingerprint and the PEM, with
//! paths; an OCI native cloud's compartment and a deployment's chat format.

use super::*;
use crate::config::Config;

const PKCS8: &str = include_str!("../../../../tests/oci/test_key.pem");
const PKCS1: &str = include_str!("../../../../tests/oci/test_key_pkcs1.pem");
const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaatest";
const USER: &str = "ocid1.user.oc1..aaaaaaaauser";
const FINGERPRINT: &str = "ca:76:65:c8:c2:98:f8:05:51:5c:61:4f:63:69:97:9b";

struct Keys;
impl SecretSource for Keys {
    fn env(&self, name: &str) -> Option<String> {
        match name {
            "OCI_KEY" => Some(PKCS8.to_owned()),
            "API_KEY" => Some("sk-oci".to_owned()),
            _ => None,
        }
    }
    fn file(&self, path: &str) -> Result<String, String> {
        match path {
            "/keys/pkcs1.pem" => Ok(format!("{PKCS1}OCI_API_KEY\n")),
            _ => Err(format!("cannot read {path}")),
        }
    }
}

fn yaml(cloud: &str) -> String {
    format!(
        r#"
clouds:
  - {cloud}
deployments:
  - {{ name: d0, cloud: oci, region: us-chicago-1, jurisdiction: us, model: m, endpoint: "http://127.0.0.1:1/v1", price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}
aliases:
  - {{ name: chat, deployments: [d0] }}
tenants:
  - {{ name: t, keys: ["sha256:0000000000000000000000000000000000000000000000000000000000000001"], jurisdictions: [us], aliases: ["*"] }}
"#
    )
}

fn signed(tenancy: &str, user: &str, fingerprint: &str, key: &str) -> String {
    yaml(&format!(
        r#"{{ name: oci, protocol: oci-openai, oci: {{ tenancy: "{tenancy}", user: "{user}", fingerprint: "{fingerprint}", private_key: "{key}" }} }}"#
    ))
}

fn errors(yaml: &str) -> String {
    Config::from_yaml(yaml, &Keys).expect_err("config should be rejected").to_string()
}

#[test]
fn an_oci_openai_cloud_signs_with_a_pkcs8_or_pkcs1_key() {
    for reference in ["env:OCI_KEY", "file:/keys/pkcs1.pem"] {
        let config = Config::from_yaml(&signed(TENANCY, USER, FINGERPRINT, reference), &Keys).unwrap();
        let cloud = &config.clouds[0];
        assert_eq!(cloud.protocol, super::super::Protocol::OpenAi, "OpenAI's bodies, passed through");
        let oci = cloud.oci.as_ref().expect("the oci block");
        assert_eq!(oci.key_id(), format!("{TENANCY}/{USER}/{FINGERPRINT}"));
        assert!(cloud.api_key.is_none());
        assert_eq!(oci.compartment, TENANCY, "the root compartment by default");
        let shown = format!("{cloud:?}");
        assert!(shown.contains(TENANCY) && !shown.contains("PRIVATE KEY"), "{shown}");
    }
    assert!(matches!(rsa_private_key_der(PKCS8), Ok(RsaKeyDer::Pkcs8(_))));
    assert!(matches!(rsa_private_key_der(PKCS1), Ok(RsaKeyDer::Pkcs1(_))));
    let api_key = yaml(r#"{ name: oci, protocol: oci-openai, api_key: "env:API_KEY" }"#);
    assert!(Config::from_yaml(&api_key, &Keys).unwrap().clouds[0].oci.is_none(), "API-key auth stays");
}

#[test]
fn a_wrong_oci_block_is_refused_with_its_paths() {
    let e = errors(&signed("ocid1.user.oc1..aaaa", "user", "AA-BB", "env:OCI_KEY"));
    assert!(e.contains("clouds[0].oci.tenancy: must be an OCID such as ocid1.tenancy.oc1..aaaa"), "{e}");
    assert!(e.contains("clouds[0].oci.user: must be an OCID such as ocid1.user.oc1..aaaa"), "{e}");
    assert!(e.contains("clouds[0].oci.fingerprint: must be the key's MD5 fingerprint"), "{e}");
    let e = errors(&signed(TENANCY, USER, FINGERPRINT, "env:NOPE"));
    assert!(e.contains("clouds[0].oci.private_key: environment variable NOPE is not set"), "{e}");
    let e = errors(&signed(TENANCY, USER, FINGERPRINT, "env:API_KEY"));
    assert!(e.contains("clouds[0].oci.private_key: not a PEM private key"), "{e}");
    let both = signed(TENANCY, USER, FINGERPRINT, "env:OCI_KEY")
        .replace("protocol: oci-openai,", r#"protocol: oci-openai, api_key: "env:API_KEY","#);
    assert!(errors(&both).contains("clouds[0]: give either api_key"), "{}", errors(&both));
    let openai = signed(TENANCY, USER, FINGERPRINT, "env:OCI_KEY").replace("oci-openai", "openai");
    assert!(errors(&openai).contains("clouds[0].oci: only the oci-openai and oci protocols"), "{}", errors(&openai));
    let compartment = |c: &str| {
        signed(TENANCY, USER, FINGERPRINT, "env:OCI_KEY")
            .replace("fingerprint:", &format!("compartment: {c}, fingerprint:"))
    };
    let config = Config::from_yaml(&compartment("ocid1.compartment.oc1..aaaaaaaagenai"), &Keys).unwrap();
    assert_eq!(config.clouds[0].oci.as_ref().unwrap().compartment, "ocid1.compartment.oc1..aaaaaaaagenai");
    let e = errors(&compartment("genai"));
    assert!(e.contains("clouds[0].oci.compartment: must be a compartment's OCID"), "{e}");
    let unknown = signed(TENANCY, USER, FINGERPRINT, "env:OCI_KEY").replace("fingerprint:", "region: x, fingerprint:");
    assert!(errors(&unknown).contains("clouds[0].oci"), "{}", errors(&unknown));
}

#[test]
fn only_rsa_private_keys_pass() {
    let body = |pem: &str| pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    let relabel = |label: &str| format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", body(PKCS8));
    assert!(rsa_private_key_der(&relabel("PUBLIC KEY")).unwrap_err().contains("not an RSA private key"));
    assert!(rsa_private_key_der(&relabel("ENCRYPTED PRIVATE KEY")).unwrap_err().contains("encrypted"));
    assert!(
        rsa_private_key_der(&relabel("RSA PRIVATE KEY")).unwrap_err().contains("not an RSA private key's structure")
    );
    let truncated = PKCS8.replace(&PKCS8.lines().nth(3).unwrap().to_owned(), "");
    assert!(rsa_private_key_der(&truncated).is_err());
    assert!(rsa_private_key_der(&PKCS8.replace("-----END PRIVATE KEY-----", "")).unwrap_err().contains("no -----END"));
    // An EC key in PKCS#8 (P-256, from `openssl genpkey -algorithm EC`).
    let ec = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\nOF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oHEw1vk4gDIc+W\n-----END PRIVATE KEY-----\n";
    assert!(rsa_private_key_der(ec).unwrap_err().contains("not an RSA key"));
}

/// An OCI native cloud: signed (its key's compartment) or with an API key and `compartment`;
/// each deployment's format from its model id unless `api_format` says.
#[test]
fn an_oci_native_cloud_has_a_credential_and_a_compartment() {
    use super::super::{OciFormat, Protocol};
    let native = signed(TENANCY, USER, FINGERPRINT, "env:OCI_KEY")
        .replace("protocol: oci-openai,", "protocol: oci,")
        .replace("fingerprint:", "compartment: ocid1.compartment.oc1..aaaagenai, fingerprint:");
    let config = Config::from_yaml(&native, &Keys).unwrap();
    let cloud = &config.clouds[0];
    assert_eq!((cloud.protocol, cloud.protocol.name()), (Protocol::Oci, "oci"));
    assert_eq!(cloud.compartment.as_deref(), Some("ocid1.compartment.oc1..aaaagenai"));
    assert_eq!(config.deployments[0].oci_format, Some(OciFormat::Generic));
    let keyed = yaml(
        r#"{ name: oci, protocol: oci, api_key: "env:API_KEY", compartment: "ocid1.compartment.oc1..aaaagenai" }"#,
    );
    let config = Config::from_yaml(&keyed, &Keys).unwrap();
    assert_eq!(config.clouds[0].compartment.as_deref(), Some("ocid1.compartment.oc1..aaaagenai"));
    let cohere = keyed.replace("model: m,", "model: cohere.command-r-plus,");
    assert_eq!(Config::from_yaml(&cohere, &Keys).unwrap().deployments[0].oci_format, Some(OciFormat::Cohere));
    let dedicated =
        keyed.replace("model: m,", "model: ocid1.generativeaiendpoint.oc1.us-chicago-1.aaaa, api_format: cohere,");
    assert_eq!(Config::from_yaml(&dedicated, &Keys).unwrap().deployments[0].oci_format, Some(OciFormat::Cohere));
    assert!(
        Config::from_yaml(&yaml(r#"{ name: oci, protocol: openai }"#), &Keys).unwrap().deployments[0]
            .oci_format
            .is_none()
    );
}

#[test]
fn a_wrong_oci_native_cloud_is_refused_with_its_paths() {
    let e = errors(&yaml(r#"{ name: oci, protocol: oci }"#));
    assert!(e.contains("clouds[0]: the oci protocol needs oci (an API signing key"), "{e}");
    let e = errors(&yaml(r#"{ name: oci, protocol: oci, api_key: "env:API_KEY" }"#));
    assert!(e.contains("clouds[0].compartment: required with an api_key"), "{e}");
    let e = errors(&yaml(r#"{ name: oci, protocol: oci, api_key: "env:API_KEY", compartment: genai }"#));
    assert!(e.contains("clouds[0].compartment: must be a compartment's OCID"), "{e}");
    let signed_too = signed(TENANCY, USER, FINGERPRINT, "env:OCI_KEY")
        .replace("protocol: oci-openai,", "protocol: oci, compartment: ocid1.compartment.oc1..aaaagenai,");
    assert!(errors(&signed_too).contains("clouds[0].compartment: with an oci signing key, set it as oci.compartment"));
    let elsewhere = yaml(r#"{ name: oci, protocol: openai, compartment: "ocid1.compartment.oc1..aaaagenai" }"#);
    assert!(errors(&elsewhere).contains("clouds[0].compartment: only for the oci protocol"));
    let keyed = yaml(
        r#"{ name: oci, protocol: oci, api_key: "env:API_KEY", compartment: "ocid1.compartment.oc1..aaaagenai" }"#,
    );
    let e = errors(&keyed.replace("model: m,", "model: m, api_format: xml,"));
    assert!(e.contains("deployments[0].api_format: \"xml\" is not an OCI chat format (generic or cohere)"), "{e}");
    let e = errors(&yaml(r#"{ name: oci, protocol: openai }"#).replace("model: m,", "model: m, api_format: cohere,"));
    assert!(e.contains("deployments[0].api_format: only for the oci protocol"), "{e}");
}
