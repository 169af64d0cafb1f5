//! Requests as sent (URL, auth, body in the deployment's protocol), what cannot be sent, and
//! refusals classified.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};
use switchyard_core::AttemptError;
use switchyard_providers::sigv4::{self, Credentials, Scope};
use switchyard_providers::{Auth, AzureCredential, DEFAULT_ANTHROPIC_MAX_TOKENS, Endpoint, Operation};

use crate::{
    ANTHROPIC_MODEL, AZURE_DEPLOYMENT, AZURE_HOST, BEDROCK_HOST, BEDROCK_MODEL, Captured, OPENAI_MODEL, Reply,
    anthropic, aws, azure, bedrock, chat, exchange, openai,
};

/// An OpenAI body with a system message, a user turn and a tool, plus `more` fields.
fn weather_body(model: &str, more: Value) -> Vec<u8> {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris ☀?"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "description": "The current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }}],
    });
    for (key, value) in more.as_object().expect("an object") {
        body[key] = value.clone();
    }
    body.to_string().into_bytes()
}

/// `20240101T120000Z` (SigV4's `x-amz-date`) as a time.
fn amz_date(text: &str) -> SystemTime {
    let b = text.as_bytes();
    assert!(b.len() == 16 && b[8] == b'T' && b[15] == b'Z', "an x-amz-date: {text}");
    let n = |range: Range<usize>| text[range].parse::<u64>().expect("digits");
    let (year, month, day) = (n(0..4), n(4..6), n(6..8));
    // Days since 1970-01-01, counting years from March (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (y / 400, y % 400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    UNIX_EPOCH + Duration::from_secs(days * 86_400 + n(9..11) * 3600 + n(11..13) * 60 + n(13..15))
}

/// Signs a captured request again, apart from the adapter: with the headers its
/// authorization lists as signed (but those the signer adds itself), at the time its
/// `x-amz-date` states, over `body`. The same authorization as sent means the peer received
/// what was signed.
fn resign(request: &Captured, credentials: &Credentials, body: &[u8]) -> HeaderMap {
    let authorization = request.header("authorization").expect("an authorization");
    let signed = authorization.split(", ").find_map(|p| p.strip_prefix("SignedHeaders=")).expect("SignedHeaders");
    let mut headers = HeaderMap::new();
    for name in signed.split(';').filter(|n| !matches!(*n, "x-amz-date" | "x-amz-security-token")) {
        let value = request.headers.get(name).unwrap_or_else(|| panic!("signed header {name} was not sent"));
        headers.insert(HeaderName::from_bytes(name.as_bytes()).expect("a header name"), value.clone());
    }
    let uri: Uri =
        format!("https://{}{}", request.header("host").expect("a host"), request.uri).parse().expect("a URI");
    let time = amz_date(request.header("x-amz-date").expect("an x-amz-date"));
    let to_sign = sigv4::Request { method: &request.method, uri: &uri, headers: &headers, body };
    let scope = Scope { region: "us-east-1", service: sigv4::BEDROCK };
    let mut out = HeaderMap::new();
    for (name, value) in sigv4::sign(&to_sign, scope, credentials, time).expect("signs") {
        out.insert(name, value);
    }
    out
}

/// Sends a request whose peer refuses it with `reply`, and gives the classified failure.
async fn refused(endpoint: Endpoint, reply: Reply) -> AttemptError {
    let protocol = endpoint.protocol;
    let body = weather_body(&endpoint.model, json!({}));
    let sent = exchange(endpoint, Operation::ChatCompletions, &body, reply.clone()).await;
    assert_eq!(sent.requests.len(), 1, "{protocol:?} {reply:?}");
    sent.outcome.expect_err("a refusal")
}

/// An Anthropic error answer.
fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, json!({"type": "error", "error": {"type": kind, "message": message}}).to_string())
}

/// A Bedrock error answer: `{"message"}` with the type in `x-amzn-ErrorType`, as AWS writes it.
fn bedrock_error(status: u16, kind: &str, message: &str) -> Reply {
    let error_type = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    Reply::json(status, json!({ "message": message }).to_string()).with("x-amzn-ErrorType", &error_type)
}

