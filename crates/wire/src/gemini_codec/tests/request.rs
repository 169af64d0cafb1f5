//! Requests both ways, and what Gemini cannot express.

use super::{assistant, check_json, json, text, tool_result, tool_use, user};
use crate::canonical::{
    Image, ImageSource, Protocol, Request, ResponseFormat, Role, Sampling, Tool, ToolChoice, Unsupported,
};
use crate::gemini_codec::{decode_request, encode_request};

fn weather() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("The weather in a city".into()),
        input_schema: json(r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#),
        strict: None,
    }
}

fn full() -> Request {
    let image =
        Image { source: ImageSource::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }, detail: None };
    Request {
        model: "gemini-2.5-flash".into(),
        system: vec!["Be brief.".into(), "Use tools.".into()],
        messages: vec![
            user(vec![text("Weather in Paris?"), crate::canonical::Part::Image(image)]),
            assistant(vec![text("Let me look."), tool_use("call_1", "get_weather", r#"{"city":"Paris"}"#)]),
            user(vec![tool_result("call_1", "18C, sunny", false)]),
            user(vec![text("And in Rome?")]),
        ],
        tools: vec![weather()],
        tool_choice: Some(ToolChoice::Tool { name: "get_weather".into() }),
        stop: vec!["END".into()],
        sampling: Sampling { temperature: Some(0.5), top_p: Some(0.9), top_k: Some(40) },
        max_tokens: Some(256),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "answer".into(),
            description: None,
            schema: json(r#"{"type":"object"}"#),
            strict: None,
        }),
        ..Request::default()
    }
}

const FULL: &str = r#"{
  "contents": [
    {"role": "user", "parts": [{"text": "Weather in Paris?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}]},
    {"role": "model", "parts": [{"text": "Let me look."}, {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
    {"role": "user", "parts": [
      {"functionResponse": {"name": "get_weather", "response": {"content": "18C, sunny"}}},
      {"text": "And in Rome?"}]}
  ],
  "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
  "generationConfig": {"temperature": 0.5, "topP": 0.9, "topK": 40, "maxOutputTokens": 256, "stopSequences": ["END"],
    "responseMimeType": "application/json", "responseSchema": {"type": "object"}},
  "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "The weather in a city",
    "parameters": {"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}],
  "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
}"#;

#[test]
fn a_full_request_encodes_to_gemini() {
    check_json(&encode_request(&full()).expect("encodes"), FULL);
}

#[test]
fn a_gemini_request_decodes_to_the_canonical_model() {
    let request = decode_request(FULL.as_bytes(), "gemini-2.5-flash", true).expect("decodes");
    assert_eq!(request.system, vec!["Be brief.".to_owned(), "Use tools.".to_owned()]);
    assert!(request.stream && request.include_usage && !request.prefill);
    assert_eq!(request.messages.len(), 3, "the two user messages were one turn");
    // The call had no id: it gets one from its place, and the response answers it.
    assert_eq!(request.messages[1].content[1], tool_use("call_1_1", "get_weather", r#"{"city":"Paris"}"#));
    assert_eq!(request.messages[2].content[0], tool_result("call_1_1", "18C, sunny", false));
    assert_eq!(request.tool_choice, Some(ToolChoice::Tool { name: "get_weather".into() }));
    assert_eq!(request.sampling, Sampling { temperature: Some(0.5), top_p: Some(0.9), top_k: Some(40) });
    assert_eq!((request.max_tokens, request.stop.clone()), (Some(256), vec!["END".to_owned()]));
    assert!(matches!(request.response_format, Some(ResponseFormat::JsonSchema { .. })));
    // And back again, the same body.
    check_json(&encode_request(&request).expect("encodes"), FULL);
}

#[test]
fn modes_and_extras_both_ways() {
    for (choice, config) in [
        (ToolChoice::Auto, r#"{"mode":"AUTO"}"#),
        (ToolChoice::None, r#"{"mode":"NONE"}"#),
        (ToolChoice::Any, r#"{"mode":"ANY"}"#),
    ] {
        let request = Request {
            messages: vec![user(vec![text("hi")])],
            tools: vec![weather()],
            tool_choice: Some(choice.clone()),
            ..Request::default()
        };
        let body = encode_request(&request).expect("encodes");
        check_json(&body["toolConfig"]["functionCallingConfig"], config);
        let back = decode_request(body.to_string().as_bytes(), "m", false).expect("decodes");
        assert_eq!(back.tool_choice, Some(choice));
    }
    let body = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],
        "safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}],
        "generationConfig":{"responseMimeType":"application/json"}}"#;
    let request = decode_request(body, "m", false).expect("decodes");
    assert_eq!(request.response_format, Some(ResponseFormat::JsonObject));
    let extra = request.extra.as_ref().expect("kept");
    assert_eq!(extra.protocol, Protocol::Gemini);
    let again = encode_request(&request).expect("passed on to Gemini");
    assert_eq!(again["safetySettings"][0]["threshold"], "BLOCK_NONE");
}

#[test]
fn what_gemini_cannot_express_is_refused_by_name() {
    let base = || Request { messages: vec![user(vec![text("hi")])], ..Request::default() };
    let refused = |request: Request| -> String {
        let Unsupported { param, target, .. } = encode_request(&request).expect_err("refused");
        assert_eq!(target, Protocol::Gemini);
        param
    };
    let mut r = base();
    r.messages.push(assistant(vec![text("Once")]));
    r.prefill = true;
    assert_eq!(refused(r), "messages[1]");
    let mut r = base();
    r.messages[0].content.push(crate::canonical::Part::Image(Image {
        source: ImageSource::Url("https://x/y.png".into()),
        detail: None,
    }));
    assert_eq!(refused(r), "messages[0].content[1].source");
    let mut r = base();
    r.messages.insert(0, crate::canonical::Message { role: Role::System, content: vec![text("s")] });
    assert_eq!(refused(r), "messages[0].role");
    let mut r = base();
    r.parallel_tool_calls = Some(false);
    assert_eq!(refused(r), "parallel_tool_calls");
    let mut r = base();
    r.user_id = Some("u".into());
    assert_eq!(refused(r), "user");
    let mut r = base();
    r.messages = vec![user(vec![tool_result("nope", "x", false)])];
    assert_eq!(refused(r), "messages[0].content[0].tool_use_id");
    let mut r = base();
    r.tools = vec![Tool { strict: Some(true), ..weather() }];
    assert_eq!(refused(r), "tools[0].strict");
    let mut r = base();
    let openai = crate::canonical::Extra {
        protocol: Protocol::OpenAiChat,
        fields: json(r#"{"logprobs":true}"#).as_object().cloned().unwrap_or_default(),
    };
    r.extra = Some(openai);
    assert_eq!(refused(r), "logprobs");
}

#[test]
fn bad_bodies_name_the_field() {
    for (body, param) in [
        (r#"{}"#, "contents"),
        (r#"{"contents":[{"role":"system","parts":[]}]}"#, "contents"),
        (r#"{"contents":[{"role":"user","parts":[{"functionResponse":{"name":"f","response":{}}}]}]}"#, "contents"),
        (r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"topK":-1}}"#, "generationConfig"),
        (
            r#"{"contents":[{"parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"mode":"WHAT"}}}"#,
            "toolConfig",
        ),
    ] {
        let e = decode_request(body.as_bytes(), "m", false).expect_err(body);
        assert_eq!(e.param, Some(param), "{body}: {}", e.message);
    }
}
