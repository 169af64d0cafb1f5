//! OpenAI Chat Completions requests ⇄ canonical requests.

use serde_json::{Map, Value, json};

use crate::canonical::{
    Extra, Image, ImageDetail, Message, Part, Protocol, Request, ResponseFormat, ResultPart, Role, Tool, ToolChoice,
    ToolResult, ToolUse, Unsupported,
};
use crate::chat::RequestError;
use crate::read::{
    as_array, as_object, as_str, bad, boolean, image_from_url, image_url, is_unset, number, object, only,
    opt_str_field, positive, str_field, strings, take,
};

const TARGET: Protocol = Protocol::OpenAiChat;

/// Reads a caller's Chat Completions body into the canonical model. Parameters the model has
/// no place for are kept in [`Request::extra`]; ones set to their defaults (`n: 1`,
/// `logprobs: false`, zero penalties) are dropped.
pub fn decode_request(body: &[u8]) -> Result<Request, RequestError> {
    let mut body = object(body)?;
    let model = match take(&mut body, "model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => return Err(bad("model", "model", "must be a non-empty string")),
        None => {
            return Err(RequestError { message: "you must provide a model parameter".into(), param: Some("model") });
        }
    };
    let mut request = Request { model, ..Request::default() };
    let Some(messages) = take(&mut body, "messages") else {
        return Err(bad("messages", "messages", "is required"));
    };
    let messages = as_array(&messages, "messages", "messages")?;
    if messages.is_empty() {
        return Err(bad("messages", "messages", "must contain at least one message"));
    }
    let mut after_tool = false;
    for (i, message) in messages.iter().enumerate() {
        after_tool = read_message(&mut request, message, i, after_tool)?;
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
    if let Some(v) = take(&mut body, "stop") {
        request.stop = strings(&v, "stop")?;
    }
    if let Some(v) = take(&mut body, "temperature") {
        request.sampling.temperature = Some(number(&v, "temperature")?);
    }
    if let Some(v) = take(&mut body, "top_p") {
        request.sampling.top_p = Some(number(&v, "top_p")?);
    }
    let max_tokens = take(&mut body, "max_tokens");
    if let Some(v) = take(&mut body, "max_completion_tokens") {
        request.max_tokens = Some(positive(&v, "max_completion_tokens")?);
    } else if let Some(v) = max_tokens {
        request.max_tokens = Some(positive(&v, "max_tokens")?);
    }
    if let Some(v) = take(&mut body, "response_format") {
        request.response_format = read_response_format(&v)?;
    }
    if let Some(v) = take(&mut body, "user") {
        request.user_id = Some(as_str(&v, "user", "user")?.to_owned());
    }
    if let Some(v) = take(&mut body, "stream") {
        request.stream = boolean(&v, "stream")?;
    }
    if let Some(v) = take(&mut body, "stream_options") {
        let options = as_object(&v, "stream_options", "stream_options")?;
        only(options, &["include_usage"], "stream_options", "stream_options")?;
        if let Some(include) = options.get("include_usage").filter(|v| !v.is_null()) {
            request.include_usage = boolean(include, "stream_options")?;
        }
    }
    // Defaults carry no meaning: dropped, so that they do not stop a translation.
    body.retain(|key, value| {
        !(is_unset(value)
            || matches!((key.as_str(), &*value), ("n", Value::Number(n)) if n.as_u64() == Some(1))
            || matches!((key.as_str(), &*value), ("logprobs" | "store", Value::Bool(false)))
            || matches!(
                (key.as_str(), &*value),
                ("presence_penalty" | "frequency_penalty", Value::Number(n)) if n.as_f64() == Some(0.0)
            ))
    });
    if !body.is_empty() {
        request.extra = Some(Extra { protocol: TARGET, fields: body });
    }
    Ok(request)
}

/// Reads one message; says whether it was a tool message. Consecutive tool messages answer
/// one assistant turn: one user message holds their results.
fn read_message(request: &mut Request, message: &Value, i: usize, after_tool: bool) -> Result<bool, RequestError> {
    let path = format!("messages[{i}]");
    let m = as_object(message, "messages", &path)?;
    let role = str_field(m, "role", "messages", &path)?;
    match role.as_str() {
        "system" | "developer" => {
            only(m, &["role", "content", "name"], "messages", &path)?;
            refuse_name(m, &path)?;
            let texts = texts(m.get("content"), &path)?;
            if request.messages.is_empty() {
                request.system.extend(texts);
            } else {
                request
                    .messages
                    .push(Message { role: Role::System, content: texts.into_iter().map(Part::Text).collect() });
            }
        }
        "user" => {
            only(m, &["role", "content", "name"], "messages", &path)?;
            refuse_name(m, &path)?;
            let content = user_content(m.get("content"), &path)?;
            request.messages.push(Message { role: Role::User, content });
        }
        "assistant" => {
            only(m, &["role", "content", "name", "tool_calls", "refusal"], "messages", &path)?;
            refuse_name(m, &path)?;
            let mut content: Vec<Part> = match m.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(_) => texts(m.get("content"), &path)?.into_iter().map(Part::Text).collect(),
            };
            if let Some(refusal) = opt_str_field(m, "refusal", "messages", &path)? {
                content.push(Part::Text(refusal));
            }
            if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
                content.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
                for (j, call) in as_array(calls, "messages", format_args!("{path}.tool_calls"))?.iter().enumerate() {
                    content.push(Part::ToolUse(read_tool_call(call, &format!("{path}.tool_calls[{j}]"))?));
                }
            }
            request.messages.push(Message { role: Role::Assistant, content });
        }
        "tool" => {
            only(m, &["role", "content", "tool_call_id"], "messages", &path)?;
            let tool_use_id = str_field(m, "tool_call_id", "messages", &path)?;
            let content = texts(m.get("content"), &path)?.into_iter().map(ResultPart::Text).collect();
            let result = Part::ToolResult(ToolResult { tool_use_id, content, is_error: false });
            match request.messages.last_mut() {
                Some(last) if after_tool => last.content.push(result),
                Some(_) | None => request.messages.push(Message { role: Role::User, content: vec![result] }),
            }
            return Ok(true);
        }
        other => return Err(bad("messages", format_args!("{path}.role"), format_args!("unsupported role '{other}'"))),
    }
    Ok(false)
}