#[tokio::test]
async fn anthropic_gets_messages_with_its_key_and_version() {
    let sent = chat(anthropic(Some("sk-ant-test")), &weather_body(ANTHROPIC_MODEL, json!({"temperature": 0.2}))).await;
    assert!(matches!(sent.outcome, Ok((200, _))), "{:?}", sent.outcome);
    let request = sent.request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.uri, "/v1/messages");
    assert_eq!(request.header("host"), Some("api.anthropic.com"));
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None, "Anthropic takes x-api-key, not a Bearer token");
    let body = request.json();
    assert_eq!(
        body,
        json!({
            "model": ANTHROPIC_MODEL,
            "max_tokens": DEFAULT_ANTHROPIC_MAX_TOKENS,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Weather in Paris ☀?"}],
            "tools": [{
                "name": "get_weather",
                "description": "The current weather of a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            }],
            "temperature": 0.2,
        })
    );
}

#[tokio::test]
async fn anthropic_max_tokens_is_the_callers_when_given() {
    for (more, expected) in [
        (json!({"max_tokens": 300}), json!(300)),
        (json!({"max_completion_tokens": 200, "max_tokens": 300}), json!(200)),
        (json!({"stream": true, "stream_options": {"include_usage": true}}), json!(DEFAULT_ANTHROPIC_MAX_TOKENS)),
    ] {
        let sent = chat(anthropic(Some("k")), &weather_body(ANTHROPIC_MODEL, more.clone())).await;
        let body = sent.request().json();
        assert_eq!(body["max_tokens"], expected, "{more}");
        assert_eq!(body.get("stream"), more.get("stream"), "{more}");
        assert_eq!(body.get("stream_options"), None, "{more}");
    }
}

#[tokio::test]
async fn anthropic_without_a_key_sends_only_the_version() {
    let sent = chat(anthropic(None), &weather_body(ANTHROPIC_MODEL, json!({}))).await;
    let request = sent.request();
    assert_eq!(request.header("x-api-key"), None);
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn bedrock_converse_is_signed_with_sigv4() {
    let credentials = aws(Some("session-token-example"));
    for (stream, path) in [
        (false, "/model/us.meta.llama3-3-70b-instruct-v1%3A0/converse"),
        (true, "/model/us.meta.llama3-3-70b-instruct-v1%3A0/converse-stream"),
    ] {
        let body = weather_body(BEDROCK_MODEL, json!({"stream": stream, "max_tokens": 256}));
        let before = SystemTime::now() - Duration::from_secs(1);
        let sent = chat(bedrock(Auth::Aws(credentials.clone())), &body).await;
        let request = sent.request();
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.uri, path);
        assert_eq!(request.header("host"), Some(BEDROCK_HOST));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-amz-security-token"), Some("session-token-example"));
        let date = request.header("x-amz-date").expect("an x-amz-date");
        let signed_at = amz_date(date);
        assert!(signed_at >= before && signed_at <= SystemTime::now(), "signed now: {date}");
        let authorization = request.header("authorization").expect("an authorization");
        let prefix = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=",
            &date[..8]
        );
        let signature = authorization.strip_prefix(&prefix).unwrap_or_else(|| panic!("{authorization}"));
        assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");

        let again = resign(request, &credentials, &request.body);
        assert_eq!(again.get("authorization").map(HeaderValue::as_bytes), Some(authorization.as_bytes()));
        assert_eq!(again.get("x-amz-date").map(HeaderValue::as_bytes), Some(date.as_bytes()));
        let tampered = [&request.body[..], b" "].concat();
        assert_ne!(
            resign(request, &credentials, &tampered).get("authorization").map(HeaderValue::as_bytes),
            Some(authorization.as_bytes()),
            "the signature covers the body"
        );

        let body = request.json();
        assert_eq!(body["messages"], json!([{"role": "user", "content": [{"text": "Weather in Paris ☀?"}]}]));
        assert_eq!(body["system"], json!([{"text": "Be brief."}]));
        assert_eq!(body["inferenceConfig"], json!({"maxTokens": 256}));
        let spec = &body["toolConfig"]["tools"][0]["toolSpec"];
        assert_eq!(spec["name"], "get_weather");
        assert_eq!(spec["inputSchema"]["json"]["required"], json!(["city"]));
        assert!(body.get("model").is_none() && body.get("stream").is_none(), "in the URL, not the body: {body}");
    }
}

