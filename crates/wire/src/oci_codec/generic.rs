//! OCI's `GENERIC` `chatRequest` ⇄ canonical requests: `messages` with roles and typed
//! content, `toolCalls`, `tools`, `toolChoice`, `isParallelToolCalls` and `responseFormat`.

use serde_json::{Map, Value, json};

use super::{Format, read_common, unsupported, write_common};
use crate::canonical::{
    Image, ImageDetail, Message, Part, Request, ResponseFormat, ResultPart, Role, Tool, ToolChoice, ToolResult,
    ToolUse, Unsupported,
};
use crate::chat::RequestError;
use crate::read::{as_array, as_object, bad, image_from_url, image_url, opt_str_field, str_field, take};

const AT: &str = "chatRequest";

// === encoding ===

/// Writes a GENERIC `chatRequest`.
pub(super) fn encode(request: &Request) -> Result<Value, Unsupported> {
    if request.prefill {
        return Err(unsupported(
            format!("messages[{}]", request.messages.len().saturating_sub(1)),
            "OCI Generative AI cannot continue a final assistant message (prefill)",
        ));
    }
    let mut body = Map::new();
    body.insert("apiFormat".into(), json!(Format::Generic.name()));
    let mut messages: Vec<Value> =
        request.system.iter().map(|t| json!({"role": "SYSTEM", "content": [text(t)]})).collect();
    for (i, message) in request.messages.iter().enumerate() {
        write_message(message, i, &mut messages)?;
    }
    body.insert("messages".into(), Value::Array(messages));
    write_tools(request, &mut body)?;
    match &request.response_format {
        None => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("responseFormat".into(), json!({"type": "JSON_OBJECT"}));
        }
        Some(ResponseFormat::JsonSchema { name, description, schema, strict }) => {
            let mut s = Map::new();
            s.insert("name".into(), json!(name));
            if let Some(d) = description {
                s.insert("description".into(), json!(d));
            }
            s.insert("schema".into(), schema.clone());
            if let Some(strict) = strict {
                s.insert("isStrict".into(), json!(strict));
            }
            body.insert("responseFormat".into(), json!({"type": "JSON_SCHEMA", "jsonSchema": s}));
        }
    }
    write_common(request, Format::Generic, &mut body)?;
    Ok(Value::Object(body))
}

fn text(t: &str) -> Value {
    json!({"type": "TEXT", "text": t})
}

/// One canonical message as OCI messages: a user message's tool results become `TOOL`
/// messages, in their place among its other parts.
fn write_message(message: &Message, i: usize, out: &mut Vec<Value>) -> Result<(), Unsupported> {
    let role = match message.role {
        Role::System => "SYSTEM",
        Role::User => "USER",
        Role::Assistant => "ASSISTANT",
    };
    let mut content = Vec::new();
    let mut calls = Vec::new();
    for (j, part) in message.content.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match (part, message.role) {
            (Part::Text(t), _) => content.push(text(t)),
            (Part::Image(image), Role::User) => content.push(write_image(image)),
            (Part::ToolUse(call), Role::Assistant) => calls.push(json!({
                "id": call.id, "type": "FUNCTION", "name": call.name, "arguments": call.input.to_string(),
            })),
            (Part::ToolResult(result), Role::User) => {
                if !content.is_empty() {
                    out.push(json!({"role": role, "content": std::mem::take(&mut content)}));
                }
                out.push(write_result(result, &at)?);
            }
            (Part::Image(_), Role::Assistant | Role::System)
            | (Part::ToolUse(_), Role::User | Role::System)
            | (Part::ToolResult(_), Role::Assistant | Role::System) => {
                return Err(unsupported(at, "this part cannot be in a message of this role"));
            }
        }
    }
    let only_results = message.role == Role::User
        && content.is_empty()
        && message.content.iter().any(|p| matches!(p, Part::ToolResult(_)));
    if only_results {
        return Ok(());
    }
    let mut m = Map::new();
    m.insert("role".into(), json!(role));
    m.insert("content".into(), Value::Array(content));
    if !calls.is_empty() {
        m.insert("toolCalls".into(), Value::Array(calls));
    }
    out.push(Value::Object(m));
    Ok(())
}

fn write_image(image: &Image) -> Value {
    let mut url = Map::new();
    url.insert("url".into(), json!(image_url(image)));
    match image.detail {
        None => {}
        Some(ImageDetail::Auto) => {
            url.insert("detail".into(), json!("AUTO"));
        }
        Some(ImageDetail::Low) => {
            url.insert("detail".into(), json!("LOW"));
        }
        Some(ImageDetail::High) => {
            url.insert("detail".into(), json!("HIGH"));
        }
    }
    json!({"type": "IMAGE", "imageUrl": url})
}

