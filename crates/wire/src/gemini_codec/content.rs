//! Gemini `contents` and their parts (`text`, `inlineData`, `functionCall`,
//! `functionResponse`) ⇄ canonical messages.

use serde_json::{Map, Value, json};

use super::request::TARGET;
use crate::canonical::{
    Image, ImageDetail, ImageSource, Message, Part, ResultPart, Role, ToolResult, ToolUse, Unsupported,
};
use crate::chat::RequestError;
use crate::read::{as_array, as_object, bad, str_field};

/// The id a tool call without one gets: its place in the conversation.
pub(super) fn call_id(message: usize, part: usize) -> String {
    format!("call_{message}_{part}")
}

/// Reads the `contents` of a request. A `functionResponse` answers the earliest call of its
/// name (or its `id`) not yet answered.
pub(super) fn read_contents(contents: &[Value]) -> Result<Vec<Message>, RequestError> {
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut messages = Vec::with_capacity(contents.len());
    for (i, content) in contents.iter().enumerate() {
        let path = format!("contents[{i}]");
        let c = as_object(content, "contents", &path)?;
        let role = match c.get("role").and_then(Value::as_str).unwrap_or("user") {
            "user" => Role::User,
            "model" => Role::Assistant,
            other => return Err(bad("contents", format_args!("{path}.role"), format!("unsupported role '{other}'"))),
        };
        let parts = as_array(c.get("parts").unwrap_or(&Value::Null), "contents", format_args!("{path}.parts"))?;
        let mut out = Vec::with_capacity(parts.len());
        for (j, part) in parts.iter().enumerate() {
            let at = format!("{path}.parts[{j}]");
            let p = as_object(part, "contents", &at)?;
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = p.get("text") {
                let text =
                    text.as_str().ok_or_else(|| bad("contents", format_args!("{at}.text"), "must be a string"))?;
                out.push(Part::Text(text.to_owned()));
            } else if let (Some(data), Role::User) = (p.get("inlineData"), role) {
                let d = as_object(data, "contents", format_args!("{at}.inlineData"))?;
                let media_type = str_field(d, "mimeType", "contents", format_args!("{at}.inlineData"))?;
                let data = str_field(d, "data", "contents", format_args!("{at}.inlineData"))?;
                out.push(Part::Image(Image { source: ImageSource::Base64 { media_type, data }, detail: None }));
            } else if let (Some(call), Role::Assistant) = (p.get("functionCall"), role) {
                let f = as_object(call, "contents", format_args!("{at}.functionCall"))?;
                let name = str_field(f, "name", "contents", format_args!("{at}.functionCall"))?;
                let id = match f.get("id").and_then(Value::as_str) {
                    Some(id) => id.to_owned(),
                    None => call_id(i, j),
                };
                let input = f.get("args").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({}));
                if !input.is_object() {
                    return Err(bad("contents", format_args!("{at}.functionCall.args"), "must be an object"));
                }
                pending.push((id.clone(), name.clone()));
                out.push(Part::ToolUse(ToolUse { id, name, input }));
            } else if let (Some(response), Role::User) = (p.get("functionResponse"), role) {
                let at = format!("{at}.functionResponse");
                let f = as_object(response, "contents", &at)?;
                let name = str_field(f, "name", "contents", &at)?;
                let id = f.get("id").and_then(Value::as_str);
                let Some(k) = pending.iter().position(|(i, n)| id.map_or(*n == name, |id| i == id)) else {
                    return Err(bad("contents", at, format!("answers no call of '{name}' before it")));
                };
                let (tool_use_id, _) = pending.remove(k);
                out.push(Part::ToolResult(read_result(f.get("response").unwrap_or(&Value::Null), tool_use_id)));
            } else {
                let key = p.keys().next().map_or("(empty)", String::as_str);
                return Err(bad("contents", at, format!("'{key}' parts are not supported in this role")));
            }
        }
        messages.push(Message { role, content: out });
    }
    Ok(messages)
}