#[tokio::test]
async fn bedrock_without_a_session_token_signs_none() {
    let credentials = aws(None);
    let sent = chat(bedrock(Auth::Aws(credentials.clone())), &weather_body(BEDROCK_MODEL, json!({}))).await;
    let request = sent.request();
    assert_eq!(request.header("x-amz-security-token"), None);
    let authorization = request.header("authorization").expect("an authorization");
    assert!(authorization.contains(", SignedHeaders=content-type;host;x-amz-date, "), "{authorization}");
    let again = resign(request, &credentials, &request.body);
    assert_eq!(again.get("authorization").map(HeaderValue::as_bytes), Some(authorization.as_bytes()));
}

#[tokio::test]
async fn bedrock_with_an_api_key_sends_a_bearer_token_and_no_signature() {
    let body = weather_body(BEDROCK_MODEL, json!({}));
    let sent = chat(bedrock(Auth::Bearer("ABSKbedrock-api-key".into())), &body).await;
    let request = sent.request();
    assert_eq!(request.uri, "/model/us.meta.llama3-3-70b-instruct-v1%3A0/converse");
    assert_eq!(request.header("authorization"), Some("Bearer ABSKbedrock-api-key"));
    for sigv4_only in ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
        assert_eq!(request.header(sigv4_only), None, "{sigv4_only}");
    }
    assert_eq!(request.json()["messages"][0]["content"][0]["text"], "Weather in Paris ☀?");
}

#[tokio::test]
async fn what_a_protocol_cannot_express_is_a_400_naming_it_and_nothing_is_sent() {
    let aws_bedrock = || bedrock(Auth::Aws(aws(None)));
    let cases = [
        (aws_bedrock(), json!({"response_format": {"type": "json_object"}}), "response_format"),
        (anthropic(Some("k")), json!({"response_format": {"type": "json_object"}}), "response_format"),
        (anthropic(Some("k")), json!({"temperature": 1.5}), "temperature"),
        (aws_bedrock(), json!({"seed": 7}), "seed"),
        (anthropic(Some("k")), json!({"seed": 7}), "seed"),
        (anthropic(Some("k")), json!({"n": 2}), "n"),
        (aws_bedrock(), json!({"parallel_tool_calls": false}), "parallel_tool_calls"),
        (
            aws_bedrock(),
            json!({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]}),
            "messages[1]",
        ),
    ];
    for (endpoint, more, param) in cases {
        let protocol = endpoint.protocol;
        let sent = chat(endpoint, &weather_body("m", more.clone())).await;
        let Err(AttemptError::ClientError { status: 400, message, code }) = &sent.outcome else {
            panic!("{protocol:?} {more}: {:?}", sent.outcome);
        };
        assert!(message.contains(&format!("`{param}`")), "{protocol:?} {more}: {message}");
        assert_eq!(code.as_deref(), Some("unsupported_parameter"));
        assert_eq!((sent.dials, sent.requests.len()), (0, 0), "{protocol:?} {more}: nothing sent");
    }
    // A body that is not an OpenAI request at all is the caller's 400 too.
    let sent = chat(anthropic(Some("k")), b"{\"messages\": 3}").await;
    assert!(matches!(sent.outcome, Err(AttemptError::ClientError { status: 400, .. })), "{:?}", sent.outcome);
    assert_eq!(sent.dials, 0);
}