fn write_result(result: &ToolResult, at: &str) -> Result<Value, Unsupported> {
    if result.is_error {
        return Err(unsupported(format!("{at}.is_error"), "OCI tool messages cannot mark a result as an error"));
    }
    let mut content = Vec::with_capacity(result.content.len());
    for (k, part) in result.content.iter().enumerate() {
        match part {
            ResultPart::Text(t) => content.push(text(t)),
            ResultPart::Image(_) => {
                return Err(unsupported(format!("{at}.content[{k}]"), "OCI tool messages hold text, not images"));
            }
        }
    }
    Ok(json!({"role": "TOOL", "toolCallId": result.tool_use_id, "content": content}))
}

fn write_tools(request: &Request, body: &mut Map<String, Value>) -> Result<(), Unsupported> {
    let mut tools = Vec::with_capacity(request.tools.len());
    for (i, tool) in request.tools.iter().enumerate() {
        if tool.strict == Some(true) {
            return Err(unsupported(format!("tools[{i}].strict"), "OCI function definitions have no strict mode"));
        }
        let mut t = Map::new();
        t.insert("type".into(), json!("FUNCTION"));
        t.insert("name".into(), json!(tool.name));
        if let Some(d) = &tool.description {
            t.insert("description".into(), json!(d));
        }
        t.insert("parameters".into(), tool.input_schema.clone());
        tools.push(Value::Object(t));
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    let choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "AUTO"})),
        Some(ToolChoice::None) => Some(json!({"type": "NONE"})),
        Some(ToolChoice::Any) => Some(json!({"type": "REQUIRED"})),
        Some(ToolChoice::Tool { name }) => Some(json!({"type": "FUNCTION", "name": name})),
    };
    if let Some(choice) = choice {
        body.insert("toolChoice".into(), choice);
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("isParallelToolCalls".into(), json!(parallel));
    }
    Ok(())
}

// === decoding ===

/// Reads a GENERIC `chatRequest` (its `apiFormat` already taken). Leading `SYSTEM` (or
/// `DEVELOPER`) messages are the system prompt; `TOOL` messages are tool results in a user
/// message, consecutive ones in one.
pub(super) fn decode(mut chat: Map<String, Value>) -> Result<Request, RequestError> {
    let mut request = Request::default();
    let Some(messages) = take(&mut chat, "messages") else {
        return Err(bad(AT, "chatRequest.messages", "is required"));
    };
    let messages = as_array(&messages, AT, "chatRequest.messages")?;
    if messages.is_empty() {
        return Err(bad(AT, "chatRequest.messages", "must contain at least one message"));
    }
    for (i, message) in messages.iter().enumerate() {
        read_message(message, i, &mut request)?;
    }
    if let Some(tools) = take(&mut chat, "tools") {
        for (i, tool) in as_array(&tools, AT, "chatRequest.tools")?.iter().enumerate() {
            let at = format!("chatRequest.tools[{i}]");
            let t = as_object(tool, AT, &at)?;
            if t.get("type").and_then(Value::as_str) != Some("FUNCTION") {
                return Err(bad(AT, format_args!("{at}.type"), "must be FUNCTION"));
            }
            let input_schema = match t.get("parameters") {
                None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                Some(schema @ Value::Object(_)) => schema.clone(),
                Some(_) => return Err(bad(AT, format_args!("{at}.parameters"), "must be a schema object")),
            };
            request.tools.push(Tool {
                name: str_field(t, "name", AT, &at)?,
                description: opt_str_field(t, "description", AT, &at)?,
                input_schema,
                strict: None,
            });
        }
    }
    if let Some(choice) = take(&mut chat, "toolChoice") {
        let c = as_object(&choice, AT, "chatRequest.toolChoice")?;
        request.tool_choice = Some(match c.get("type").and_then(Value::as_str) {
            Some("AUTO") => ToolChoice::Auto,
            Some("NONE") => ToolChoice::None,
            Some("REQUIRED") => ToolChoice::Any,
            Some("FUNCTION") => ToolChoice::Tool { name: str_field(c, "name", AT, "chatRequest.toolChoice")? },
            _ => return Err(bad(AT, "chatRequest.toolChoice.type", "must be AUTO, NONE, REQUIRED or FUNCTION")),
        });
    }
    if let Some(v) = take(&mut chat, "isParallelToolCalls") {
        request.parallel_tool_calls =
            Some(v.as_bool().ok_or_else(|| bad(AT, "chatRequest.isParallelToolCalls", "must be a boolean"))?);
    }
    if let Some(format) = take(&mut chat, "responseFormat") {
        request.response_format = read_format(&format)?;
    }
    read_common(&mut chat, &mut request, "stop")?;
    Ok(request)
}

