//! Anthropic Messages requests ⇄ canonical requests.

use serde_json::{Map, Value, json};

use crate::canonical::{
    Extra, Image, ImageDetail, ImageSource, Message, Part, Protocol, Request, ResultPart, Role, Tool, ToolChoice,
    ToolResult, ToolUse, Unsupported,
};
use crate::chat::RequestError;
use crate::read::{
    as_array, as_object, bad, boolean, count, is_unset, number, object, only, opt_str_field, positive, str_field,
    strings, take,
};

const TARGET: Protocol = Protocol::Anthropic;

/// Reads a caller's Messages body into the canonical model. A final assistant message is a
/// prefill. Parameters the model has no place for are kept in [`Request::extra`].
pub fn decode_request(body: &[u8]) -> Result<Request, RequestError> {
    let mut body = object(body)?;
    let mut request = Request { include_usage: true, ..Request::default() };
    request.model = match take(&mut body, "model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => return Err(bad("model", "model", "must be a non-empty string")),
        None => return Err(bad("model", "model", "Field required")),
    };
    request.max_tokens = match take(&mut body, "max_tokens") {
        Some(v) => Some(positive(&v, "max_tokens")?),
        None => return Err(bad("max_tokens", "max_tokens", "Field required")),
    };
    let Some(messages) = take(&mut body, "messages") else {
        return Err(bad("messages", "messages", "Field required"));
    };
    let messages = as_array(&messages, "messages", "messages")?;
    if messages.is_empty() {
        return Err(bad("messages", "messages", "must contain at least one message"));
    }
    for (i, message) in messages.iter().enumerate() {
        request.messages.push(read_message(message, i)?);
    }
    request.prefill = request.messages.last().is_some_and(|m| m.role == Role::Assistant);
    if let Some(system) = take(&mut body, "system") {
        request.system = read_system(&system)?;
    }
    if let Some(tools) = take(&mut body, "tools") {
        for (i, tool) in as_array(&tools, "tools", "tools")?.iter().enumerate() {
            request.tools.push(read_tool(tool, i)?);
        }
    }
    if let Some(choice) = take(&mut body, "tool_choice") {
        read_tool_choice(&mut request, &choice)?;
    }
    if let Some(v) = take(&mut body, "stop_sequences") {
        request.stop = strings(&v, "stop_sequences")?;
    }
    if let Some(v) = take(&mut body, "temperature") {
        request.sampling.temperature = Some(number(&v, "temperature")?);
    }
    if let Some(v) = take(&mut body, "top_p") {
        request.sampling.top_p = Some(number(&v, "top_p")?);
    }
    if let Some(v) = take(&mut body, "top_k") {
        request.sampling.top_k = Some(count(&v, "top_k")?);
    }
    if let Some(v) = take(&mut body, "metadata") {
        let m = as_object(&v, "metadata", "metadata")?;
        only(m, &["user_id"], "metadata", "metadata")?;
        request.user_id = opt_str_field(m, "user_id", "metadata", "metadata")?;
    }
    if let Some(v) = take(&mut body, "stream") {
        request.stream = boolean(&v, "stream")?;
    }
    body.retain(|key, value| {
        !(is_unset(value) || matches!((key.as_str(), &*value), ("thinking", v) if v["type"] == "disabled"))
    });
    if !body.is_empty() {
        request.extra = Some(Extra { protocol: TARGET, fields: body });
    }
    Ok(request)
}

fn read_system(system: &Value) -> Result<Vec<String>, RequestError> {
    match system {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let at = format!("system[{i}]");
                let b = as_object(block, "system", &at)?;
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        only(b, &["type", "text", "cache_control", "citations"], "system", &at)?;
                        str_field(b, "text", "system", &at)
                    }
                    _ => Err(bad("system", format_args!("{at}.type"), "must be 'text'")),
                }
            })
            .collect(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => {
            Err(bad("system", "system", "must be a string or an array of text blocks"))
        }
    }
}

fn read_message(message: &Value, i: usize) -> Result<Message, RequestError> {
    let path = format!("messages[{i}]");
    let m = as_object(message, "messages", &path)?;
    only(m, &["role", "content"], "messages", &path)?;
    let role = match str_field(m, "role", "messages", &path)?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => return Err(bad("messages", format_args!("{path}.role"), format!("unsupported role '{other}'"))),
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                parts.push(read_block(block, role, &format!("{path}.content[{j}]"))?);
            }
            parts
        }
        None | Some(Value::Null) => return Err(bad("messages", format_args!("{path}.content"), "Field required")),
        Some(_) => return Err(bad("messages", format_args!("{path}.content"), "must be a string or an array")),
    };
    Ok(Message { role, content })
}

