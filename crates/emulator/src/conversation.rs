//! A canonical request (an Anthropic or Bedrock caller's, decoded) as an [`Ask`]. The
//! conversation is keyed and its tokens counted as the OpenAI messages it is written as
//! (`openai_codec::encode_request`): the same conversation gets the same answer and the same
//! usage whichever protocol carried it, and the same as when the gateway translates it for an
//! OpenAI deployment, so a stream begun on one protocol continues on another.

use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_wire::canonical::{Message, Part, Request, ResponseFormat, ResultPart, Role, ToolChoice};
use switchyard_wire::chat::ChatRequest;
use switchyard_wire::openai_codec;

use crate::answer::{Ask, Shape};
use crate::text::conversation_key;

/// What the emulator answers `request` from.
pub(crate) fn ask(request: &Request) -> Ask {
    let (messages, prefill) = split_prefill(request);
    let written = written(request, messages, prefill.as_deref());
    let openai: &[Value] = written.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let history = &openai[..openai.len() - usize::from(prefill.is_some() && !openai.is_empty())];
    let input_tokens = ChatRequest::parse(Bytes::from(written.to_string())).map_or(0, |r| r.input_tokens);
    Ask {
        key: conversation_key(history),
        shape: shape(request, messages, prefill.is_some()),
        user_text: user_text(messages),
        prefill,
        input_tokens,
        max_tokens: request.max_tokens,
        stream: request.stream,
    }
}

/// The key of a canonical request's conversation (without a trailing prefill): the key its
/// answer is drawn from, equal to [`conversation_key`] of the OpenAI messages it is written as.
pub fn canonical_conversation_key(request: &Request) -> u64 {
    ask(request).key
}

/// The messages before a prefill, and the prefill's text.
fn split_prefill(request: &Request) -> (&[Message], Option<String>) {
    match request.messages.split_last() {
        Some((last, rest)) if request.prefill && last.role == Role::Assistant => {
            let text: String = last
                .content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    Part::Image(_) | Part::ToolUse(_) | Part::ToolResult(_) => None,
                })
                .collect();
            (rest, Some(text))
        }
        _ => (&request.messages, None),
    }
}

/// The conversation and tools as an OpenAI body (a prefill as a final assistant message).
/// What OpenAI cannot express (an erroneous tool result, an image in one) is written as the
/// nearest thing it can.
fn written(request: &Request, messages: &[Message], prefill: Option<&str>) -> Value {
    let mut plain = Request {
        model: request.model.clone(),
        system: request.system.clone(),
        messages: messages.to_vec(),
        tools: request.tools.clone(),
        ..Request::default()
    };
    if let Some(text) = prefill {
        plain.messages.push(Message { role: Role::Assistant, content: vec![Part::Text(text.to_owned())] });
    }
    if let Ok(body) = openai_codec::encode_request(&plain) {
        return body;
    }
    for message in &mut plain.messages {
        for part in &mut message.content {
            if let Part::ToolResult(result) = part {
                result.is_error = false;
                for content in &mut result.content {
                    if let ResultPart::Image(_) = content {
                        *content = ResultPart::Text("[image]".into());
                    }
                }
            }
        }
    }
    openai_codec::encode_request(&plain).unwrap_or_else(|_| {
        let messages: Vec<Value> = plain.messages.iter().map(|m| json!(format!("{m:?}"))).collect();
        json!({"model": plain.model, "messages": messages})
    })
}

/// A tool call when tools are offered, the choice allows one and the user spoke last (not a
/// tool result); else JSON when asked for; else text.
fn shape(request: &Request, messages: &[Message], prefill: bool) -> Shape {
    let user_last = messages
        .last()
        .is_some_and(|m| m.role == Role::User && !m.content.iter().any(|p| matches!(p, Part::ToolResult(_))));
    if user_last && !prefill {
        let first = request.tools.first();
        let tool = match &request.tool_choice {
            Some(ToolChoice::None) => None,
            Some(ToolChoice::Tool { name }) => request.tools.iter().find(|t| &t.name == name).or(first),
            Some(ToolChoice::Auto | ToolChoice::Any) | None => first,
        };
        if let Some(tool) = tool {
            return Shape::Tool { name: tool.name.clone(), schema: tool.input_schema.clone() };
        }
    }
    match &request.response_format {
        Some(ResponseFormat::JsonObject) => Shape::JsonObject,
        Some(ResponseFormat::JsonSchema { schema, .. }) => Shape::JsonSchema(schema.clone()),
        None => Shape::Text,
    }
}

/// The text of the last user message that has any.
fn user_text(messages: &[Message]) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
        .map(|m| {
            let texts: Vec<&str> = m
                .content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    Part::Image(_) | Part::ToolUse(_) | Part::ToolResult(_) => None,
                })
                .collect();
            texts.join("\n")
        })
        .find(|t| !t.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use switchyard_wire::anthropic_codec;

    use super::*;

    #[test]
    fn a_conversation_keys_and_counts_as_its_openai_messages() {
        let anthropic = json!({"model": "m", "max_tokens": 50, "system": "Be brief.", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hel"},
        ]});
        let request = anthropic_codec::decode_request(anthropic.to_string().as_bytes()).unwrap();
        let ask = ask(&request);
        let openai = [json!({"role": "system", "content": "Be brief."}), json!({"role": "user", "content": "hi"})];
        assert_eq!(ask.key, conversation_key(&openai));
        assert_eq!(ask.prefill.as_deref(), Some("Hel"));
        let body = json!({"model": "m", "messages": [openai[0], openai[1], {"role": "assistant", "content": "Hel"}]});
        let counted = ChatRequest::parse(Bytes::from(body.to_string())).unwrap().input_tokens;
        assert_eq!(ask.input_tokens, counted);
        assert_eq!(ask.shape, Shape::Text);
    }

    #[test]
    fn tools_are_called_until_a_result_comes_back() {
        let tool = json!({"name": "get_weather", "input_schema": {"type": "object"}});
        let mut body = json!({"model": "m", "max_tokens": 50, "tools": [tool],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]});
        let called = ask(&anthropic_codec::decode_request(body.to_string().as_bytes()).unwrap());
        assert!(matches!(called.shape, Shape::Tool { ref name, .. } if name == "get_weather"));
        assert_eq!(called.user_text, "Weather in Paris?");
        body["tool_choice"] = json!({"type": "none"});
        let none = ask(&anthropic_codec::decode_request(body.to_string().as_bytes()).unwrap());
        assert_eq!(none.shape, Shape::Text);
        body["tool_choice"] = json!({"type": "auto"});
        body["messages"] = json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true}]},
        ]);
        let answered = ask(&anthropic_codec::decode_request(body.to_string().as_bytes()).unwrap());
        assert_eq!(answered.shape, Shape::Text, "a tool result is answered with text");
        assert_eq!(answered.user_text, "Weather in Paris?");
    }
}