#[tokio::test]
async fn a_continuation_reaches_anthropic_and_bedrock_as_a_prefill() {
    let continuation = |model: &str| {
        json!({
            "model": model,
            "messages": [{"role": "user", "content": "Count to five."}, {"role": "assistant", "content": "1, 2,"}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "continue_final_message": true,
            "add_generation_prompt": false,
            "max_tokens": 40,
        })
        .to_string()
        .into_bytes()
    };
    let sent = chat(anthropic(Some("k")), &continuation(ANTHROPIC_MODEL)).await;
    let body = sent.request().json();
    assert_eq!(
        body,
        json!({
            "model": ANTHROPIC_MODEL,
            "max_tokens": 40,
            "messages": [{"role": "user", "content": "Count to five."}, {"role": "assistant", "content": "1, 2,"}],
            "stream": true,
        })
    );

    let sent = chat(bedrock(Auth::Aws(aws(None))), &continuation(BEDROCK_MODEL)).await;
    let request = sent.request();
    assert!(request.uri.path().ends_with("/converse-stream"), "{}", request.uri);
    let body = request.json();
    assert_eq!(body["messages"][1], json!({"role": "assistant", "content": [{"text": "1, 2,"}]}));
    for field in ["continue_final_message", "add_generation_prompt", "additionalModelRequestFields"] {
        assert!(body.get(field).is_none(), "{field}: {body}");
    }
}

#[tokio::test]
async fn openai_bodies_pass_through_byte_for_byte() {
    let body = format!(
        "{{\"model\":\"{OPENAI_MODEL}\",  \"messages\":[{{\"role\":\"user\",\"content\":\"hi \\u00e9\"}}],\n\
         \"seed\":7,\"logit_bias\":{{\"50256\":-100}},\"x_vendor\":{{\"a\":[1,2]}}}}"
    );
    let body = body.as_bytes();
    let sent = chat(openai(), body).await;
    let request = sent.request();
    assert_eq!(request.uri, "/v1/chat/completions");
    assert_eq!(request.header("host"), Some("vllm.internal:8000"));
    assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(&request.body[..], body);

    // Not even JSON is looked at: the upstream judges it.
    let sent = chat(openai(), b"not json").await;
    assert_eq!(&sent.request().body[..], b"not json");

    let embeddings = br#"{"model":"text-embedding-3-small","input":["a","b"]}"#;
    let sent = exchange(openai(), Operation::Embeddings, embeddings, Reply::json(200, "{}")).await;
    assert_eq!(sent.request().uri, "/v1/embeddings");
    assert_eq!(&sent.request().body[..], &embeddings[..]);
}

/// Azure OpenAI gets OpenAI's body byte for byte, at its deployment's URL with the
/// `api-version`, and its key as `api-key` (no Bearer token).
#[tokio::test]
async fn azure_gets_the_openai_body_at_its_deployment_url_with_its_api_key() {
    let body = format!(
        "{{\"model\":\"{AZURE_DEPLOYMENT}\",  \"messages\":[{{\"role\":\"user\",\"content\":\"hi \\u00e9\"}}],\n\
         \"stream\":true,\"seed\":7,\"x_vendor\":{{\"a\":[1,2]}}}}"
    );
    let base = format!("https://{AZURE_HOST}");
    let sent = chat(azure(&base, AzureCredential::ApiKey("azure-key".into())), body.as_bytes()).await;
    assert!(matches!(sent.outcome, Ok((200, _))), "{:?}", sent.outcome);
    let request = sent.request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.uri, "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    assert_eq!(request.header("host"), Some(AZURE_HOST));
    assert_eq!(request.header("api-key"), Some("azure-key"));
    assert_eq!(request.header("authorization"), None, "a key is api-key, not a Bearer token");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(&request.body[..], body.as_bytes(), "the body passes through byte for byte");

    let embeddings = br#"{"model":"gpt-4o-prod","input":["a","b"]}"#;
    let endpoint = azure(&base, AzureCredential::ApiKey("azure-key".into()));
    let sent = exchange(endpoint, Operation::Embeddings, embeddings, Reply::json(200, "{}")).await;
    assert_eq!(sent.request().uri, "/openai/deployments/gpt-4o-prod/embeddings?api-version=2024-10-21");
    assert_eq!(&sent.request().body[..], &embeddings[..]);

    // Another api-version, as configured.
    let mut endpoint = azure(&base, AzureCredential::ApiKey("azure-key".into()));
    endpoint.auth = Auth::Azure {
        credential: AzureCredential::ApiKey("azure-key".into()),
        api_version: "2025-04-01-preview".into(),
    };
    let sent = chat(endpoint, body.as_bytes()).await;
    assert_eq!(sent.request().uri, "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2025-04-01-preview");
}

/// An Entra ID token is a Bearer token, and no `api-key` is sent.
#[tokio::test]
async fn azure_with_an_entra_token_sends_it_as_a_bearer_token() {
    let body = weather_body(AZURE_DEPLOYMENT, json!({}));
    let sent =
        chat(azure(&format!("https://{AZURE_HOST}"), AzureCredential::Entra("eyJ0eXAi.token".into())), &body).await;
    let request = sent.request();
    assert_eq!(request.header("authorization"), Some("Bearer eyJ0eXAi.token"));
    assert_eq!(request.header("api-key"), None);
    assert_eq!(&request.body[..], &body[..]);
}

/// An endpoint ending in `/openai/v1` is Azure's v1 API: OpenAI's paths there, no api-version.
#[tokio::test]
async fn azure_v1_endpoints_take_openai_paths_without_an_api_version() {
    let base = format!("https://{AZURE_HOST}/openai/v1");
    let body = weather_body(AZURE_DEPLOYMENT, json!({"stream": true}));
    let sent = chat(azure(&base, AzureCredential::ApiKey("azure-key".into())), &body).await;
    let request = sent.request();
    assert_eq!(request.uri, "/openai/v1/chat/completions");
    assert_eq!(request.header("api-key"), Some("azure-key"));
    assert_eq!(&request.body[..], &body[..]);
    let embeddings = br#"{"model":"gpt-4o-prod","input":"a"}"#;
    let endpoint = azure(&base, AzureCredential::ApiKey("azure-key".into()));
    let sent = exchange(endpoint, Operation::Embeddings, embeddings, Reply::json(200, "{}")).await;
    assert_eq!(sent.request().uri, "/openai/v1/embeddings");
}

/// Azure's refusals are OpenAI-shaped and classified as OpenAI's: its content filter, its 401
/// for a wrong key and its 404 for a deployment that does not exist.
#[tokio::test]
async fn azure_refusals_are_classified() {
    let endpoint = || azure(&format!("https://{AZURE_HOST}"), AzureCredential::ApiKey("k".into()));
    let filtered = json!({"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "type": null, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"violence": {"filtered": true, "severity": "medium"}}},
    }});
    let too_long =
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.";
    let cases = [
        (
            Reply::json(400, filtered.to_string()),
            AttemptError::ContentFiltered {
                message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."
                    .into(),
                code: Some("content_filter".into()),
            },
        ),
        (
            // Only the inner code says it.
            Reply::json(400, json!({"error": {"message": "filtered", "code": "400",
                "innererror": {"code": "ResponsibleAIPolicyViolation"}}}).to_string()),
            AttemptError::ContentFiltered { message: "filtered".into(), code: Some("400".into()) },
        ),
        (
            Reply::json(400, json!({"error": {"message": too_long, "type": "invalid_request_error",
                "param": "messages", "code": "context_length_exceeded"}}).to_string()),
            AttemptError::ContextLengthExceeded { message: too_long.into() },
        ),
        (
            Reply::json(401, json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}).to_string()),
            AttemptError::UpstreamRefused { status: 401 },
        ),
        (
            Reply::json(404, json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}).to_string()),
            AttemptError::UpstreamRefused { status: 404 },
        ),
        (
            Reply::json(429, json!({"error": {"code": "429", "message": "Requests ... have exceeded token rate limit"}}).to_string())
                .with("retry-after-ms", "1500"),
            AttemptError::RateLimited { retry_after: Some(Duration::from_millis(1500)) },
        ),
        (Reply::json(503, "{}"), AttemptError::ServerError { status: 503 }),
    ];
    for (reply, expected) in cases {
        assert_eq!(refused(endpoint(), reply.clone()).await, expected, "{reply:?}");
    }
}