fn refuse_name(m: &Map<String, Value>, path: &str) -> Result<(), RequestError> {
    match m.get("name") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(bad("messages", format_args!("{path}.name"), "participant names are not supported")),
    }
}

/// Text content: a string, or an array of text parts.
fn texts(content: Option<&Value>, path: &str) -> Result<Vec<String>, RequestError> {
    match content {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let at = format!("{path}.content[{j}]");
                let p = as_object(part, "messages", &at)?;
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        only(p, &["type", "text"], "messages", &at)?;
                        str_field(p, "text", "messages", &at)
                    }
                    Some("refusal") => {
                        only(p, &["type", "refusal"], "messages", &at)?;
                        str_field(p, "refusal", "messages", &at)
                    }
                    Some(other) => Err(bad("messages", at, format_args!("'{other}' parts are not supported here"))),
                    None => Err(bad("messages", format_args!("{at}.type"), "is required")),
                }
            })
            .collect(),
        None | Some(Value::Null) => Err(bad("messages", format_args!("{path}.content"), "is required")),
        Some(_) => Err(bad("messages", format_args!("{path}.content"), "must be a string or an array of parts")),
    }
}

fn user_content(content: Option<&Value>, path: &str) -> Result<Vec<Part>, RequestError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(texts(content, path)?.into_iter().map(Part::Text).collect());
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        let p = as_object(part, "messages", &at)?;
        match p.get("type").and_then(Value::as_str) {
            Some("text") => {
                only(p, &["type", "text"], "messages", &at)?;
                out.push(Part::Text(str_field(p, "text", "messages", &at)?));
            }
            Some("image_url") => {
                only(p, &["type", "image_url"], "messages", &at)?;
                let image = match p.get("image_url") {
                    Some(Value::String(url)) => Image { source: image_from_url(url), detail: None },
                    Some(v) => {
                        let at = format!("{at}.image_url");
                        let o = as_object(v, "messages", &at)?;
                        only(o, &["url", "detail"], "messages", &at)?;
                        let url = str_field(o, "url", "messages", &at)?;
                        let detail = match opt_str_field(o, "detail", "messages", &at)?.as_deref() {
                            None => None,
                            Some("auto") => Some(ImageDetail::Auto),
                            Some("low") => Some(ImageDetail::Low),
                            Some("high") => Some(ImageDetail::High),
                            Some(other) => {
                                return Err(bad("messages", format_args!("{at}.detail"), format!("unknown '{other}'")));
                            }
                        };
                        Image { source: image_from_url(&url), detail }
                    }
                    None => return Err(bad("messages", format_args!("{at}.image_url"), "is required")),
                };
                out.push(Part::Image(image));
            }
            Some(other) => return Err(bad("messages", at, format_args!("'{other}' parts are not supported"))),
            None => return Err(bad("messages", format_args!("{at}.type"), "is required")),
        }
    }
    Ok(out)
}