fn read_block(block: &Value, role: Role, at: &str) -> Result<Part, RequestError> {
    let b = as_object(block, "messages", at)?;
    let kind = b.get("type").and_then(Value::as_str);
    match (kind, role) {
        (Some("text"), _) => {
            only(b, &["type", "text", "cache_control", "citations"], "messages", at)?;
            Ok(Part::Text(str_field(b, "text", "messages", at)?))
        }
        (Some("image"), Role::User) => Ok(Part::Image(read_image(b, at)?)),
        (Some("tool_use"), Role::Assistant) => {
            only(b, &["type", "id", "name", "input", "cache_control"], "messages", at)?;
            let input = match b.get("input") {
                Some(input @ Value::Object(_)) => input.clone(),
                _ => return Err(bad("messages", format_args!("{at}.input"), "must be an object")),
            };
            Ok(Part::ToolUse(ToolUse {
                id: str_field(b, "id", "messages", at)?,
                name: str_field(b, "name", "messages", at)?,
                input,
            }))
        }
        (Some("tool_result"), Role::User) => {
            only(b, &["type", "tool_use_id", "content", "is_error", "cache_control"], "messages", at)?;
            let content = match b.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => vec![ResultPart::Text(s.clone())],
                Some(Value::Array(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (k, part) in parts.iter().enumerate() {
                        let at = format!("{at}.content[{k}]");
                        let p = as_object(part, "messages", &at)?;
                        match p.get("type").and_then(Value::as_str) {
                            Some("text") => {
                                only(p, &["type", "text", "cache_control", "citations"], "messages", &at)?;
                                out.push(ResultPart::Text(str_field(p, "text", "messages", &at)?));
                            }
                            Some("image") => out.push(ResultPart::Image(read_image(p, &at)?)),
                            _ => return Err(bad("messages", at, "only text and image blocks are supported here")),
                        }
                    }
                    out
                }
                Some(_) => return Err(bad("messages", format_args!("{at}.content"), "must be a string or an array")),
            };
            let is_error = match b.get("is_error") {
                None | Some(Value::Null) => false,
                Some(v) => boolean(v, "messages")?,
            };
            Ok(Part::ToolResult(ToolResult {
                tool_use_id: str_field(b, "tool_use_id", "messages", at)?,
                content,
                is_error,
            }))
        }
        (Some(kind @ ("image" | "tool_result" | "tool_use")), _) => {
            Err(bad("messages", at, format!("'{kind}' blocks are not allowed in this role")))
        }
        (Some(other), _) => Err(bad("messages", at, format!("'{other}' blocks are not supported"))),
        (None, _) => Err(bad("messages", format_args!("{at}.type"), "Field required")),
    }
}

fn read_image(b: &Map<String, Value>, at: &str) -> Result<Image, RequestError> {
    only(b, &["type", "source", "cache_control"], "messages", at)?;
    let at = format!("{at}.source");
    let s = as_object(b.get("source").unwrap_or(&Value::Null), "messages", &at)?;
    let source = match s.get("type").and_then(Value::as_str) {
        Some("base64") => {
            only(s, &["type", "media_type", "data"], "messages", &at)?;
            ImageSource::Base64 {
                media_type: str_field(s, "media_type", "messages", &at)?,
                data: str_field(s, "data", "messages", &at)?,
            }
        }
        Some("url") => {
            only(s, &["type", "url"], "messages", &at)?;
            ImageSource::Url(str_field(s, "url", "messages", &at)?)
        }
        _ => return Err(bad("messages", format_args!("{at}.type"), "must be 'base64' or 'url'")),
    };
    Ok(Image { source, detail: None })
}

fn read_tool(tool: &Value, i: usize) -> Result<Tool, RequestError> {
    let at = format!("tools[{i}]");
    let t = as_object(tool, "tools", &at)?;
    match t.get("type").and_then(Value::as_str) {
        None | Some("custom") => (),
        Some(other) => {
            return Err(bad("tools", format_args!("{at}.type"), format!("'{other}' tools are not supported")));
        }
    }
    only(t, &["type", "name", "description", "input_schema", "cache_control"], "tools", &at)?;
    let input_schema = match t.get("input_schema") {
        Some(schema @ Value::Object(_)) => schema.clone(),
        _ => return Err(bad("tools", format_args!("{at}.input_schema"), "must be a JSON schema object")),
    };
    Ok(Tool {
        name: str_field(t, "name", "tools", &at)?,
        description: opt_str_field(t, "description", "tools", &at)?,
        input_schema,
        strict: None,
    })
}

fn read_tool_choice(request: &mut Request, choice: &Value) -> Result<(), RequestError> {
    let c = as_object(choice, "tool_choice", "tool_choice")?;
    only(c, &["type", "name", "disable_parallel_tool_use"], "tool_choice", "tool_choice")?;
    request.tool_choice = Some(match c.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Any,
        Some("none") => ToolChoice::None,
        Some("tool") => ToolChoice::Tool { name: str_field(c, "name", "tool_choice", "tool_choice")? },
        _ => return Err(bad("tool_choice", "tool_choice.type", "must be 'auto', 'any', 'tool' or 'none'")),
    });
    if let Some(disable) = c.get("disable_parallel_tool_use").filter(|v| !v.is_null()) {
        request.parallel_tool_calls = Some(!boolean(disable, "tool_choice")?);
    }
    Ok(())
}

// === encoding ===

fn unsupported(param: impl Into<String>, reason: &'static str) -> Unsupported {
    Unsupported { param: param.into(), target: TARGET, reason }
}

