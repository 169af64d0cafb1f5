//! Requests both ways, in both formats: the snapshot of each, the round trip, and refusals.

use super::{assistant, check_json, json, text, tool_result, tool_use, user};
use crate::canonical::{
    Extra, Image, ImageDetail, ImageSource, Message, Part, Protocol, Request, ResponseFormat, Role, Tool, ToolChoice,
};
use crate::oci_codec::{ChatDetails, Format, chat_details, decode_request, encode_request};

fn weather_tool() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("The weather in a city".into()),
        input_schema: json(
            r#"{"type":"object","properties":{"city":{"type":"string","description":"The city"},
                "unit":{"type":"string","enum":["c","f"]},"days":{"type":"array","items":{"type":"integer"}}},
                "required":["city"]}"#,
        ),
        strict: None,
    }
}

/// A conversation with a tool round trip, as both formats can carry it.
fn conversation() -> Request {
    Request {
        model: "meta.llama-3.3-70b-instruct".into(),
        system: vec!["Be brief.".into()],
        messages: vec![
            user(vec![text("Weather in Paris?")]),
            assistant(vec![text("Let me check."), tool_use("call_1", "get_weather", r#"{"city":"Paris"}"#)]),
            user(vec![tool_result("call_1", "sunny"), text("And tomorrow?")]),
        ],
        tools: vec![weather_tool()],
        stop: vec!["END".into()],
        max_tokens: Some(100),
        sampling: crate::canonical::Sampling { temperature: Some(0.5), top_p: Some(0.9), top_k: Some(40) },
        stream: true,
        include_usage: true,
        ..Request::default()
    }
}

#[test]
fn a_generic_request_is_written_as_oci_expects() {
    let mut request = conversation();
    request.tool_choice = Some(ToolChoice::Tool { name: "get_weather".into() });
    request.parallel_tool_calls = Some(false);
    request.response_format = Some(ResponseFormat::JsonObject);
    request.messages[0].content.push(Part::Image(Image {
        source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
        detail: Some(ImageDetail::Low),
    }));
    let body = encode_request(&request, Format::Generic).expect("GENERIC carries it");
    check_json(
        &body,
        r#"{"apiFormat":"GENERIC",
            "messages":[
              {"role":"SYSTEM","content":[{"type":"TEXT","text":"Be brief."}]},
              {"role":"USER","content":[{"type":"TEXT","text":"Weather in Paris?"},
                {"type":"IMAGE","imageUrl":{"url":"data:image/png;base64,AAAA","detail":"LOW"}}]},
              {"role":"ASSISTANT","content":[{"type":"TEXT","text":"Let me check."}],
               "toolCalls":[{"id":"call_1","type":"FUNCTION","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}]},
              {"role":"TOOL","toolCallId":"call_1","content":[{"type":"TEXT","text":"sunny"}]},
              {"role":"USER","content":[{"type":"TEXT","text":"And tomorrow?"}]}],
            "tools":[{"type":"FUNCTION","name":"get_weather","description":"The weather in a city",
              "parameters":{"type":"object","properties":{"city":{"type":"string","description":"The city"},
                "unit":{"type":"string","enum":["c","f"]},"days":{"type":"array","items":{"type":"integer"}}},"required":["city"]}}],
            "toolChoice":{"type":"FUNCTION","name":"get_weather"},
            "isParallelToolCalls":false,
            "responseFormat":{"type":"JSON_OBJECT"},
            "maxTokens":100,"temperature":0.5,"topP":0.9,"topK":40,"stop":["END"],
            "isStream":true,"streamOptions":{"isIncludeUsage":true}}"#,
    );
}

#[test]
fn a_cohere_request_is_written_as_oci_expects() {
    let body = encode_request(&conversation(), Format::Cohere).expect("COHERE carries it");
    check_json(
        &body,
        r#"{"apiFormat":"COHERE",
            "message":"And tomorrow?",
            "chatHistory":[
              {"role":"USER","message":"Weather in Paris?"},
              {"role":"CHATBOT","message":"Let me check.","toolCalls":[{"name":"get_weather","parameters":{"city":"Paris"}}]}],
            "toolResults":[{"call":{"name":"get_weather","parameters":{"city":"Paris"}},"outputs":[{"output":"sunny"}]}],
            "preambleOverride":"Be brief.",
            "tools":[{"name":"get_weather","description":"The weather in a city","parameterDefinitions":{
              "city":{"type":"str","description":"The city","isRequired":true},
              "unit":{"type":"str","description":"(one of: \"c\", \"f\")","isRequired":false},
              "days":{"type":"List[int]","isRequired":false}}}],
            "maxTokens":100,"temperature":0.5,"topP":0.9,"topK":40,"stopSequences":["END"],
            "isStream":true,"streamOptions":{"isIncludeUsage":true}}"#,
    );
}

#[test]
fn chat_details_pick_the_serving_mode_from_the_model_id() {
    let on_demand = chat_details("ocid1.compartment.oc1..c", "cohere.command-r-plus", json("{}"));
    check_json(
        &on_demand,
        r#"{"compartmentId":"ocid1.compartment.oc1..c","servingMode":{"servingType":"ON_DEMAND","modelId":"cohere.command-r-plus"},"chatRequest":{}}"#,
    );
    let endpoint = "ocid1.generativeaiendpoint.oc1.us-chicago-1.amaaaa";
    let dedicated = chat_details("ocid1.compartment.oc1..c", endpoint, json("{}"));
    assert_eq!(dedicated["servingMode"], json(&format!(r#"{{"servingType":"DEDICATED","endpointId":"{endpoint}"}}"#)));
}

/// What the emulator reads back is what was sent (the system prompt, tool ids by place for
/// Cohere, which has none on the wire).
#[test]
fn requests_decode_back_in_both_formats() {
    let request = conversation();
    for format in [Format::Generic, Format::Cohere] {
        let chat = encode_request(&request, format).expect("encodes");
        let body = chat_details("ocid1.compartment.oc1..c", &request.model, chat);
        let ChatDetails { compartment, model, format: read, request: back } =
            decode_request(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(
            (compartment.as_str(), model.as_str(), read),
            ("ocid1.compartment.oc1..c", request.model.as_str(), format)
        );
        let mut expected = request.clone();
        if format == Format::Cohere {
            // Cohere's history has no call ids: the call gets its place's, and the result with it.
            expected.messages[1].content[1] = tool_use("call_1_0", "get_weather", r#"{"city":"Paris"}"#);
            expected.messages[2].content[0] = tool_result("call_1_0", "sunny");
            expected.tools[0].input_schema = json(
                r#"{"type":"object","properties":{"city":{"type":"string","description":"The city"},
                    "unit":{"type":"string","description":"(one of: \"c\", \"f\")"},"days":{"type":"array","items":{"type":"integer"}}},
                    "required":["city"]}"#,
            );
        }
        assert_eq!(back, expected, "{format:?}");
    }
}

#[test]
fn openai_penalties_and_seed_have_their_places() {
    let mut request = conversation();
    request.stream = false;
    let fields = json(r#"{"frequency_penalty":0.5,"presence_penalty":0.25,"seed":7}"#);
    request.extra =
        Some(Extra { protocol: Protocol::OpenAiChat, fields: fields.as_object().cloned().unwrap_or_default() });
    for format in [Format::Generic, Format::Cohere] {
        let body = encode_request(&request, format).expect("encodes");
        assert_eq!((body["frequencyPenalty"].as_f64(), body["presencePenalty"].as_f64()), (Some(0.5), Some(0.25)));
        assert_eq!((body["seed"].as_u64(), body.get("isStream")), (Some(7), None));
    }
    let fields = json(r#"{"logprobs":true}"#);
    request.extra =
        Some(Extra { protocol: Protocol::OpenAiChat, fields: fields.as_object().cloned().unwrap_or_default() });
    let err = encode_request(&request, Format::Generic).expect_err("no logprobs");
    assert_eq!((err.param.as_str(), err.target), ("logprobs", Protocol::Oci));
}

#[test]
fn what_oci_cannot_express_is_refused_with_its_parameter() {
    let refused = |request: &Request, format| encode_request(request, format).expect_err("refused").param;
    let mut prefill = conversation();
    prefill.messages.push(assistant(vec![text("Tomorrow")]));
    prefill.prefill = true;
    assert_eq!(refused(&prefill, Format::Generic), "messages[3]");
    assert_eq!(refused(&prefill, Format::Cohere), "messages[3]");
    let mut user_id = conversation();
    user_id.user_id = Some("u-1".into());
    assert_eq!(refused(&user_id, Format::Generic), "user");
    let mut strict = conversation();
    strict.tools[0].strict = Some(true);
    assert_eq!(refused(&strict, Format::Generic), "tools[0].strict");
    let mut forced = conversation();
    forced.tool_choice = Some(ToolChoice::Any);
    assert_eq!(refused(&forced, Format::Cohere), "tool_choice");
    let mut image = conversation();
    image.messages[2]
        .content
        .push(Part::Image(Image { source: ImageSource::Url("https://x/y.png".into()), detail: None }));
    assert_eq!(refused(&image, Format::Cohere), "messages[2].content[2]");
    let mut nested = conversation();
    nested.tools[0].input_schema =
        json(r#"{"type":"object","properties":{"at":{"type":"object","properties":{"lat":{"type":"number"}}}}}"#);
    assert_eq!(refused(&nested, Format::Cohere), "tools[0].parameters.properties.at.properties");
    let mut ends_with_answer = conversation();
    ends_with_answer.messages.truncate(2);
    assert_eq!(refused(&ends_with_answer, Format::Cohere), "messages[1]");
    let mut system_late = conversation();
    system_late.messages.insert(1, Message { role: Role::System, content: vec![text("Now in French.")] });
    let body = encode_request(&system_late, Format::Generic).expect("GENERIC has system messages anywhere");
    assert_eq!(body["messages"][2]["role"], "SYSTEM");
}
