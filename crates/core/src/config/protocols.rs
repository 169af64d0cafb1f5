//! Validation of what depends on a cloud's protocol: its auth settings, for Bedrock the
//! signing region and the jurisdiction an inference profile really spans, and for Azure OpenAI
//! the `api-version` and the deployment names that go in its URLs, for Gemini its key or token,
//! for OCI's native API (`oci`) its credential, compartment and each deployment's chat format.

use super::raw::RawCloud;
use super::secret::{SecretSource, resolve};
use super::{
    AwsCredentials, Cloud, DEFAULT_ANTHROPIC_VERSION, DEFAULT_AZURE_API_VERSION, DeploymentKind, OciFormat, Protocol,
};

/// The protocol names config accepts.
const PROTOCOLS: &str = "openai, vllm, oci-openai, anthropic, bedrock, azure-openai, gemini, oci";

pub(super) fn cloud(c: &RawCloud, path: &str, secrets: &dyn SecretSource, errors: &mut Vec<String>) -> Cloud {
    let oci = super::oci::credentials(c, path, secrets, errors);
    let service_account = super::google::service_account(c, path, secrets, errors);
    let protocol = match c.protocol.as_str() {
        "openai" | "vllm" | "oci-openai" => Protocol::OpenAi,
        "anthropic" => Protocol::Anthropic,
        "bedrock" => Protocol::Bedrock,
        "azure-openai" => Protocol::AzureOpenAi,
        "gemini" => Protocol::Gemini,
        "oci" => Protocol::Oci,
        other => {
            errors.push(format!("{path}.protocol: unknown protocol {other:?} (supported: {PROTOCOLS})"));
            Protocol::OpenAi
        }
    };
    let mut secret = |field: &str, reference: &str| {
        resolve(reference, secrets).map_err(|e| errors.push(format!("{path}.{field}: {e}"))).ok()
    };
    let api_key = c.api_key.as_deref().and_then(|r| secret("api_key", r));
    let entra_token = c.entra_token.as_deref().and_then(|r| secret("entra_token", r));
    let bearer_token = c.bearer_token.as_deref().and_then(|r| secret("bearer_token", r));
    let aws = c.aws.as_ref().map(|a| {
        let access_key_id = secret("aws.access_key_id", &a.access_key_id);
        let secret_access_key = secret("aws.secret_access_key", &a.secret_access_key);
        let session_token = a.session_token.as_deref().and_then(|r| secret("aws.session_token", r));
        (access_key_id, secret_access_key, session_token)
    });
    let aws = match aws {
        Some((Some(access_key_id), Some(secret_access_key), session_token)) => {
            Some(AwsCredentials { access_key_id, secret_access_key, session_token })
        }
        _ => None,
    };
    if c.aws.is_some() && protocol != Protocol::Bedrock {
        errors.push(format!("{path}.aws: only the bedrock protocol signs with AWS credentials"));
    }
    if protocol == Protocol::Bedrock {
        match (c.api_key.is_some(), c.aws.is_some()) {
            (true, true) => errors.push(format!(
                "{path}: give either api_key (a Bedrock API key, sent as a Bearer token) or aws (SigV4 credentials), not both"
            )),
            (false, false) => errors.push(format!(
                "{path}: the bedrock protocol needs api_key (a Bedrock API key) or aws (access_key_id and secret_access_key for SigV4)"
            )),
            _ => {}
        }
    }
    if protocol == Protocol::AzureOpenAi {
        match (c.api_key.is_some(), c.entra_token.is_some()) {
            (true, true) => errors.push(format!(
                "{path}: give either api_key (sent as api-key) or entra_token (a Microsoft Entra ID token, sent as a Bearer token), not both"
            )),
            (false, false) => errors.push(format!(
                "{path}: the azure-openai protocol needs api_key (sent as api-key) or entra_token (a Microsoft Entra ID token)"
            )),
            _ => {}
        }
    } else {
        if c.entra_token.is_some() {
            errors.push(format!("{path}.entra_token: only for the azure-openai protocol"));
        }
        if c.api_version.is_some() {
            errors.push(format!("{path}.api_version: only for the azure-openai protocol"));
        }
    }
    if protocol == Protocol::Gemini {
        let given = [c.api_key.is_some(), c.bearer_token.is_some(), c.service_account.is_some()];
        match given.iter().filter(|g| **g).count() {
            0 => errors.push(format!(
                "{path}: the gemini protocol needs api_key (a Gemini API key), bearer_token (an OAuth access token, env: or file:) \
                 or service_account (a service account's JSON key, file:)"
            )),
            1 => {}
            _ => errors.push(format!(
                "{path}: give one of api_key (a Gemini API key, sent as x-goog-api-key), bearer_token (an OAuth access token) \
                 or service_account (a JSON key exchanged for tokens)"
            )),
        }
    } else {
        if c.bearer_token.is_some() {
            errors.push(format!("{path}.bearer_token: only for the gemini protocol"));
        }
        if c.service_account.is_some() {
            errors.push(format!("{path}.service_account: only for the gemini protocol"));
        }
    }
    let compartment = oci_compartment(c, protocol, oci.as_ref().map(|o| o.compartment.as_str()), path, errors);
    let api_version = c.api_version.clone().unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
    if !is_api_version(&api_version) {
        errors.push(format!(
            "{path}.api_version: must be a date such as {DEFAULT_AZURE_API_VERSION}, or one with -preview (2025-04-01-preview)"
        ));
    }
    if c.anthropic_version.is_some() && protocol != Protocol::Anthropic {
        errors.push(format!("{path}.anthropic_version: only for the anthropic protocol"));
    }
    let anthropic_version = c.anthropic_version.clone().unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned());
    if !is_date(&anthropic_version) {
        errors.push(format!("{path}.anthropic_version: must be a date such as {DEFAULT_ANTHROPIC_VERSION}"));
    }
    Cloud {
        name: c.name.clone(),
        protocol,
        api_key,
        aws,
        anthropic_version,
        api_version,
        entra_token,
        oci,
        bearer_token,
        service_account,
        compartment,
    }
}

