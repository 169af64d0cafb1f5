//! Responses API requests → canonical requests.

use serde_json::{Map, Value};

use crate::canonical::{
    Image, ImageDetail, Message, Part, Request, ResponseFormat, ResultPart, Role, Tool, ToolChoice, ToolResult, ToolUse,
};
use crate::chat::RequestError;
use crate::read::{
    as_array, as_object, as_str, bad, boolean, image_from_url, is_unset, number, object, only, opt_str_field, positive,
    str_field, take,
};

/// What `previous_response_id` is answered with: this gateway keeps no response state.
pub const NO_STATE: &str = "previous_response_id is not supported: this gateway keeps no response state";

/// Reads a caller's Responses body into the canonical model. Every parameter is either carried,
/// accepted as meaningless here (`store`, `metadata`, `truncation: "disabled"`, ...), or
/// refused by name: nothing is dropped that would change the answer.
pub fn decode_request(body: &[u8]) -> Result<Request, RequestError> {
    let mut body = object(body)?;
    if take(&mut body, "previous_response_id").is_some() {
        return Err(RequestError { message: NO_STATE.into(), param: Some("previous_response_id") });
    }
    if take(&mut body, "conversation").is_some() {
        let message = "conversation is not supported: this gateway keeps no conversation state".into();
        return Err(RequestError { message, param: Some("conversation") });
    }
    let model = match take(&mut body, "model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => return Err(bad("model", "model", "must be a non-empty string")),
        None => {
            return Err(RequestError { message: "you must provide a model parameter".into(), param: Some("model") });
        }
    };
    // Usage is always asked for: `response.completed` carries it.
    let mut request = Request { model, include_usage: true, ..Request::default() };
    if let Some(v) = take(&mut body, "instructions") {
        let text = as_str(&v, "instructions", "instructions")?;
        if !text.is_empty() {
            request.system.push(text.to_owned());
        }
    }
    match take(&mut body, "input") {
        None => return Err(bad("input", "input", "is required")),
        Some(Value::String(text)) => {
            request.messages.push(Message { role: Role::User, content: vec![Part::Text(text)] });
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                read_item(&mut request, item, i)?;
            }
        }
        Some(_) => return Err(bad("input", "input", "must be a string or an array of items")),
    }
    if request.messages.is_empty() {
        return Err(bad("input", "input", "must hold at least one message"));
    }
    if let Some(tools) = take(&mut body, "tools") {
        for (i, tool) in as_array(&tools, "tools", "tools")?.iter().enumerate() {
            request.tools.push(read_tool(tool, i)?);
        }
    }
    if let Some(choice) = take(&mut body, "tool_choice") {
        request.tool_choice = Some(read_tool_choice(&choice)?);
    }
    if let Some(v) = take(&mut body, "parallel_tool_calls") {
        request.parallel_tool_calls = Some(boolean(&v, "parallel_tool_calls")?);
    }
    if let Some(v) = take(&mut body, "max_output_tokens") {
        request.max_tokens = Some(positive(&v, "max_output_tokens")?);
    }
    if let Some(v) = take(&mut body, "temperature") {
        request.sampling.temperature = Some(number(&v, "temperature")?);
    }
    if let Some(v) = take(&mut body, "top_p") {
        request.sampling.top_p = Some(number(&v, "top_p")?);
    }
    if let Some(v) = take(&mut body, "text") {
        request.response_format = read_text(&v)?;
    }
    if let Some(v) = take(&mut body, "user") {
        request.user_id = Some(as_str(&v, "user", "user")?.to_owned());
    }
    if let Some(v) = take(&mut body, "safety_identifier") {
        let id = as_str(&v, "safety_identifier", "safety_identifier")?.to_owned();
        request.user_id.get_or_insert(id);
    }
    if let Some(v) = take(&mut body, "stream") {
        request.stream = boolean(&v, "stream")?;
    }
    if let Some(v) = take(&mut body, "stream_options") {
        let options = as_object(&v, "stream_options", "stream_options")?;
        only(options, &["include_obfuscation"], "stream_options", "stream_options")?;
    }
    // Accepted, and meaningless here: responses are not stored, so there is nothing to keep
    // (`store`) or to label (`metadata`).
    if let Some(v) = take(&mut body, "store") {
        boolean(&v, "store")?;
    }
    if let Some(v) = take(&mut body, "metadata") {
        as_object(&v, "metadata", "metadata")?;
    }
    if let Some(v) = take(&mut body, "truncation")
        && v != "disabled"
    {
        return Err(bad("truncation", "truncation", "only 'disabled' is supported: the input is never truncated"));
    }
    body.retain(|_, value| !is_unset(value));
    match body.keys().next() {
        None => Ok(request),
        Some(key) => Err(RequestError { message: format!("unsupported parameter: '{key}'"), param: None }),
    }
}