fn read_tool_call(call: &Value, path: &str) -> Result<ToolUse, RequestError> {
    let c = as_object(call, "messages", path)?;
    only(c, &["id", "type", "function"], "messages", path)?;
    match c.get("type").and_then(Value::as_str) {
        None | Some("function") => (),
        Some(other) => return Err(bad("messages", format_args!("{path}.type"), format!("'{other}' is not supported"))),
    }
    let id = str_field(c, "id", "messages", path)?;
    let at = format!("{path}.function");
    let f = as_object(c.get("function").unwrap_or(&Value::Null), "messages", &at)?;
    let name = str_field(f, "name", "messages", &at)?;
    let arguments = str_field(f, "arguments", "messages", &at)?;
    let input = parse_arguments(&arguments)
        .ok_or_else(|| bad("messages", format_args!("{at}.arguments"), "must be a JSON text"))?;
    Ok(ToolUse { id, name, input })
}

/// Tool-call arguments as JSON; an empty string is an empty object.
pub(super) fn parse_arguments(arguments: &str) -> Option<Value> {
    if arguments.trim().is_empty() {
        return Some(Value::Object(Map::new()));
    }
    serde_json::from_str(arguments).ok()
}

fn read_tool(tool: &Value, i: usize) -> Result<Tool, RequestError> {
    let path = format!("tools[{i}]");
    let t = as_object(tool, "tools", &path)?;
    only(t, &["type", "function"], "tools", &path)?;
    match t.get("type").and_then(Value::as_str) {
        Some("function") => (),
        Some(other) => {
            return Err(bad("tools", format_args!("{path}.type"), format!("'{other}' tools are not supported")));
        }
        None => return Err(bad("tools", format_args!("{path}.type"), "is required")),
    }
    let at = format!("{path}.function");
    let f = as_object(t.get("function").unwrap_or(&Value::Null), "tools", &at)?;
    only(f, &["name", "description", "parameters", "strict"], "tools", &at)?;
    read_function(f, &at)
}