/// An OCI native cloud's compartment: its `oci` key's (`signed`), or `compartment` beside an
/// `api_key`; checked, and refused on other protocols. Such a cloud needs one credential.
fn oci_compartment(
    c: &RawCloud,
    protocol: Protocol,
    signed: Option<&str>,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    if protocol != Protocol::Oci {
        if c.compartment.is_some() {
            errors
                .push(format!("{path}.compartment: only for the oci protocol (an oci-openai key has oci.compartment)"));
        }
        return None;
    }
    match (c.api_key.is_some(), c.oci.is_some(), c.compartment.as_deref()) {
        (false, false, _) => {
            errors.push(format!(
                "{path}: the oci protocol needs oci (an API signing key, with its compartment) or api_key (an OCI \
                 Generative AI API key, sent as a Bearer token) with compartment"
            ));
            None
        }
        (_, true, Some(_)) => {
            errors.push(format!("{path}.compartment: with an oci signing key, set it as oci.compartment"));
            None
        }
        (true, false, None) => {
            errors.push(format!(
                "{path}.compartment: required with an api_key: the compartment's OCID (ocid1.compartment.oc1..aaaa…), \
                 every request's compartmentId"
            ));
            None
        }
        (true, false, Some(compartment)) => {
            if !super::oci::is_ocid(compartment, "compartment") && !super::oci::is_ocid(compartment, "tenancy") {
                errors.push(format!(
                    "{path}.compartment: must be a compartment's OCID (ocid1.compartment.oc1..aaaa…) or the tenancy's, not {compartment:?}"
                ));
            }
            Some(compartment.to_owned())
        }
        // A bad key was reported with its path; the compartment is the key's.
        (_, true, None) => signed.map(str::to_owned),
    }
}

/// An OCI native deployment's `chatRequest` format: `api_format` (`generic` or `cohere`, only
/// on `oci`), or from its model id.
pub(super) fn oci_format(
    protocol: Protocol,
    model: &str,
    given: Option<&str>,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<OciFormat> {
    if protocol != Protocol::Oci {
        if given.is_some() {
            errors.push(format!("{path}.api_format: only for the oci protocol"));
        }
        return None;
    }
    Some(match given {
        None => OciFormat::of_model(model),
        Some("generic") => OciFormat::Generic,
        Some("cohere") => OciFormat::Cohere,
        Some(other) => {
            errors.push(format!("{path}.api_format: {other:?} is not an OCI chat format (generic or cohere)"));
            OciFormat::Generic
        }
    })
}

impl OciFormat {
    /// The format an OCI model id speaks when no `api_format` says: COHERE for Cohere's models
    /// (`cohere.…`), GENERIC for the others and for a dedicated endpoint's OCID. The one rule
    /// for config, the gateway's adapter and the emulator.
    pub fn of_model(model: &str) -> OciFormat {
        if model.starts_with("cohere.") { OciFormat::Cohere } else { OciFormat::Generic }
    }
}

/// A Bedrock model that makes embeddings, by its id (a cross-region inference profile's too):
/// the one rule for config (an embeddings deployment on bedrock must be one) and the adapter
/// (which API its calls speak, `switchyard_wire::embed_codec::Api`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BedrockEmbedder {
    /// Amazon Titan Text Embeddings G1 (`amazon.titan-embed-text-v1`, `amazon.titan-embed-g1-text-02`).
    TitanV1,
    /// Amazon Titan Text Embeddings v2 (`amazon.titan-embed-text-v2:0`).
    TitanV2,
    /// Cohere Embed (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`; `v4`:
    /// `cohere.embed-v4:0`).
    Cohere { v4: bool },
}