/// Reads one input item into the conversation.
fn read_item(request: &mut Request, item: &Value, i: usize) -> Result<(), RequestError> {
    let path = format!("input[{i}]");
    let m = as_object(item, "input", &path)?;
    let kind = opt_str_field(m, "type", "input", &path)?;
    match kind.as_deref() {
        None | Some("message") => read_message(request, m, &path),
        Some("function_call") => {
            only(m, &["type", "id", "call_id", "name", "arguments", "status"], "input", &path)?;
            let arguments = str_field(m, "arguments", "input", &path)?;
            let input = if arguments.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_str(&arguments)
                    .map_err(|_| bad("input", format_args!("{path}.arguments"), "must be a JSON text"))?
            };
            let call = Part::ToolUse(ToolUse {
                id: str_field(m, "call_id", "input", &path)?,
                name: str_field(m, "name", "input", &path)?,
                input,
            });
            match request.messages.last_mut() {
                Some(last) if last.role == Role::Assistant => last.content.push(call),
                Some(_) | None => request.messages.push(Message { role: Role::Assistant, content: vec![call] }),
            }
            Ok(())
        }
        Some("function_call_output") => {
            only(m, &["type", "id", "call_id", "output", "status"], "input", &path)?;
            let content = match m.get("output") {
                Some(Value::String(s)) => vec![ResultPart::Text(s.clone())],
                Some(Value::Array(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (j, part) in parts.iter().enumerate() {
                        let at = format!("{path}.output[{j}]");
                        out.push(match read_part(part, Role::User, &at)? {
                            Part::Text(t) => ResultPart::Text(t),
                            Part::Image(image) => ResultPart::Image(image),
                            Part::ToolUse(_) | Part::ToolResult(_) => {
                                return Err(bad("input", at, "only text and image parts are supported here"));
                            }
                        });
                    }
                    out
                }
                _ => return Err(bad("input", format_args!("{path}.output"), "must be a string or an array of parts")),
            };
            let result = Part::ToolResult(ToolResult {
                tool_use_id: str_field(m, "call_id", "input", &path)?,
                content,
                is_error: false,
            });
            // Consecutive results answer one assistant turn: one user message holds them.
            match request.messages.last_mut() {
                Some(last) if last.role == Role::User && matches!(last.content.last(), Some(Part::ToolResult(_))) => {
                    last.content.push(result);
                }
                Some(_) | None => request.messages.push(Message { role: Role::User, content: vec![result] }),
            }
            Ok(())
        }
        Some(other) => Err(bad("input", format_args!("{path}.type"), format!("'{other}' items are not supported"))),
    }
}

fn read_message(request: &mut Request, m: &Map<String, Value>, path: &str) -> Result<(), RequestError> {
    only(m, &["type", "role", "content", "id", "status"], "input", path)?;
    let role = match str_field(m, "role", "input", path)?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" | "developer" => Role::System,
        other => return Err(bad("input", format_args!("{path}.role"), format!("unsupported role '{other}'"))),
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                out.push(read_part(part, role, &format!("{path}.content[{j}]"))?);
            }
            out
        }
        _ => return Err(bad("input", format_args!("{path}.content"), "must be a string or an array of parts")),
    };
    if role == Role::System && request.messages.is_empty() {
        for part in content {
            if let Part::Text(text) = part {
                request.system.push(text);
            }
        }
        return Ok(());
    }
    request.messages.push(Message { role, content });
    Ok(())
}