/// Writes a canonical request as a Messages body.
pub fn encode_request(request: &Request) -> Result<Value, Unsupported> {
    let Some(max_tokens) = request.max_tokens else {
        return Err(unsupported("max_tokens", "Anthropic requires it: set the deployment's default before encoding"));
    };
    if request.response_format.is_some() {
        return Err(unsupported("response_format", "Anthropic has no JSON mode"));
    }
    if request.sampling.temperature.is_some_and(|t| t > 1.0) {
        return Err(unsupported("temperature", "Anthropic accepts 0 to 1"));
    }
    if !request.prefill && request.messages.last().is_some_and(|m| m.role == Role::Assistant) {
        return Err(unsupported(
            format!("messages[{}]", request.messages.len() - 1),
            "Anthropic would continue a final assistant message (prefill), not read it as a finished turn",
        ));
    }
    let extra = request.check_extra(TARGET)?;
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(max_tokens));
    match request.system.as_slice() {
        [] => (),
        [one] => {
            body.insert("system".into(), json!(one));
        }
        many => {
            let blocks = many.iter().map(|t| json!({"type": "text", "text": t})).collect();
            body.insert("system".into(), Value::Array(blocks));
        }
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        messages.push(write_message(message, i)?);
    }
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let mut tools = Vec::with_capacity(request.tools.len());
        for (i, tool) in request.tools.iter().enumerate() {
            if tool.strict == Some(true) {
                return Err(unsupported(format!("tools[{i}].strict"), "Anthropic has no strict tool schemas"));
            }
            let mut t = Map::new();
            t.insert("name".into(), json!(tool.name));
            if let Some(d) = &tool.description {
                t.insert("description".into(), json!(d));
            }
            t.insert("input_schema".into(), tool.input_schema.clone());
            tools.push(Value::Object(t));
        }
        body.insert("tools".into(), Value::Array(tools));
    }
    let serial = request.parallel_tool_calls == Some(false);
    let choice = match (&request.tool_choice, serial) {
        (None, false) => None,
        (None, true) | (Some(ToolChoice::Auto), _) => Some(json!({"type": "auto"})),
        (Some(ToolChoice::None), _) => Some(json!({"type": "none"})),
        (Some(ToolChoice::Any), _) => Some(json!({"type": "any"})),
        (Some(ToolChoice::Tool { name }), _) => Some(json!({"type": "tool", "name": name})),
    };
    if let Some(mut choice) = choice {
        if serial && choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
        body.insert("tool_choice".into(), choice);
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if let Some(t) = request.sampling.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.sampling.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = request.sampling.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if let Some(user) = &request.user_id {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    for (key, value) in extra.into_iter().flatten() {
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Ok(Value::Object(body))
}

fn write_message(message: &Message, i: usize) -> Result<Value, Unsupported> {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::System => {
            return Err(unsupported(
                format!("messages[{i}].role"),
                "Anthropic has system prompts only before the conversation",
            ));
        }
    };
    if let [Part::Text(text)] = message.content.as_slice() {
        return Ok(json!({"role": role, "content": text}));
    }
    let mut blocks = Vec::with_capacity(message.content.len());
    for (j, part) in message.content.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        let block = match (part, message.role) {
            (Part::Text(text), _) => json!({"type": "text", "text": text}),
            (Part::Image(image), Role::User) => write_image(image, &at)?,
            (Part::ToolUse(call), Role::Assistant) if call.input.is_object() => {
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
            }
            (Part::ToolUse(_), Role::Assistant) => {
                return Err(unsupported(format!("{at}.input"), "Anthropic tool inputs are JSON objects"));
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

fn write_image(image: &Image, at: &str) -> Result<Value, Unsupported> {
    match image.detail {
        None | Some(ImageDetail::Auto) => (),
        Some(ImageDetail::Low | ImageDetail::High) => {
            return Err(unsupported(format!("{at}.detail"), "Anthropic has no image detail setting"));
        }
    }
    let source = match &image.source {
        ImageSource::Base64 { media_type, data } => json!({"type": "base64", "media_type": media_type, "data": data}),
        ImageSource::Url(url) => json!({"type": "url", "url": url}),
    };
    Ok(json!({"type": "image", "source": source}))
}

fn write_tool_result(result: &ToolResult, at: &str) -> Result<Value, Unsupported> {
    let mut block = Map::new();
    block.insert("type".into(), json!("tool_result"));
    block.insert("tool_use_id".into(), json!(result.tool_use_id));
    match result.content.as_slice() {
        [] => (),
        [ResultPart::Text(text)] => {
            block.insert("content".into(), json!(text));
        }
        parts => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                blocks.push(match part {
                    ResultPart::Text(text) => json!({"type": "text", "text": text}),
                    ResultPart::Image(image) => write_image(image, &format!("{at}.content[{k}]"))?,
                });
            }
            block.insert("content".into(), Value::Array(blocks));
        }
    }
    if result.is_error {
        block.insert("is_error".into(), json!(true));
    }
    Ok(Value::Object(block))
}
