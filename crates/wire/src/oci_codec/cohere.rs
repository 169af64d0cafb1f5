//! OCI's `COHERE` `chatRequest` ⇄ canonical requests: the last user turn as `message` and
//! `toolResults`, the turns before it as `chatHistory`, the system prompt as
//! `preambleOverride`, and tools with `parameterDefinitions` (Cohere's own parameter types:
//! `str`, `int`, `float`, `bool`, `List[…]`, `Dict`).

use serde_json::{Map, Value, json};

use super::{Format, call_id, read_common, unsupported, write_common};
use crate::canonical::{
    Message, Part, Request, ResponseFormat, ResultPart, Role, Tool, ToolChoice, ToolResult, ToolUse, Unsupported,
};
use crate::chat::RequestError;
use crate::read::{as_array, as_object, bad, opt_str_field, str_field, take};

const AT: &str = "chatRequest";

// === encoding ===

/// Writes a COHERE `chatRequest`: the conversation must end with a user turn.
pub(super) fn encode(request: &Request) -> Result<Value, Unsupported> {
    let last = request.messages.len().saturating_sub(1);
    if request.prefill {
        return Err(unsupported(
            format!("messages[{last}]"),
            "Cohere cannot continue a final assistant message (prefill)",
        ));
    }
    let Some((turn, history)) = request.messages.split_last().filter(|(m, _)| m.role == Role::User) else {
        return Err(unsupported(
            format!("messages[{last}]"),
            "Cohere answers a user turn; the conversation must end with one",
        ));
    };
    if request.parallel_tool_calls.is_some() {
        return Err(unsupported("parallel_tool_calls", "Cohere has no parallel tool call setting"));
    }
    let mut body = Map::new();
    body.insert("apiFormat".into(), json!(Format::Cohere.name()));
    let (message, results) = write_turn(turn, last, &request.messages)?;
    body.insert("message".into(), json!(message));
    let mut chat_history = Vec::with_capacity(history.len());
    for (i, m) in history.iter().enumerate() {
        write_history(m, i, &request.messages, &mut chat_history)?;
    }
    if !chat_history.is_empty() {
        body.insert("chatHistory".into(), Value::Array(chat_history));
    }
    if !results.is_empty() {
        body.insert("toolResults".into(), Value::Array(results));
    }
    if !request.system.is_empty() {
        body.insert("preambleOverride".into(), json!(request.system.join("\n\n")));
    }
    match &request.tool_choice {
        None | Some(ToolChoice::Auto) => write_tools(&request.tools, &mut body)?,
        // No calls: the model is not shown the tools.
        Some(ToolChoice::None) => {}
        Some(ToolChoice::Any | ToolChoice::Tool { .. }) => {
            return Err(unsupported("tool_choice", "Cohere cannot be made to call a tool"));
        }
    }
    match &request.response_format {
        None => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("responseFormat".into(), json!({"type": "JSON_OBJECT"}));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert("responseFormat".into(), json!({"type": "JSON_OBJECT", "schema": schema}));
        }
    }
    write_common(request, Format::Cohere, &mut body)?;
    Ok(Value::Object(body))
}

/// The last user turn: its text (the `message`) and its tool results.
fn write_turn(turn: &Message, i: usize, all: &[Message]) -> Result<(String, Vec<Value>), Unsupported> {
    let mut text = String::new();
    let mut results = Vec::new();
    for (j, part) in turn.content.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match part {
            Part::Text(t) => text.push_str(t),
            Part::ToolResult(result) => results.push(write_result(result, all, i, &at)?),
            Part::Image(_) | Part::ToolUse(_) => {
                return Err(unsupported(at, "Cohere's chat takes text and tool results from the user"));
            }
        }
    }
    Ok((text, results))
}