/// A function's response: `{"content": text}` (or `{"error": text}`, an error) as that text,
/// anything else as its JSON.
fn read_result(response: &Value, tool_use_id: String) -> ToolResult {
    let (text, is_error) = match (response.get("content"), response.get("error")) {
        (Some(Value::String(text)), None) => (text.clone(), false),
        (None, Some(Value::String(text))) => (text.clone(), true),
        _ => (response.to_string(), false),
    };
    ToolResult { tool_use_id, content: vec![ResultPart::Text(text)], is_error }
}

// === encoding ===

pub(super) fn unsupported(param: impl Into<String>, reason: &'static str) -> Unsupported {
    Unsupported { param: param.into(), target: TARGET, reason }
}

/// Writes the conversation as `contents`, a turn's messages joined into one.
pub(super) fn write_contents(messages: &[Message]) -> Result<Vec<Value>, Unsupported> {
    let mut contents: Vec<Value> = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
            Role::System => {
                return Err(unsupported(
                    format!("messages[{i}].role"),
                    "Gemini has a system instruction only before the conversation",
                ));
            }
        };
        let mut parts = Vec::with_capacity(message.content.len());
        for (j, part) in message.content.iter().enumerate() {
            let at = format!("messages[{i}].content[{j}]");
            parts.push(match (part, message.role) {
                (Part::Text(text), _) => json!({"text": text}),
                (Part::Image(image), Role::User) => write_image(image, &at)?,
                (Part::ToolUse(call), Role::Assistant) if call.input.is_object() => write_call(call),
                (Part::ToolUse(_), Role::Assistant) => {
                    return Err(unsupported(format!("{at}.input"), "Gemini function arguments are JSON objects"));
                }
                (Part::ToolResult(result), Role::User) => write_result(result, name_of(messages, i, result), &at)?,
                (Part::Image(_), Role::Assistant | Role::System)
                | (Part::ToolUse(_), Role::User | Role::System)
                | (Part::ToolResult(_), Role::Assistant | Role::System) => {
                    return Err(unsupported(at, "this part cannot be in a message of this role"));
                }
            });
        }
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(to) = last["parts"].as_array_mut() {
                    to.extend(parts);
                }
            }
            Some(_) | None => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    Ok(contents)
}

/// The name of the call a result answers: the latest call with its id before message `i`.
fn name_of<'a>(messages: &'a [Message], i: usize, result: &ToolResult) -> Option<&'a str> {
    messages[..i].iter().rev().flat_map(|m| m.content.iter().rev()).find_map(|p| match p {
        Part::ToolUse(call) if call.id == result.tool_use_id => Some(call.name.as_str()),
        _ => None,
    })
}

/// A `functionCall` part, in a request's history or an answer.
pub(super) fn write_call(call: &ToolUse) -> Value {
    json!({"functionCall": {"name": call.name, "args": call.input}})
}

fn write_image(image: &Image, at: &str) -> Result<Value, Unsupported> {
    match image.detail {
        None | Some(ImageDetail::Auto) => (),
        Some(ImageDetail::Low | ImageDetail::High) => {
            return Err(unsupported(format!("{at}.detail"), "Gemini has no image detail setting"));
        }
    }
    match &image.source {
        ImageSource::Base64 { media_type, data } => Ok(json!({"inlineData": {"mimeType": media_type, "data": data}})),
        ImageSource::Url(_) => {
            Err(unsupported(format!("{at}.source"), "Gemini takes images as inline data (or uploaded files), not URLs"))
        }
    }
}

fn write_result(result: &ToolResult, name: Option<&str>, at: &str) -> Result<Value, Unsupported> {
    let Some(name) = name else {
        return Err(unsupported(
            format!("{at}.tool_use_id"),
            "Gemini names the function a result answers, and no call with this id came before it",
        ));
    };
    let mut text = String::new();
    for (k, part) in result.content.iter().enumerate() {
        match part {
            ResultPart::Text(t) => text.push_str(t),
            ResultPart::Image(_) => {
                return Err(unsupported(
                    format!("{at}.content[{k}]"),
                    "Gemini function responses are JSON, not images",
                ));
            }
        }
    }
    let mut response = Map::new();
    response.insert(if result.is_error { "error" } else { "content" }.into(), json!(text));
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}
