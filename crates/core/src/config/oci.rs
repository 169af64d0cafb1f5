//! OCI API signing keys in config: an `oci-openai` or `oci` cloud's `oci` block (tenancy, user,
//! fingerprint, the RSA private key as a secret reference, optionally the compartment), checked with paths: the OCIDs'
//! prefixes, the fingerprint's form, and a PEM that holds an RSA private key (PKCS#1 or PKCS#8,
//! unencrypted, 2048 to 8192 bits). The PEM is decoded here, by hand, to the key's DER, which
//! `providers` hands to its RSA signer.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::raw::RawCloud;
use super::secret::{Secret, SecretSource, resolve};

/// An OCI API signing key. `Debug` shows who it is, never the key.
#[derive(Clone)]
pub struct OciCredentials {
    /// The tenancy's OCID (`ocid1.tenancy.…`).
    pub tenancy: String,
    /// The user's OCID (`ocid1.user.…`).
    pub user: String,
    /// The key's fingerprint: sixteen hex pairs separated by `:`.
    pub fingerprint: String,
    /// The private key's PEM.
    pub private_key: Secret,
    /// The compartment's OCID, sent as `opc-compartment-id` (OCI's OpenAI-compatible endpoint
    /// asks for one); the tenancy (its root compartment) unless set.
    pub compartment: String,
}

impl OciCredentials {
    /// The signature's `keyId`: `tenancy/user/fingerprint`.
    pub fn key_id(&self) -> String {
        format!("{}/{}/{}", self.tenancy, self.user, self.fingerprint)
    }
}

impl fmt::Debug for OciCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciCredentials").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

/// An RSA private key's DER, in the form its PEM held. `Debug` shows the form only.
#[derive(Clone, PartialEq, Eq)]
pub enum RsaKeyDer {
    /// `RSA PRIVATE KEY`: PKCS#1's `RSAPrivateKey`.
    Pkcs1(Vec<u8>),
    /// `PRIVATE KEY`: PKCS#8's `PrivateKeyInfo` around an `RSAPrivateKey`.
    Pkcs8(Vec<u8>),
}

impl fmt::Debug for RsaKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RsaKeyDer::Pkcs1(_) => "RsaKeyDer::Pkcs1(***)",
            RsaKeyDer::Pkcs8(_) => "RsaKeyDer::Pkcs8(***)",
        })
    }
}

/// The `oci` block of cloud `c` at `path`, resolved and checked; `None` when absent or wrong
/// (the errors say why).
pub(super) fn credentials(
    c: &RawCloud,
    path: &str,
    secrets: &dyn SecretSource,
    errors: &mut Vec<String>,
) -> Option<OciCredentials> {
    let raw = c.oci.as_ref()?;
    let before = errors.len();
    if c.protocol != "oci-openai" && c.protocol != "oci" {
        errors.push(format!("{path}.oci: only the oci-openai and oci protocols sign with an OCI API key"));
    }
    if c.api_key.is_some() {
        errors.push(format!(
            "{path}: give either api_key (an OCI Generative AI API key, sent as a Bearer token) or oci (an API signing key), not both"
        ));
    }
    for (field, value, kind) in [("tenancy", &raw.tenancy, "tenancy"), ("user", &raw.user, "user")] {
        if !is_ocid(value, kind) {
            errors.push(format!("{path}.oci.{field}: must be an OCID such as ocid1.{kind}.oc1..aaaa…, not {value:?}"));
        }
    }
    let compartment = raw.compartment.clone().unwrap_or_else(|| raw.tenancy.clone());
    if raw.compartment.is_some() && !is_ocid(&compartment, "compartment") && !is_ocid(&compartment, "tenancy") {
        errors.push(format!(
            "{path}.oci.compartment: must be a compartment's OCID (ocid1.compartment.oc1..aaaa…) or the tenancy's, not {compartment:?}"
        ));
    }
    if !is_fingerprint(&raw.fingerprint) {
        errors.push(format!(
            "{path}.oci.fingerprint: must be the key's MD5 fingerprint, sixteen hex pairs separated by ':' (aa:bb:…), not {:?}",
            raw.fingerprint
        ));
    }
    let key = match resolve(&raw.private_key, secrets) {
        Ok(key) => match rsa_private_key_der(key.expose()) {
            Ok(_) => Some(key),
            Err(e) => {
                errors.push(format!("{path}.oci.private_key: {e}"));
                None
            }
        },
        Err(e) => {
            errors.push(format!("{path}.oci.private_key: {e}"));
            None
        }
    };
    let private_key = key.filter(|_| errors.len() == before)?;
    Some(OciCredentials {
        tenancy: raw.tenancy.clone(),
        user: raw.user.clone(),
        fingerprint: raw.fingerprint.clone(),
        private_key,
        compartment,
    })
}

