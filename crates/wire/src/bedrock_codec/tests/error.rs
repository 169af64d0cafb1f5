//! Bedrock Runtime HTTP errors ⇄ canonical errors.

use serde_json::json;

use crate::bedrock_codec::{ERROR_TYPE_HEADER, decode_error, encode_error};
use crate::canonical::{ErrorClass, ErrorObject};

const CORAL: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

#[test]
fn every_converse_error_type_classifies() {
    let cases: [(u16, &str, &str, ErrorClass); 15] = [
        (429, "ThrottlingException", "Too many requests, please wait before trying again.", ErrorClass::RateLimit),
        (503, "ServiceUnavailableException", "Bedrock is unable to process your request.", ErrorClass::Overloaded),
        (
            429,
            "ModelNotReadyException",
            "Model is not ready for inference. Wait and try again.",
            ErrorClass::Overloaded,
        ),
        (400, "ValidationException", "Input is too long for requested model.", ErrorClass::ContextLength),
        (400, "ValidationException", "Too many input tokens. Max input tokens: 8192", ErrorClass::ContextLength),
        (
            400,
            "ValidationException",
            "The model returned the following errors: prompt is too long: 210000 tokens > 200000 maximum",
            ErrorClass::ContextLength,
        ),
        (
            400,
            "ValidationException",
            "Malformed input request: #: extraneous key [foo] is not permitted",
            ErrorClass::InvalidRequest,
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            ErrorClass::Permission,
        ),
        (
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the model identifier",
            ErrorClass::NotFound,
        ),
        (408, "ModelTimeoutException", "Model has timed out in processing the request.", ErrorClass::Server),
        (
            500,
            "InternalServerException",
            "The system encountered an unexpected error during processing.",
            ErrorClass::Server,
        ),
        (424, "ModelErrorException", "The model failed to process the request.", ErrorClass::Server),
        (
            400,
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota for your account.",
            ErrorClass::RateLimit,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            ErrorClass::Authentication,
        ),
        (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match",
            ErrorClass::Authentication,
        ),
    ];
    for (status, kind, message, class) in cases {
        let body = json!({"message": message}).to_string();
        let header = format!("{kind}{CORAL}");
        let error = decode_error(status, Some(&header), body.as_bytes());
        assert_eq!(
            error,
            ErrorObject { class, message: message.into(), code: Some(kind.into()), param: None },
            "{status} {kind}"
        );
        // The same type named in the body, as AWS's JSON protocols may.
        let typed = json!({"__type": format!("com.amazon.coral.service#{kind}"), "Message": message}).to_string();
        assert_eq!(decode_error(status, None, typed.as_bytes()).class, class, "{kind} in __type");
    }
    assert_eq!(ERROR_TYPE_HEADER, "x-amzn-errortype");
}

#[test]
fn without_a_known_type_the_status_says() {
    for (status, body, class) in [
        (400, r#"{"message":"bad"}"#, ErrorClass::InvalidRequest),
        (400, r#"{"message":"input length exceeds context window"}"#, ErrorClass::ContextLength),
        (401, "", ErrorClass::Authentication),
        (403, "<html>denied</html>", ErrorClass::Permission),
        (404, "", ErrorClass::NotFound),
        (408, "", ErrorClass::Server),
        (429, "", ErrorClass::RateLimit),
        (502, "bad gateway", ErrorClass::Server),
        (503, "upstream connect error", ErrorClass::Overloaded),
    ] {
        let error = decode_error(status, None, body.as_bytes());
        assert_eq!(error.class, class, "{status} {body}");
        assert_eq!(error.code, None);
    }
    let novel = decode_error(429, Some("NovelException:http://x/"), br#"{"message":"m"}"#);
    assert_eq!((novel.class, novel.code.as_deref()), (ErrorClass::RateLimit, Some("NovelException")));
    let bare = decode_error(429, Some("ThrottlingException"), b"");
    assert_eq!((bare.class, bare.message.as_str()), (ErrorClass::RateLimit, "ThrottlingException"));
    let text = decode_error(500, None, b"oops\n\x1b[31m");
    assert!(text.message.starts_with("oops") && !text.message.contains('\x1b'), "{:?}", text.message);
}

#[test]
fn errors_encode_with_their_status_and_type_and_read_back() {
    for (class, status, kind) in [
        (ErrorClass::InvalidRequest, 400, "ValidationException"),
        (ErrorClass::ContextLength, 400, "ValidationException"),
        (ErrorClass::ContentFilter, 400, "ValidationException"),
        (ErrorClass::Authentication, 403, "UnrecognizedClientException"),
        (ErrorClass::Permission, 403, "AccessDeniedException"),
        (ErrorClass::NotFound, 404, "ResourceNotFoundException"),
        (ErrorClass::RateLimit, 429, "ThrottlingException"),
        (ErrorClass::Overloaded, 503, "ServiceUnavailableException"),
        (ErrorClass::Server, 500, "InternalServerException"),
    ] {
        let message = match class {
            ErrorClass::ContextLength => "Input is too long for requested model.",
            _ => "said so",
        };
        let (s, k, body) = encode_error(&ErrorObject::new(class, message));
        assert_eq!((s, k), (status, kind), "{class}");
        assert_eq!(body, json!({"message": message}));
        let back = decode_error(s, Some(k), body.to_string().as_bytes());
        let expected = match class {
            // Converse has no content-filter error: a filtered request is a validation error.
            ErrorClass::ContentFilter => ErrorClass::InvalidRequest,
            other => other,
        };
        assert_eq!(back.class, expected, "{class}");
    }
}