/// A message before the last turn as `chatHistory` entries (a user message's tool results and
/// its text as a `TOOL` and a `USER` entry, in their order).
fn write_history(message: &Message, i: usize, all: &[Message], out: &mut Vec<Value>) -> Result<(), Unsupported> {
    match message.role {
        Role::System | Role::User => {
            let role = if message.role == Role::System { "SYSTEM" } else { "USER" };
            let mut text = String::new();
            let mut results = Vec::new();
            for (j, part) in message.content.iter().enumerate() {
                let at = format!("messages[{i}].content[{j}]");
                match part {
                    Part::Text(t) => {
                        if !results.is_empty() {
                            out.push(json!({"role": "TOOL", "toolResults": std::mem::take(&mut results)}));
                        }
                        text.push_str(t);
                    }
                    Part::ToolResult(result) if message.role == Role::User => {
                        if !text.is_empty() {
                            out.push(json!({"role": role, "message": std::mem::take(&mut text)}));
                        }
                        results.push(write_result(result, all, i, &at)?);
                    }
                    _ => return Err(unsupported(at, "Cohere's chat history holds text and tool results here")),
                }
            }
            if !results.is_empty() {
                out.push(json!({"role": "TOOL", "toolResults": results}));
            }
            if !text.is_empty() || message.content.is_empty() {
                out.push(json!({"role": role, "message": text}));
            }
        }
        Role::Assistant => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for (j, part) in message.content.iter().enumerate() {
                match part {
                    Part::Text(t) => text.push_str(t),
                    Part::ToolUse(call) => calls.push(json!({"name": call.name, "parameters": call.input})),
                    _ => {
                        return Err(unsupported(
                            format!("messages[{i}].content[{j}]"),
                            "Cohere's chatbot turns hold text and tool calls",
                        ));
                    }
                }
            }
            let mut m = Map::new();
            m.insert("role".into(), json!("CHATBOT"));
            m.insert("message".into(), json!(text));
            if !calls.is_empty() {
                m.insert("toolCalls".into(), Value::Array(calls));
            }
            out.push(Value::Object(m));
        }
    }
    Ok(())
}

/// A tool result with the call it answers (Cohere names the call, it has no id): the latest
/// call with its id before message `i`.
fn write_result(result: &ToolResult, all: &[Message], i: usize, at: &str) -> Result<Value, Unsupported> {
    let call = all[..i].iter().rev().flat_map(|m| m.content.iter().rev()).find_map(|p| match p {
        Part::ToolUse(call) if call.id == result.tool_use_id => Some(call),
        _ => None,
    });
    let Some(call) = call else {
        return Err(unsupported(
            format!("{at}.tool_use_id"),
            "Cohere sends a result with the call it answers, and no call with this id came before it",
        ));
    };
    if result.is_error {
        return Err(unsupported(format!("{at}.is_error"), "Cohere's tool results cannot mark an error"));
    }
    let mut text = String::new();
    for (k, part) in result.content.iter().enumerate() {
        match part {
            ResultPart::Text(t) => text.push_str(t),
            ResultPart::Image(_) => {
                return Err(unsupported(format!("{at}.content[{k}]"), "Cohere's tool results hold text, not images"));
            }
        }
    }
    Ok(json!({"call": {"name": call.name, "parameters": call.input}, "outputs": [{"output": text}]}))
}

fn write_tools(tools: &[Tool], body: &mut Map<String, Value>) -> Result<(), Unsupported> {
    if tools.is_empty() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        if tool.strict == Some(true) {
            return Err(unsupported(format!("{at}.strict"), "Cohere's tools have no strict mode"));
        }
        let schema = &tool.input_schema;
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut definitions = Map::new();
        for (name, p) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let path = format!("{at}.parameters.properties.{name}");
            definitions.insert(name.clone(), write_parameter(p, required.contains(&name.as_str()), &path)?);
        }
        let mut t = Map::new();
        t.insert("name".into(), json!(tool.name));
        t.insert("description".into(), json!(tool.description.clone().unwrap_or_default()));
        if !definitions.is_empty() {
            t.insert("parameterDefinitions".into(), Value::Object(definitions));
        }
        out.push(Value::Object(t));
    }
    body.insert("tools".into(), Value::Array(out));
    Ok(())
}