/// One content part: text of any kind, or (from the caller) an image.
fn read_part(part: &Value, role: Role, at: &str) -> Result<Part, RequestError> {
    let p = as_object(part, "input", at)?;
    match (p.get("type").and_then(Value::as_str), role) {
        (Some("input_text"), Role::User | Role::System) | (Some("output_text"), Role::Assistant) => {
            only(p, &["type", "text", "annotations", "logprobs"], "input", at)?;
            Ok(Part::Text(str_field(p, "text", "input", at)?))
        }
        (Some("refusal"), Role::Assistant) => {
            only(p, &["type", "refusal"], "input", at)?;
            Ok(Part::Text(str_field(p, "refusal", "input", at)?))
        }
        (Some("input_image"), Role::User) => {
            only(p, &["type", "image_url", "detail"], "input", at)?;
            let Some(url) = opt_str_field(p, "image_url", "input", at)? else {
                return Err(bad("input", format_args!("{at}.image_url"), "is required (file ids are not supported)"));
            };
            let detail = match opt_str_field(p, "detail", "input", at)?.as_deref() {
                None => None,
                Some("auto") => Some(ImageDetail::Auto),
                Some("low") => Some(ImageDetail::Low),
                Some("high") => Some(ImageDetail::High),
                Some(other) => return Err(bad("input", format_args!("{at}.detail"), format!("unknown '{other}'"))),
            };
            Ok(Part::Image(Image { source: image_from_url(&url), detail }))
        }
        (Some(kind), _) => Err(bad("input", at, format!("'{kind}' parts are not supported here"))),
        (None, _) => Err(bad("input", format_args!("{at}.type"), "is required")),
    }
}

fn read_tool(tool: &Value, i: usize) -> Result<Tool, RequestError> {
    let path = format!("tools[{i}]");
    let t = as_object(tool, "tools", &path)?;
    match t.get("type").and_then(Value::as_str) {
        Some("function") => (),
        Some(other) => {
            let what = format!("'{other}' tools are not supported through this gateway (only 'function')");
            return Err(bad("tools", format_args!("{path}.type"), what));
        }
        None => return Err(bad("tools", format_args!("{path}.type"), "is required")),
    }
    only(t, &["type", "name", "description", "parameters", "strict"], "tools", &path)?;
    crate::openai_codec::read_function(t, &path)
}

fn read_tool_choice(choice: &Value) -> Result<ToolChoice, RequestError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Any),
            other => Err(bad("tool_choice", "tool_choice", format!("unknown '{other}'"))),
        },
        Value::Object(o) => {
            match o.get("type").and_then(Value::as_str) {
                Some("function") => (),
                Some(other) => {
                    return Err(bad("tool_choice", "tool_choice.type", format!("'{other}' is not supported")));
                }
                None => return Err(bad("tool_choice", "tool_choice.type", "is required")),
            }
            only(o, &["type", "name"], "tool_choice", "tool_choice")?;
            Ok(ToolChoice::Tool { name: str_field(o, "name", "tool_choice", "tool_choice")? })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => {
            Err(bad("tool_choice", "tool_choice", "must be a string or an object"))
        }
    }
}

/// `text`: its `format` (plain text is no format).
fn read_text(text: &Value) -> Result<Option<ResponseFormat>, RequestError> {
    let t = as_object(text, "text", "text")?;
    only(t, &["format"], "text", "text")?;
    let Some(format) = t.get("format").filter(|v| !v.is_null()) else { return Ok(None) };
    let f = as_object(format, "text", "text.format")?;
    match f.get("type").and_then(Value::as_str) {
        Some("text") => {
            only(f, &["type"], "text", "text.format")?;
            Ok(None)
        }
        Some("json_object") => {
            only(f, &["type"], "text", "text.format")?;
            Ok(Some(ResponseFormat::JsonObject))
        }
        Some("json_schema") => {
            only(f, &["type", "name", "description", "schema", "strict"], "text", "text.format")?;
            let schema = match f.get("schema") {
                Some(schema @ Value::Object(_)) => schema.clone(),
                _ => return Err(bad("text", "text.format.schema", "must be a JSON schema object")),
            };
            Ok(Some(ResponseFormat::JsonSchema {
                name: str_field(f, "name", "text", "text.format")?,
                description: opt_str_field(f, "description", "text", "text.format")?,
                schema,
                strict: f.get("strict").filter(|v| !v.is_null()).map(|v| boolean(v, "text")).transpose()?,
            }))
        }
        Some(other) => Err(bad("text", "text.format.type", format!("unknown '{other}'"))),
        None => Err(bad("text", "text.format.type", "is required")),
    }
}