/// A function's definition (`name`, `description`, `parameters`, `strict`) at `at`: nested
/// under `function` in Chat Completions, flat in the Responses API's tools.
pub(crate) fn read_function(f: &Map<String, Value>, at: &str) -> Result<Tool, RequestError> {
    let input_schema = match f.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema.clone(),
        Some(_) => return Err(bad("tools", format_args!("{at}.parameters"), "must be a JSON schema object")),
    };
    Ok(Tool {
        name: str_field(f, "name", "tools", at)?,
        description: opt_str_field(f, "description", "tools", at)?,
        input_schema,
        strict: f.get("strict").filter(|v| !v.is_null()).map(|v| boolean(v, "tools")).transpose()?,
    })
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
                _ => return Err(bad("tool_choice", "tool_choice.type", "must be 'function'")),
            }
            only(o, &["type", "function"], "tool_choice", "tool_choice")?;
            let f = as_object(o.get("function").unwrap_or(&Value::Null), "tool_choice", "tool_choice.function")?;
            Ok(ToolChoice::Tool { name: str_field(f, "name", "tool_choice", "tool_choice.function")? })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => {
            Err(bad("tool_choice", "tool_choice", "must be a string or an object"))
        }
    }
}

fn read_response_format(format: &Value) -> Result<Option<ResponseFormat>, RequestError> {
    let f = as_object(format, "response_format", "response_format")?;
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            only(f, &["type", "json_schema"], "response_format", "response_format")?;
            let at = "response_format.json_schema";
            let s = as_object(f.get("json_schema").unwrap_or(&Value::Null), "response_format", at)?;
            only(s, &["name", "description", "schema", "strict"], "response_format", at)?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: str_field(s, "name", "response_format", at)?,
                description: opt_str_field(s, "description", "response_format", at)?,
                schema: s.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: s.get("strict").filter(|v| !v.is_null()).map(|v| boolean(v, "response_format")).transpose()?,
            }))
        }
        Some(other) => Err(bad("response_format", "response_format.type", format!("unknown '{other}'"))),
        None => Err(bad("response_format", "response_format.type", "is required")),
    }
}

// === encoding ===

fn unsupported(param: impl Into<String>, reason: &'static str) -> Unsupported {
    Unsupported { param: param.into(), target: TARGET, reason }
}

/// Writes a canonical request as a Chat Completions body.
pub fn encode_request(request: &Request) -> Result<Value, Unsupported> {
    if request.sampling.top_k.is_some() {
        return Err(unsupported("top_k", "OpenAI has no top-k sampling"));
    }
    if request.prefill && request.messages.last().is_some_and(|m| m.role == Role::Assistant) {
        return Err(unsupported(
            format!("messages[{}]", request.messages.len() - 1),
            "OpenAI does not continue a final assistant message (prefill)",
        ));
    }
    let extra = request.check_extra(TARGET)?;
    let mut messages = Vec::with_capacity(request.system.len() + request.messages.len());
    for text in &request.system {
        messages.push(json!({"role": "system", "content": text}));
    }
    for (i, message) in request.messages.iter().enumerate() {
        write_message(message, i, &mut messages)?;
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request.tools.iter().map(write_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Any => json!("required"),
            ToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), choice);
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(parallel));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    if let Some(t) = request.sampling.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.sampling.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(n) = request.max_tokens {
        body.insert("max_completion_tokens".into(), json!(n));
    }
    if let Some(format) = &request.response_format {
        let format = match format {
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, description, schema, strict } => {
                let mut s = Map::new();
                s.insert("name".into(), json!(name));
                if let Some(d) = description {
                    s.insert("description".into(), json!(d));
                }
                s.insert("schema".into(), schema.clone());
                if let Some(strict) = strict {
                    s.insert("strict".into(), json!(strict));
                }
                json!({"type": "json_schema", "json_schema": s})
            }
        };
        body.insert("response_format".into(), format);
    }
    if let Some(user) = &request.user_id {
        body.insert("user".into(), json!(user));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
        if request.include_usage {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    for (key, value) in extra.into_iter().flatten() {
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Ok(Value::Object(body))
}

fn write_message(message: &Message, i: usize, out: &mut Vec<Value>) -> Result<(), Unsupported> {
    let at = |j: usize| format!("messages[{i}].content[{j}]");
    match message.role {
        Role::System => {
            let mut parts = Vec::new();
            for (j, part) in message.content.iter().enumerate() {
                match part {
                    Part::Text(t) => parts.push(t.as_str()),
                    Part::Image(_) | Part::ToolUse(_) | Part::ToolResult(_) => {
                        return Err(unsupported(at(j), "a system message holds only text"));
                    }
                }
            }
            out.push(json!({"role": "system", "content": text_content(&parts)}));
        }
        Role::User => {
            let mut pending: Vec<Value> = Vec::new();
            for (j, part) in message.content.iter().enumerate() {
                match part {
                    Part::Text(t) => pending.push(json!({"type": "text", "text": t})),
                    Part::Image(image) => pending.push(write_image(image)),
                    Part::ToolResult(result) => {
                        flush_user(&mut pending, out);
                        out.push(write_tool_result(result, &at(j))?);
                    }
                    Part::ToolUse(_) => return Err(unsupported(at(j), "a tool call in a user message")),
                }
            }
            flush_user(&mut pending, out);
        }
        Role::Assistant => {
            let mut text = String::new();
            let mut has_text = false;
            let mut calls = Vec::new();
            for (j, part) in message.content.iter().enumerate() {
                match part {
                    Part::Text(t) => {
                        text.push_str(t);
                        has_text = true;
                    }
                    Part::ToolUse(call) => calls.push(json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.input.to_string()},
                    })),
                    Part::Image(_) | Part::ToolResult(_) => {
                        return Err(unsupported(at(j), "an assistant message holds only text and tool calls"));
                    }
                }
            }
            let mut m = Map::new();
            m.insert("role".into(), json!("assistant"));
            m.insert("content".into(), if has_text { json!(text) } else { Value::Null });
            if !calls.is_empty() {
                m.insert("tool_calls".into(), Value::Array(calls));
            }
            out.push(Value::Object(m));
        }
    }
    Ok(())
}