fn read_format(format: &Value) -> Result<Option<ResponseFormat>, RequestError> {
    const PATH: &str = "chatRequest.responseFormat";
    let f = as_object(format, AT, PATH)?;
    match f.get("type").and_then(Value::as_str) {
        Some("TEXT") => Ok(None),
        Some("JSON_OBJECT") => Ok(Some(ResponseFormat::JsonObject)),
        Some("JSON_SCHEMA") => {
            let s = as_object(f.get("jsonSchema").unwrap_or(&Value::Null), AT, format_args!("{PATH}.jsonSchema"))?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: str_field(s, "name", AT, format_args!("{PATH}.jsonSchema"))?,
                description: opt_str_field(s, "description", AT, format_args!("{PATH}.jsonSchema"))?,
                schema: s.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: s.get("isStrict").and_then(Value::as_bool),
            }))
        }
        _ => Err(bad(AT, format_args!("{PATH}.type"), "must be TEXT, JSON_OBJECT or JSON_SCHEMA")),
    }
}

fn read_message(message: &Value, i: usize, request: &mut Request) -> Result<(), RequestError> {
    let path = format!("chatRequest.messages[{i}]");
    let m = as_object(message, AT, &path)?;
    let role = str_field(m, "role", AT, &path)?;
    let content = read_content(m.get("content"), &path, role == "USER")?;
    match role.as_str() {
        "SYSTEM" | "DEVELOPER" => {
            let texts = content.into_iter().map(|p| match p {
                Part::Text(t) => Ok(t),
                _ => Err(bad(AT, format_args!("{path}.content"), "a system message holds text only")),
            });
            let text = texts.collect::<Result<Vec<_>, _>>()?.join("");
            if request.messages.is_empty() {
                request.system.push(text);
            } else {
                request.messages.push(Message { role: Role::System, content: vec![Part::Text(text)] });
            }
        }
        // A user turn after tool results is one user message with them (as encoding splits it).
        "USER" => match request.messages.last_mut() {
            Some(last) if last.role == Role::User && last.content.iter().all(|p| matches!(p, Part::ToolResult(_))) => {
                last.content.extend(content);
            }
            _ => request.messages.push(Message { role: Role::User, content }),
        },
        "ASSISTANT" => {
            let mut content = content;
            if let Some(calls) = m.get("toolCalls").filter(|v| !v.is_null()) {
                for (j, call) in as_array(calls, AT, format_args!("{path}.toolCalls"))?.iter().enumerate() {
                    let at = format!("{path}.toolCalls[{j}]");
                    let c = as_object(call, AT, &at)?;
                    let arguments = opt_str_field(c, "arguments", AT, &at)?.unwrap_or_else(|| "{}".into());
                    let input: Value = serde_json::from_str(&arguments)
                        .map_err(|_| bad(AT, format_args!("{at}.arguments"), "must be a JSON object"))?;
                    content.push(Part::ToolUse(ToolUse {
                        id: str_field(c, "id", AT, &at)?,
                        name: str_field(c, "name", AT, &at)?,
                        input,
                    }));
                }
            }
            request.messages.push(Message { role: Role::Assistant, content });
        }
        "TOOL" => {
            let tool_use_id = str_field(m, "toolCallId", AT, &path)?;
            let content = content
                .into_iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(ResultPart::Text(t)),
                    _ => None,
                })
                .collect();
            let result = Part::ToolResult(ToolResult { tool_use_id, content, is_error: false });
            match request.messages.last_mut() {
                Some(last)
                    if last.role == Role::User && last.content.iter().all(|p| matches!(p, Part::ToolResult(_))) =>
                {
                    last.content.push(result);
                }
                _ => request.messages.push(Message { role: Role::User, content: vec![result] }),
            }
        }
        other => return Err(bad(AT, format_args!("{path}.role"), format_args!("unsupported role '{other}'"))),
    }
    Ok(())
}

fn read_content(content: Option<&Value>, path: &str, images: bool) -> Result<Vec<Part>, RequestError> {
    let Some(content) = content.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (j, part) in as_array(content, AT, format_args!("{path}.content"))?.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        let p = as_object(part, AT, &at)?;
        match p.get("type").and_then(Value::as_str) {
            Some("TEXT") => out.push(Part::Text(str_field(p, "text", AT, &at)?)),
            Some("IMAGE") if images => {
                let u = as_object(p.get("imageUrl").unwrap_or(&Value::Null), AT, format_args!("{at}.imageUrl"))?;
                let url = str_field(u, "url", AT, format_args!("{at}.imageUrl"))?;
                let detail = match u.get("detail").and_then(Value::as_str) {
                    None => None,
                    Some("AUTO") => Some(ImageDetail::Auto),
                    Some("LOW") => Some(ImageDetail::Low),
                    Some("HIGH") => Some(ImageDetail::High),
                    Some(_) => return Err(bad(AT, format_args!("{at}.imageUrl.detail"), "must be AUTO, LOW or HIGH")),
                };
                out.push(Part::Image(Image { source: image_from_url(&url), detail }));
            }
            _ => return Err(bad(AT, format_args!("{at}.type"), "is not supported in this role")),
        }
    }
    Ok(out)
}