impl BedrockEmbedder {
    /// The embeddings model `model` is, if it is one.
    pub fn of_model(model: &str) -> Option<BedrockEmbedder> {
        if model.contains("amazon.titan-embed-text-v2") {
            Some(BedrockEmbedder::TitanV2)
        } else if model.contains("amazon.titan-embed-text-v1") || model.contains("amazon.titan-embed-g1-text") {
            Some(BedrockEmbedder::TitanV1)
        } else if model.contains("cohere.embed-v4") {
            Some(BedrockEmbedder::Cohere { v4: true })
        } else if model.contains("cohere.embed-") {
            Some(BedrockEmbedder::Cohere { v4: false })
        } else {
            None
        }
    }
}

/// Azure's `api-version`: `YYYY-MM-DD`, or that with `-preview`.
fn is_api_version(text: &str) -> bool {
    is_date(text.strip_suffix("-preview").unwrap_or(text))
}

/// An Azure OpenAI deployment name, which goes in the URL's path as it is: letters, digits,
/// `-`, `_` and `.`, at most 64 (what Azure accepts).
fn is_azure_deployment_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `YYYY-MM-DD`, digits where digits go.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// The jurisdiction a Bedrock cross-region inference profile spans, from its id's prefix:
/// `us.anthropic.claude-…` may run in any US region, `global.…` anywhere.
pub fn inference_profile_jurisdiction(model: &str) -> Option<&'static str> {
    const PROFILES: [(&str, &str); 8] = [
        ("us.", "us"),
        ("us-gov.", "us-gov"),
        ("eu.", "eu"),
        ("apac.", "apac"),
        ("jp.", "jp"),
        ("au.", "au"),
        ("ca.", "ca"),
        ("global.", "global"),
    ];
    PROFILES.iter().find(|(prefix, _)| model.starts_with(prefix)).map(|(_, j)| *j)
}

/// What a deployment on `protocol` must satisfy beyond the common checks.
pub(super) fn check_deployment(
    protocol: Protocol,
    kind: DeploymentKind,
    model: &str,
    region: &str,
    jurisdiction: &str,
    path: &str,
    errors: &mut Vec<String>,
) {
    if kind == DeploymentKind::Embeddings && protocol == Protocol::Anthropic {
        errors.push(format!("{path}.kind: the anthropic protocol serves no embeddings"));
    }
    if kind == DeploymentKind::Embeddings && protocol == Protocol::Bedrock && BedrockEmbedder::of_model(model).is_none()
    {
        errors.push(format!(
            "{path}.model: embeddings on bedrock are Amazon Titan Text Embeddings (amazon.titan-embed-text-v2:0, \
             amazon.titan-embed-text-v1) or Cohere Embed (cohere.embed-...) models, not {model:?}"
        ));
    }
    if protocol == Protocol::AzureOpenAi && !is_azure_deployment_name(model) {
        errors.push(format!(
            "{path}.model: on azure-openai this is the Azure deployment name, which goes in the URL: \
             1 to 64 letters, digits, '-', '_' or '.', not {model:?}"
        ));
    }
    if protocol != Protocol::Bedrock {
        return;
    }
    let region_ok =
        !region.is_empty() && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        errors.push(format!("{path}.region: must be an AWS region such as us-east-1 (it is the SigV4 signing region)"));
    }
    if let Some(spans) = inference_profile_jurisdiction(model)
        && spans != jurisdiction
    {
        let what = if spans == "global" {
            "a global inference profile, which may run in any region".to_owned()
        } else {
            format!("an inference profile spanning {spans}")
        };
        errors.push(format!(
            "{path}.jurisdiction: model {model:?} is {what}: its jurisdiction must be {spans:?}, not {jurisdiction:?}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_names_each_model_family() {
        assert_eq!(OciFormat::of_model("cohere.command-a-03-2025"), OciFormat::Cohere);
        assert_eq!(OciFormat::of_model("meta.llama-4-scout"), OciFormat::Generic);
        assert_eq!(OciFormat::of_model("ocid1.generativeaiendpoint.oc1.us-chicago-1.e"), OciFormat::Generic);
        let of = BedrockEmbedder::of_model;
        assert_eq!(of("amazon.titan-embed-text-v2:0"), Some(BedrockEmbedder::TitanV2));
        assert_eq!(of("amazon.titan-embed-text-v1"), Some(BedrockEmbedder::TitanV1));
        assert_eq!(of("amazon.titan-embed-g1-text-02"), Some(BedrockEmbedder::TitanV1));
        assert_eq!(of("cohere.embed-english-v3"), Some(BedrockEmbedder::Cohere { v4: false }));
        assert_eq!(of("cohere.embed-multilingual-v3"), Some(BedrockEmbedder::Cohere { v4: false }));
        assert_eq!(of("us.cohere.embed-v4:0"), Some(BedrockEmbedder::Cohere { v4: true }));
        assert_eq!(of("anthropic.claude-3-haiku"), None);
        // A Titan model no API here speaks is no embeddings model (config refuses it).
        assert_eq!(of("amazon.titan-embed-text-v3"), None);
        assert_eq!(of("amazon.titan-embed-image-v1"), None);
    }
}