/// One text part as a string, several as text parts.
fn text_content(texts: &[&str]) -> Value {
    match texts {
        [one] => json!(one),
        many => Value::Array(many.iter().map(|t| json!({"type": "text", "text": t})).collect()),
    }
}

fn flush_user(pending: &mut Vec<Value>, out: &mut Vec<Value>) {
    if pending.is_empty() {
        return;
    }
    let parts = std::mem::take(pending);
    let content = match parts.as_slice() {
        [one] if one["type"] == "text" => one["text"].clone(),
        _ => Value::Array(parts),
    };
    out.push(json!({"role": "user", "content": content}));
}

fn write_image(image: &Image) -> Value {
    let mut url = Map::new();
    url.insert("url".into(), json!(image_url(image)));
    if let Some(detail) = image.detail {
        let detail = match detail {
            ImageDetail::Auto => "auto",
            ImageDetail::Low => "low",
            ImageDetail::High => "high",
        };
        url.insert("detail".into(), json!(detail));
    }
    json!({"type": "image_url", "image_url": url})
}

fn write_tool_result(result: &ToolResult, path: &str) -> Result<Value, Unsupported> {
    if result.is_error {
        return Err(unsupported(format!("{path}.is_error"), "OpenAI cannot mark a tool result as an error"));
    }
    let mut texts = Vec::with_capacity(result.content.len());
    for (k, part) in result.content.iter().enumerate() {
        match part {
            ResultPart::Text(t) => texts.push(t.as_str()),
            ResultPart::Image(_) => {
                return Err(unsupported(format!("{path}.content[{k}]"), "an OpenAI tool result holds only text"));
            }
        }
    }
    let content = if texts.is_empty() { json!("") } else { text_content(&texts) };
    Ok(json!({"role": "tool", "tool_call_id": result.tool_use_id, "content": content}))
}

fn write_tool(tool: &Tool) -> Value {
    let mut f = Map::new();
    f.insert("name".into(), json!(tool.name));
    if let Some(d) = &tool.description {
        f.insert("description".into(), json!(d));
    }
    f.insert("parameters".into(), tool.input_schema.clone());
    if let Some(strict) = tool.strict {
        f.insert("strict".into(), json!(strict));
    }
    json!({"type": "function", "function": f})
}