/// A JSON schema property as a Cohere parameter definition. An `enum` is said in the
/// description; what a definition cannot hold (an object's own properties, a list of objects)
/// is refused.
fn write_parameter(p: &Value, required: bool, path: &str) -> Result<Value, Unsupported> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("string");
    let type_name = match kind {
        "array" => {
            let item = p.get("items").and_then(|i| i.get("type")).and_then(Value::as_str).unwrap_or("string");
            match cohere_type(item) {
                Some(t) if item != "object" && item != "array" => format!("List[{t}]"),
                _ => return Err(unsupported(format!("{path}.items"), "Cohere's parameters list only plain values")),
            }
        }
        "object" if p.get("properties").is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())) => {
            return Err(unsupported(
                format!("{path}.properties"),
                "Cohere's parameters cannot describe an object's fields",
            ));
        }
        other => match cohere_type(other) {
            Some(t) => t.to_owned(),
            None => return Err(unsupported(format!("{path}.type"), "not a type Cohere's parameters have")),
        },
    };
    let mut description = p.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(values) = p.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(Value::to_string).collect();
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&format!("(one of: {})", values.join(", ")));
    }
    let mut d = Map::new();
    d.insert("type".into(), json!(type_name));
    if !description.is_empty() {
        d.insert("description".into(), json!(description));
    }
    d.insert("isRequired".into(), json!(required));
    Ok(Value::Object(d))
}

fn cohere_type(json_type: &str) -> Option<&'static str> {
    Some(match json_type {
        "string" => "str",
        "integer" => "int",
        "number" => "float",
        "boolean" => "bool",
        "object" => "Dict",
        "array" => "List",
        _ => return None,
    })
}

/// A Cohere parameter type as a JSON schema.
fn json_schema(cohere: &str) -> Value {
    let plain = |t: &str| match t {
        "str" => "string",
        "int" => "integer",
        "float" => "number",
        "bool" => "boolean",
        "Dict" | "dict" => "object",
        _ => "string",
    };
    match cohere.strip_prefix("List[").and_then(|rest| rest.strip_suffix(']')) {
        Some(item) => json!({"type": "array", "items": {"type": plain(item)}}),
        None if cohere == "List" || cohere == "list" => json!({"type": "array"}),
        None => json!({"type": plain(cohere)}),
    }
}

// === decoding ===

/// Reads a COHERE `chatRequest` (its `apiFormat` already taken). Tool calls in the history get
/// ids by their place; a tool result answers the earliest unanswered call of its name.
pub(super) fn decode(mut chat: Map<String, Value>) -> Result<Request, RequestError> {
    let mut request = Request::default();
    let message = take(&mut chat, "message").ok_or_else(|| bad(AT, "chatRequest.message", "is required"))?;
    let message = message.as_str().ok_or_else(|| bad(AT, "chatRequest.message", "must be a string"))?.to_owned();
    if let Some(preamble) = take(&mut chat, "preambleOverride") {
        let preamble = preamble.as_str().ok_or_else(|| bad(AT, "chatRequest.preambleOverride", "must be a string"))?;
        request.system.push(preamble.to_owned());
    }
    let mut pending: Vec<(String, String)> = Vec::new();
    if let Some(history) = take(&mut chat, "chatHistory") {
        for (i, entry) in as_array(&history, AT, "chatRequest.chatHistory")?.iter().enumerate() {
            read_history(entry, i, &mut request, &mut pending)?;
        }
    }
    let mut last = Vec::new();
    if let Some(results) = take(&mut chat, "toolResults") {
        last = read_results(&results, "chatRequest.toolResults", &mut pending)?;
    }
    if !message.is_empty() || last.is_empty() {
        last.push(Part::Text(message));
    }
    request.messages.push(Message { role: Role::User, content: last });
    if let Some(tools) = take(&mut chat, "tools") {
        for (i, tool) in as_array(&tools, AT, "chatRequest.tools")?.iter().enumerate() {
            request.tools.push(read_tool(tool, &format!("chatRequest.tools[{i}]"))?);
        }
    }
    if let Some(format) = take(&mut chat, "responseFormat") {
        let f = as_object(&format, AT, "chatRequest.responseFormat")?;
        request.response_format = match (f.get("type").and_then(Value::as_str), f.get("schema")) {
            (Some("TEXT"), _) => None,
            (Some("JSON_OBJECT"), None | Some(Value::Null)) => Some(ResponseFormat::JsonObject),
            (Some("JSON_OBJECT"), Some(schema)) => Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                description: None,
                schema: schema.clone(),
                strict: None,
            }),
            _ => return Err(bad(AT, "chatRequest.responseFormat.type", "must be TEXT or JSON_OBJECT")),
        };
    }
    read_common(&mut chat, &mut request, "stopSequences")?;
    Ok(request)
}