/// Embeddings pass through to OpenAI's deployments only: Bedrock's and Gemini's are made by
/// calls in their own API (`Upstream::embed`, `embed.rs`), never sent as OpenAI bodies.
#[tokio::test]
async fn only_openai_deployments_take_embeddings_as_they_are() {
    let body = br#"{"model":"m","input":"a"}"#;
    for endpoint in [anthropic(Some("k")), bedrock(Auth::Aws(aws(None)))] {
        let sent = exchange(endpoint, Operation::Embeddings, body, Reply::json(200, "{}")).await;
        assert!(matches!(sent.outcome, Err(AttemptError::InvalidResponse { .. })), "{:?}", sent.outcome);
        assert_eq!(sent.dials, 0);
    }
}

#[tokio::test]
async fn anthropic_refusals_are_classified() {
    let too_long = "prompt is too long: 215041 tokens > 200000 maximum";
    let cases = [
        (anthropic_error(529, "overloaded_error", "Overloaded"), AttemptError::RateLimited { retry_after: None }),
        (
            anthropic_error(429, "rate_limit_error", "Slow down").with("retry-after", "20"),
            AttemptError::RateLimited { retry_after: Some(Duration::from_secs(20)) },
        ),
        (
            anthropic_error(400, "invalid_request_error", too_long),
            AttemptError::ContextLengthExceeded { message: too_long.into() },
        ),
        (
            anthropic_error(400, "invalid_request_error", "tools.0.name: String should match pattern"),
            AttemptError::ClientError {
                status: 400,
                message: "tools.0.name: String should match pattern".into(),
                code: Some("invalid_request_error".into()),
            },
        ),
        (
            anthropic_error(401, "authentication_error", "invalid x-api-key"),
            AttemptError::UpstreamRefused { status: 401 },
        ),
        (anthropic_error(500, "api_error", "Internal server error"), AttemptError::ServerError { status: 500 }),
    ];
    for (reply, expected) in cases {
        assert_eq!(refused(anthropic(Some("k")), reply.clone()).await, expected, "{reply:?}");
    }
}

