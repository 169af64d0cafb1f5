//! A refusal classified: a non-success status and the protocol's error body read into an
//! [`AttemptError`] (`Target::classify`), what says the deployment is set up wrong
//! ([`misconfigured`]) told from what is the caller's, and an error inside a stream ([`in_stream`]).

use switchyard_core::AttemptError;
use switchyard_core::config::Protocol;
use switchyard_wire::canonical::{ErrorClass, ErrorObject};
use switchyard_wire::{anthropic_codec, bedrock_codec, gemini_codec, oci_codec};

use super::Target;
use crate::classify_status;

impl Target {
    /// A refusal (a non-success status) classified from the protocol's error body.
    pub(crate) fn classify(
        &self,
        status: u16,
        retry_after: Option<std::time::Duration>,
        error_type: Option<&str>,
        body: &[u8],
    ) -> AttemptError {
        let error = match self.protocol {
            // Azure's error bodies are OpenAI's shape; its content filter is `content_filter`
            // with `innererror.code: ResponsibleAIPolicyViolation`, which both read.
            Protocol::OpenAi | Protocol::AzureOpenAi => return classify_status(status, retry_after, body),
            Protocol::Anthropic => anthropic_codec::decode_error(status, body),
            Protocol::Bedrock => bedrock_codec::decode_error(status, error_type, body),
            Protocol::Gemini => gemini_codec::decode_error(status, body),
            Protocol::Oci => oci_codec::decode_error(status, body),
        };
        match status {
            // Anthropic's 529 is `overloaded_error`: out of capacity, like a 429.
            429 | 529 => AttemptError::RateLimited { retry_after },
            401 | 403 | 404 => AttemptError::UpstreamRefused { status },
            // Bedrock's ModelTimeoutException (408) and ModelErrorException (424) are the
            // model's failures, not the caller's.
            408 | 424 => AttemptError::ServerError { status },
            // Payment required (Anthropic's `billing_error`): the account, not the request.
            402 => AttemptError::UpstreamRefused { status },
            400..=499 => match error.class {
                ErrorClass::RateLimit | ErrorClass::Overloaded => AttemptError::RateLimited { retry_after },
                // Our credentials or model id are wrong, whatever the status says: the deployment
                // is misconfigured, and it is not the caller's doing.
                ErrorClass::Authentication | ErrorClass::Permission | ErrorClass::NotFound => {
                    AttemptError::UpstreamRefused { status }
                }
                _ if misconfigured(&error.message) => AttemptError::UpstreamRefused { status },
                _ => by_class(error, status),
            },
            500..=599 => AttemptError::ServerError { status },
            _ => AttemptError::InvalidResponse { detail: format!("unexpected status {status}") },
        }
    }
}

/// Refusals that say the deployment is set up wrong, under a status that does not: Bedrock's
/// `ValidationException` for a model id it does not know, or one that needs an inference
/// profile; Anthropic's 400 for an account out of credit; Gemini's 400 for a bad API key or
/// a region the API is not offered in; OCI's 400 for a request in the wrong `apiFormat` for
/// the model (a dedicated endpoint configured with the wrong `api_format`).
fn misconfigured(message: &str) -> bool {
    const SIGNS: [&str; 6] = [
        "model identifier is invalid",
        "with on-demand throughput isn",
        "credit balance is too low",
        "api key not valid",
        "user location is not supported",
        "please pass in correct format of request",
    ];
    let message = message.to_ascii_lowercase();
    SIGNS.iter().any(|sign| message.contains(sign))
}

/// An error reported inside a stream (no status of its own), classified by its class.
pub(crate) fn in_stream(error: ErrorObject) -> AttemptError {
    match error.class {
        ErrorClass::RateLimit | ErrorClass::Overloaded => AttemptError::RateLimited { retry_after: None },
        ErrorClass::Server => AttemptError::ServerError { status: 500 },
        ErrorClass::Authentication | ErrorClass::Permission | ErrorClass::NotFound => {
            AttemptError::UpstreamRefused { status: 403 }
        }
        _ => by_class(error, 400),
    }
}

fn by_class(error: ErrorObject, status: u16) -> AttemptError {
    let ErrorObject { class, message, code, .. } = error;
    match class {
        ErrorClass::ContextLength => AttemptError::ContextLengthExceeded { message },
        ErrorClass::ContentFilter => AttemptError::ContentFiltered { message, code },
        _ => AttemptError::ClientError { status, message, code },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Auth, Endpoint, OciCredential, OciNative};
    use super::*;

    /// A deployment set up wrong (a model id Bedrock does not know, an Anthropic account out of
    /// credit) fails over and counts against it, whatever status it came with.
    #[test]
    fn misconfiguration_is_the_deployments_fault_under_any_status() {
        let target = |protocol| {
            let auth = Auth::None;
            let e = Endpoint { base: "http://h".into(), protocol, auth, model: "m".into(), region: "us-east-1".into() };
            Target::new(&e).expect("target")
        };
        let bedrock = target(Protocol::Bedrock);
        let invalid = br#"{"message":"The provided model identifier is invalid."}"#;
        let refused = bedrock.classify(400, None, Some("ValidationException"), invalid);
        assert_eq!(refused, AttemptError::UpstreamRefused { status: 400 });
        let profile =
            br#"{"message":"Invocation of model ID anthropic.claude-x with on-demand throughput isn't supported."}"#;
        assert_eq!(
            bedrock.classify(400, None, Some("ValidationException"), profile),
            AttemptError::UpstreamRefused { status: 400 }
        );
        let anthropic = target(Protocol::Anthropic);
        let billing = br#"{"type":"error","error":{"type":"billing_error","message":"billing"}}"#;
        assert_eq!(anthropic.classify(402, None, None, billing), AttemptError::UpstreamRefused { status: 402 });
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        assert_eq!(anthropic.classify(400, None, None, credit), AttemptError::UpstreamRefused { status: 400 });
        let plain =
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}}"#;
        assert!(matches!(anthropic.classify(400, None, None, plain), AttemptError::ClientError { status: 400, .. }));
    }

    /// OCI's 400 for a request in the wrong `apiFormat` (a dedicated endpoint of a Cohere
    /// model configured `api_format: generic`) is the deployment's, not the caller's: it fails
    /// over. Another `InvalidParameter` stays the caller's.
    #[test]
    fn a_wrong_oci_format_is_the_deployments_fault() {
        let auth = Auth::OciNative(OciNative {
            credential: OciCredential::None,
            compartment: "ocid1.compartment.oc1..c".into(),
            format: oci_codec::Format::Generic,
        });
        let e = Endpoint {
            base: "http://h".into(),
            protocol: Protocol::Oci,
            auth,
            model: "ocid1.generativeaiendpoint.oc1..e".into(),
            region: "us-chicago-1".into(),
        };
        let oci = Target::new(&e).expect("target");
        let wrong = br#"{"code":"InvalidParameter","message":"Please pass in correct format of request."}"#;
        assert_eq!(oci.classify(400, None, None, wrong), AttemptError::UpstreamRefused { status: 400 });
        let plain = br#"{"code":"InvalidParameter","message":"temperature must be at most 1"}"#;
        assert!(matches!(oci.classify(400, None, None, plain), AttemptError::ClientError { status: 400, .. }));
    }
}