/// `ocid1.<kind>.<realm>.<region>.<unique id>`: five dot-separated parts (the region may be
/// empty), of letters, digits, `-` and `_`.
pub(super) fn is_ocid(value: &str, kind: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    let allowed = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    value.len() <= 255
        && parts.len() == 5
        && parts[0] == "ocid1"
        && parts[1] == kind
        && !parts[2].is_empty()
        && !parts[4].is_empty()
        && parts.iter().all(|p| allowed(p))
}

/// Sixteen pairs of hex digits separated by `:` (OCI prints them in lower case).
fn is_fingerprint(value: &str) -> bool {
    let pairs: Vec<&str> = value.split(':').collect();
    pairs.len() == 16 && pairs.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The DER of the RSA private key in `pem`, checked to be one: PKCS#1 (`RSA PRIVATE KEY`) or
/// PKCS#8 (`PRIVATE KEY` with the `rsaEncryption` algorithm), unencrypted, with a modulus of
/// 2048 to 8192 bits. Text around the PEM block (OCI's `OCI_API_KEY` line) is ignored.
pub fn rsa_private_key_der(pem: &str) -> Result<RsaKeyDer, String> {
    let (label, der) = pem_block(pem)?;
    match label {
        "RSA PRIVATE KEY" => check_pkcs1(&der).map(|()| RsaKeyDer::Pkcs1(der)),
        "PRIVATE KEY" => check_pkcs8(&der).map(|()| RsaKeyDer::Pkcs8(der)),
        "ENCRYPTED PRIVATE KEY" => Err(ENCRYPTED.to_owned()),
        other => Err(format!("the PEM holds a {other:?}, not an RSA private key (RSA PRIVATE KEY or PRIVATE KEY)")),
    }
}

const ENCRYPTED: &str = "the private key is encrypted with a pass phrase, which is not supported \
                         (write it out unencrypted: openssl pkey -in key.pem -out plain.pem)";

/// The first PEM block's label and decoded body.
fn pem_block(pem: &str) -> Result<(&str, Vec<u8>), String> {
    let mut lines = pem.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or("not a PEM private key: no -----BEGIN ...----- line")?;
    let end = format!("-----END {label}-----");
    let mut text = String::new();
    for line in lines.by_ref() {
        if line == end {
            return STANDARD
                .decode(text.as_bytes())
                .map(|der| (label, der))
                .map_err(|e| format!("the PEM block {label:?} is not valid base64: {e}"));
        }
        if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
            return Err(ENCRYPTED.to_owned());
        }
        if line.contains(':') || line.is_empty() {
            continue; // RFC 1421 headers (DEK-Info, ...) and blank lines
        }
        text.push_str(line);
    }
    Err(format!("the PEM block {label:?} has no {end} line"))
}

/// A DER reader over definite lengths: enough to check a key's structure.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and contents.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let bad = || "the key's DER is malformed".to_owned();
        let (&tag, rest) = self.0.split_first().ok_or_else(bad)?;
        let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad());
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(bad());
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Ok((tag, contents))
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], String> {
        match self.next()? {
            (t, contents) if t == tag => Ok(contents),
            _ => Err("the key's DER is not an RSA private key's structure".to_owned()),
        }
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
/// 1.2.840.113549.1.1.1, `rsaEncryption`.
const RSA_ENCRYPTION: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// PKCS#1 `RSAPrivateKey`: version 0 and eight integers, the modulus of 2048 to 8192 bits.
fn check_pkcs1(der: &[u8]) -> Result<(), String> {
    let mut outer = Der(der);
    let mut key = Der(outer.expect(SEQUENCE)?);
    if key.expect(INTEGER)? != [0] {
        return Err("the RSA key is not a two-prime key (RSAPrivateKey version 0)".to_owned());
    }
    let modulus = key.expect(INTEGER)?;
    for _ in 0..7 {
        key.expect(INTEGER)?;
    }
    if !key.0.is_empty() || !outer.0.is_empty() {
        return Err("the key's DER has bytes after the RSA key".to_owned());
    }
    let bytes = modulus.iter().skip_while(|&&b| b == 0).count();
    let bits =
        bytes.saturating_sub(1) * 8 + modulus.iter().find(|&&b| b != 0).map_or(0, |b| 8 - b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(format!("the RSA key has {bits} bits; OCI signing keys have 2048 to 8192"));
    }
    Ok(())
}

/// PKCS#8 `PrivateKeyInfo` with the `rsaEncryption` algorithm around a PKCS#1 key.
fn check_pkcs8(der: &[u8]) -> Result<(), String> {
    let mut outer = Der(der);
    let mut info = Der(outer.expect(SEQUENCE)?);
    info.expect(INTEGER)?;
    let mut algorithm = Der(info.expect(SEQUENCE)?);
    if algorithm.expect(OID)? != RSA_ENCRYPTION {
        return Err("the PKCS#8 key is not an RSA key (its algorithm is not rsaEncryption)".to_owned());
    }
    check_pkcs1(info.expect(OCTET_STRING)?)
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;