#[tokio::test]
async fn bedrock_refusals_are_classified() {
    let too_long = "Input is too long for requested model.";
    let throttled = bedrock_error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
    let cases = [
        (throttled.clone(), AttemptError::RateLimited { retry_after: None }),
        (throttled.with("retry-after", "7"), AttemptError::RateLimited { retry_after: Some(Duration::from_secs(7)) }),
        (
            bedrock_error(429, "ModelNotReadyException", "Model is not ready"),
            AttemptError::RateLimited { retry_after: None },
        ),
        (bedrock_error(400, "ServiceQuotaExceededException", "Quota"), AttemptError::RateLimited { retry_after: None }),
        (
            bedrock_error(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
            AttemptError::ServerError { status: 503 },
        ),
        (
            bedrock_error(400, "ValidationException", too_long),
            AttemptError::ContextLengthExceeded { message: too_long.into() },
        ),
        (
            // Without the header, the body's `__type` names the error.
            Reply::json(
                400,
                json!({"__type": "com.amazon.coral.validate#ValidationException", "message": too_long}).to_string(),
            ),
            AttemptError::ContextLengthExceeded { message: too_long.into() },
        ),
        (
            bedrock_error(400, "ValidationException", "The model returned the following errors: temperature: 0..1"),
            AttemptError::ClientError {
                status: 400,
                message: "The model returned the following errors: temperature: 0..1".into(),
                code: Some("ValidationException".into()),
            },
        ),
        (
            bedrock_error(403, "InvalidSignatureException", "The request signature we calculated does not match."),
            AttemptError::UpstreamRefused { status: 403 },
        ),
        (
            bedrock_error(
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
            ),
            AttemptError::UpstreamRefused { status: 403 },
        ),
        (
            bedrock_error(404, "ResourceNotFoundException", "Model not found"),
            AttemptError::UpstreamRefused { status: 404 },
        ),
        (
            bedrock_error(408, "ModelTimeoutException", "Model has timed out in processing the request."),
            AttemptError::ServerError { status: 408 },
        ),
        (bedrock_error(424, "ModelErrorException", "The model failed"), AttemptError::ServerError { status: 424 }),
        (bedrock_error(500, "InternalServerException", "Internal error"), AttemptError::ServerError { status: 500 }),
    ];
    for (reply, expected) in cases {
        assert_eq!(refused(bedrock(Auth::Aws(aws(None))), reply.clone()).await, expected, "{reply:?}");
    }
}
