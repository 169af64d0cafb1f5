//! Converse messages and their content blocks (`text`, `image`, `toolUse`, `toolResult`) ⇄
//! canonical messages. A Converse block is an object with one key, which names its kind.

use serde_json::{Map, Value, json};

use super::request::TARGET;
use crate::canonical::{
    Image, ImageDetail, ImageSource, Message, Part, ResultPart, Role, ToolResult, ToolUse, Unsupported,
};
use crate::chat::RequestError;
use crate::read::{as_array, as_object, bad, is_unset, only, str_field};

/// The image formats Converse takes, each `image/<format>`.
const FORMATS: [&str; 4] = ["png", "jpeg", "gif", "webp"];

/// The one kind-naming key of a block, and its value.
pub(super) fn kind<'a>(
    block: &'a Map<String, Value>,
    param: &'static str,
    at: &str,
) -> Result<(&'a str, &'a Value), RequestError> {
    let mut set = block.iter().filter(|(_, v)| !v.is_null());
    match (set.next(), set.next()) {
        (Some((key, value)), None) => Ok((key.as_str(), value)),
        (None, _) => Err(bad(param, at, "must hold one content block")),
        (Some(_), Some(_)) => Err(bad(param, at, "must hold exactly one content block")),
    }
}

/// Reads one message of a Converse request.
pub(super) fn read_message(message: &Value, i: usize) -> Result<Message, RequestError> {
    let path = format!("messages[{i}]");
    let m = as_object(message, "messages", &path)?;
    only(m, &["role", "content"], "messages", &path)?;
    let role = match str_field(m, "role", "messages", &path)?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => return Err(bad("messages", format_args!("{path}.role"), format!("unsupported role '{other}'"))),
    };
    let Some(blocks) = m.get("content").filter(|v| !v.is_null()) else {
        return Err(bad("messages", format_args!("{path}.content"), "is required"));
    };
    let blocks = as_array(blocks, "messages", format_args!("{path}.content"))?;
    let mut content = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.iter().enumerate() {
        if let Some(part) = read_block(block, role, &format!("{path}.content[{j}]"))? {
            content.push(part);
        }
    }
    Ok(Message { role, content })
}

/// One content block; a `cachePoint` is read and yields nothing.
fn read_block(block: &Value, role: Role, at: &str) -> Result<Option<Part>, RequestError> {
    let b = as_object(block, "messages", at)?;
    let (key, value) = kind(b, "messages", at)?;
    let at = format!("{at}.{key}");
    let part = match (key, role) {
        ("text", _) => match value {
            Value::String(text) => Part::Text(text.clone()),
            _ => return Err(bad("messages", at, "must be a string")),
        },
        ("cachePoint", _) => return Ok(None),
        ("image", Role::User) => Part::Image(read_image(value, &at)?),
        ("toolUse", Role::Assistant) => {
            let t = as_object(value, "messages", &at)?;
            only(t, &["toolUseId", "name", "input"], "messages", &at)?;
            let input = match t.get("input") {
                Some(input @ Value::Object(_)) => input.clone(),
                _ => return Err(bad("messages", format_args!("{at}.input"), "must be an object")),
            };
            Part::ToolUse(ToolUse {
                id: str_field(t, "toolUseId", "messages", &at)?,
                name: str_field(t, "name", "messages", &at)?,
                input,
            })
        }
        ("toolResult", Role::User) => Part::ToolResult(read_tool_result(value, &at)?),
        ("image" | "toolUse" | "toolResult", _) => {
            return Err(bad("messages", at, format!("'{key}' blocks are not allowed in this role")));
        }
        (other, _) => return Err(bad("messages", at, format!("'{other}' blocks are not supported"))),
    };
    Ok(Some(part))
}

fn read_image(image: &Value, at: &str) -> Result<Image, RequestError> {
    let i = as_object(image, "messages", at)?;
    only(i, &["format", "source"], "messages", at)?;
    let format = str_field(i, "format", "messages", at)?;
    if !FORMATS.contains(&format.as_str()) {
        return Err(bad("messages", format_args!("{at}.format"), "must be 'png', 'jpeg', 'gif' or 'webp'"));
    }
    let at = format!("{at}.source");
    let s = as_object(i.get("source").unwrap_or(&Value::Null), "messages", &at)?;
    let (key, bytes) = kind(s, "messages", &at)?;
    match (key, bytes) {
        ("bytes", Value::String(data)) => Ok(Image {
            source: ImageSource::Base64 { media_type: format!("image/{format}"), data: data.clone() },
            detail: None,
        }),
        ("bytes", _) => Err(bad("messages", format_args!("{at}.bytes"), "must be a base64 string")),
        (other, _) => Err(bad("messages", format_args!("{at}.{other}"), "only inline bytes are supported")),
    }
}