fn read_history(
    entry: &Value,
    i: usize,
    request: &mut Request,
    pending: &mut Vec<(String, String)>,
) -> Result<(), RequestError> {
    let path = format!("chatRequest.chatHistory[{i}]");
    let e = as_object(entry, AT, &path)?;
    let text = opt_str_field(e, "message", AT, &path)?.unwrap_or_default();
    match e.get("role").and_then(Value::as_str) {
        Some("USER") => request.messages.push(Message { role: Role::User, content: vec![Part::Text(text)] }),
        Some("SYSTEM") if request.messages.is_empty() => request.system.push(text),
        Some("SYSTEM") => request.messages.push(Message { role: Role::System, content: vec![Part::Text(text)] }),
        Some("CHATBOT") => {
            let mut content = Vec::new();
            if !text.is_empty() {
                content.push(Part::Text(text));
            }
            if let Some(calls) = e.get("toolCalls").filter(|v| !v.is_null()) {
                for (j, call) in as_array(calls, AT, format_args!("{path}.toolCalls"))?.iter().enumerate() {
                    let (name, input) = read_call(call, &format!("{path}.toolCalls[{j}]"))?;
                    let id = call_id(i, j);
                    pending.push((id.clone(), name.clone()));
                    content.push(Part::ToolUse(ToolUse { id, name, input }));
                }
            }
            request.messages.push(Message { role: Role::Assistant, content });
        }
        Some("TOOL") => {
            let results = e.get("toolResults").unwrap_or(&Value::Null);
            let content = read_results(results, &format!("{path}.toolResults"), pending)?;
            request.messages.push(Message { role: Role::User, content });
        }
        _ => return Err(bad(AT, format_args!("{path}.role"), "must be USER, CHATBOT, SYSTEM or TOOL")),
    }
    Ok(())
}

fn read_call(call: &Value, at: &str) -> Result<(String, Value), RequestError> {
    let c = as_object(call, AT, at)?;
    let name = str_field(c, "name", AT, at)?;
    let input = c.get("parameters").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({}));
    if !input.is_object() {
        return Err(bad(AT, format_args!("{at}.parameters"), "must be an object"));
    }
    Ok((name, input))
}

fn read_results(results: &Value, path: &str, pending: &mut Vec<(String, String)>) -> Result<Vec<Part>, RequestError> {
    let mut out = Vec::new();
    for (k, result) in as_array(results, AT, path)?.iter().enumerate() {
        let at = format!("{path}[{k}]");
        let r = as_object(result, AT, &at)?;
        let (name, _) = read_call(r.get("call").unwrap_or(&Value::Null), &format!("{at}.call"))?;
        let Some(n) = pending.iter().position(|(_, n)| *n == name) else {
            return Err(bad(AT, format_args!("{at}.call"), format_args!("answers no call of '{name}' before it")));
        };
        let (tool_use_id, _) = pending.remove(n);
        let outputs = as_array(r.get("outputs").unwrap_or(&Value::Null), AT, format_args!("{at}.outputs"))?;
        let text: String = outputs
            .iter()
            .map(|o| match o.get("output") {
                Some(Value::String(s)) => s.clone(),
                _ => o.to_string(),
            })
            .collect();
        out.push(Part::ToolResult(ToolResult { tool_use_id, content: vec![ResultPart::Text(text)], is_error: false }));
    }
    Ok(out)
}

fn read_tool(tool: &Value, at: &str) -> Result<Tool, RequestError> {
    let t = as_object(tool, AT, at)?;
    let mut properties = Map::new();
    let mut required = Vec::new();
    if let Some(definitions) = t.get("parameterDefinitions").filter(|v| !v.is_null()) {
        for (name, d) in as_object(definitions, AT, format_args!("{at}.parameterDefinitions"))? {
            let path = format!("{at}.parameterDefinitions.{name}");
            let d = as_object(d, AT, &path)?;
            let mut schema = json_schema(&str_field(d, "type", AT, &path)?);
            if let Some(description) = d.get("description").and_then(Value::as_str) {
                schema["description"] = json!(description);
            }
            if d.get("isRequired").and_then(Value::as_bool) == Some(true) {
                required.push(json!(name));
            }
            properties.insert(name.clone(), schema);
        }
    }
    let mut input_schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input_schema["required"] = Value::Array(required);
    }
    let description = opt_str_field(t, "description", AT, at)?.filter(|d| !d.is_empty());
    Ok(Tool { name: str_field(t, "name", AT, at)?, description, input_schema, strict: None })
}
