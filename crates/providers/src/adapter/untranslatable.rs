//! Which protocols cannot express a request, asked before planning: [`untranslatable`] reads
//! the OpenAI body once and tries each protocol's encoder, so the planner passes over the
//! deployments that could not take it.

use serde_json::Value;
use switchyard_core::config::Protocol;
use switchyard_wire::canonical::Unsupported;
use switchyard_wire::{anthropic_codec, bedrock_codec, gemini_codec, oci_codec};

use super::{DEFAULT_ANTHROPIC_MAX_TOKENS, canonical, trim_prefill};

/// Which of `protocols` (`Protocol::bit`s) cannot express `body`, an OpenAI body, as bits; and
/// why the first of them cannot. OpenAI's own protocol always can (its bodies pass through), and
/// so can Azure OpenAI's ([`Protocol::PASS_THROUGH`]).
/// A body that does not decode is left for the attempt to report.
pub fn untranslatable(body: &[u8], protocols: u8) -> (u8, Option<Unsupported>) {
    let (mut bits, mut first) = (0, None);
    if protocols & !Protocol::PASS_THROUGH == 0 {
        return (0, None);
    }
    let mut request = match canonical(body) {
        Ok(request) => request,
        // What the strict codec cannot read can be sent only as it is: to OpenAI (and Azure
        // OpenAI) deployments.
        Err(_) => {
            let bits = protocols & !Protocol::PASS_THROUGH;
            use switchyard_wire::canonical::Protocol as Wire;
            let target = if bits & Protocol::Bedrock.bit() != 0 {
                Wire::Bedrock
            } else if bits & Protocol::Gemini.bit() != 0 {
                Wire::Gemini
            } else if bits & Protocol::Oci.bit() != 0 {
                Wire::Oci
            } else {
                Wire::Anthropic
            };
            let reason = "the request uses a form that cannot be translated (read by OpenAI deployments only)";
            return (bits, Some(Unsupported { param: "messages".into(), target, reason }));
        }
    };
    let mut check = |protocol: Protocol, result: Result<Value, Unsupported>| {
        if let Err(e) = result {
            bits |= protocol.bit();
            first.get_or_insert(e);
        }
    };
    if protocols & Protocol::Bedrock.bit() != 0 {
        check(Protocol::Bedrock, bedrock_codec::encode_request(&request));
    }
    if protocols & Protocol::Gemini.bit() != 0 {
        check(Protocol::Gemini, gemini_codec::encode_request(&request));
    }
    // GENERIC, what most OCI models speak; what only Cohere's format cannot say is refused by
    // the attempt (a 400 naming it).
    if protocols & Protocol::Oci.bit() != 0 {
        check(Protocol::Oci, oci_codec::encode_request(&request, oci_codec::Format::Generic));
    }
    if protocols & Protocol::Anthropic.bit() != 0 {
        request.max_tokens = request.max_tokens.or(Some(DEFAULT_ANTHROPIC_MAX_TOKENS));
        trim_prefill(&mut request);
        check(Protocol::Anthropic, anthropic_codec::encode_request(&request));
    }
    (bits, first)
}

/// Why OCI's COHERE format cannot express `body`, an OpenAI body, if it cannot (what
/// [`untranslatable`] checks for OCI is the GENERIC format, what most OCI models speak). A body
/// that does not decode is left to [`untranslatable`].
pub fn cohere_untranslatable(body: &[u8]) -> Option<Unsupported> {
    let request = canonical(body).ok()?;
    oci_codec::encode_request(&request, oci_codec::Format::Cohere).err()
}