fn read_tool_result(result: &Value, at: &str) -> Result<ToolResult, RequestError> {
    let r = as_object(result, "messages", at)?;
    only(r, &["toolUseId", "content", "status"], "messages", at)?;
    let mut content = Vec::new();
    if let Some(parts) = r.get("content").filter(|v| !v.is_null()) {
        for (k, part) in as_array(parts, "messages", format_args!("{at}.content"))?.iter().enumerate() {
            let at = format!("{at}.content[{k}]");
            let p = as_object(part, "messages", &at)?;
            content.push(match kind(p, "messages", &at)? {
                ("text", Value::String(text)) => ResultPart::Text(text.clone()),
                // A JSON result is read as its text: the model has no JSON result part.
                ("json", json) => ResultPart::Text(json.to_string()),
                ("image", image) => ResultPart::Image(read_image(image, &format!("{at}.image"))?),
                ("text", _) => return Err(bad("messages", format_args!("{at}.text"), "must be a string")),
                (other, _) => return Err(bad("messages", at, format!("'{other}' results are not supported"))),
            });
        }
    }
    let is_error = match r.get("status").filter(|v| !is_unset(v)) {
        None => false,
        Some(Value::String(s)) if s == "success" => false,
        Some(Value::String(s)) if s == "error" => true,
        Some(_) => return Err(bad("messages", format_args!("{at}.status"), "must be 'success' or 'error'")),
    };
    Ok(ToolResult { tool_use_id: str_field(r, "toolUseId", "messages", at)?, content, is_error })
}

// === encoding ===

pub(super) fn unsupported(param: impl Into<String>, reason: &'static str) -> Unsupported {
    Unsupported { param: param.into(), target: TARGET, reason }
}

/// Writes one message of a Converse request.
pub(super) fn write_message(message: &Message, i: usize) -> Result<Value, Unsupported> {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::System => {
            return Err(unsupported(
                format!("messages[{i}].role"),
                "Converse has system prompts only before the conversation",
            ));
        }
    };
    let mut blocks = Vec::with_capacity(message.content.len());
    for (j, part) in message.content.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        let block = match (part, message.role) {
            (Part::Text(text), _) => json!({"text": text}),
            (Part::Image(image), Role::User) => write_image(image, &at)?,
            (Part::ToolUse(call), Role::Assistant) if call.input.is_object() => write_tool_use(call),
            (Part::ToolUse(_), Role::Assistant) => {
                return Err(unsupported(format!("{at}.input"), "Converse tool inputs are JSON objects"));
            }
            (Part::ToolResult(result), Role::User) => write_tool_result(result, &at)?,
            (Part::Image(_), Role::Assistant | Role::System)
            | (Part::ToolUse(_), Role::User | Role::System)
            | (Part::ToolResult(_), Role::Assistant | Role::System) => {
                return Err(unsupported(at, "this part cannot be in a message of this role"));
            }
        };
        blocks.push(block);
    }
    Ok(json!({"role": role, "content": blocks}))
}

/// A `toolUse` block, in a request's history or an answer.
pub(super) fn write_tool_use(call: &ToolUse) -> Value {
    json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.input}})
}

fn write_image(image: &Image, at: &str) -> Result<Value, Unsupported> {
    match image.detail {
        None | Some(ImageDetail::Auto) => (),
        Some(ImageDetail::Low | ImageDetail::High) => {
            return Err(unsupported(format!("{at}.detail"), "Converse has no image detail setting"));
        }
    }
    match &image.source {
        ImageSource::Base64 { media_type, data } => {
            let format = media_type.strip_prefix("image/").unwrap_or(media_type).to_ascii_lowercase();
            let format = if format == "jpg" { "jpeg".to_owned() } else { format };
            if !FORMATS.contains(&format.as_str()) {
                return Err(unsupported(format!("{at}.source"), "Converse takes png, jpeg, gif and webp images"));
            }
            Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
        }
        ImageSource::Url(_) => Err(unsupported(
            format!("{at}.source"),
            "Converse takes images as inline bytes (or S3 locations), not URLs",
        )),
    }
}

fn write_tool_result(result: &ToolResult, at: &str) -> Result<Value, Unsupported> {
    let mut content = Vec::with_capacity(result.content.len());
    for (k, part) in result.content.iter().enumerate() {
        content.push(match part {
            ResultPart::Text(text) => json!({"text": text}),
            ResultPart::Image(image) => write_image(image, &format!("{at}.content[{k}]"))?,
        });
    }
    let mut block = Map::new();
    block.insert("toolUseId".into(), json!(result.tool_use_id));
    block.insert("content".into(), Value::Array(content));
    if result.is_error {
        block.insert("status".into(), json!("error"));
    }
    Ok(json!({"toolResult": block}))
}
