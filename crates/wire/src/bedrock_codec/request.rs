//! Converse request bodies ⇄ canonical requests: the system prompt, `inferenceConfig`,
//! `toolConfig`, and the fields the model carries inside Bedrock's open-ended ones.

use serde_json::{Map, Value, json};

use super::content::{kind, read_message, unsupported, write_message};
use crate::canonical::{Extra, Protocol, Request, Role, Tool, ToolChoice, Unsupported};
use crate::chat::RequestError;
use crate::read::{as_array, as_object, as_str, bad, is_unset, object, only, opt_str_field, positive, str_field, take};

pub(super) const TARGET: Protocol = Protocol::Bedrock;

/// Where `top_k` travels: Converse has no field for it, Anthropic's models read it here.
const MODEL_FIELDS: &str = "additionalModelRequestFields";
/// Where the user id travels: key-value pairs kept with the invocation's log.
const METADATA: &str = "requestMetadata";

/// Reads a Converse body into the canonical model. `model_id` comes from the URL path and
/// `stream` from which operation was called (`converse-stream` or `converse`). A final
/// assistant message is a prefill. Fields the model has no place for (`guardrailConfig`,
/// `additionalModelRequestFields` other than `top_k`, ...) are kept in [`Request::extra`].
pub fn decode_request(body: &[u8], model_id: &str, stream: bool) -> Result<Request, RequestError> {
    if model_id.is_empty() {
        return Err(bad("modelId", "modelId", "must be a non-empty string"));
    }
    let mut body = object(body)?;
    let mut request = Request { model: model_id.to_owned(), stream, include_usage: true, ..Request::default() };
    let Some(messages) = take(&mut body, "messages") else {
        return Err(bad("messages", "messages", "is required"));
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
    if let Some(config) = take(&mut body, "inferenceConfig") {
        read_inference(&mut request, &config)?;
    }
    if let Some(config) = take(&mut body, "toolConfig") {
        read_tool_config(&mut request, &config)?;
    }
    if let Some(mut fields) = take(&mut body, MODEL_FIELDS) {
        let f = fields.as_object_mut().ok_or_else(|| bad(MODEL_FIELDS, MODEL_FIELDS, "must be an object"))?;
        if let Some(k) = f.remove("top_k").filter(|v| !v.is_null()) {
            let k = k.as_u64().and_then(|k| u32::try_from(k).ok());
            request.sampling.top_k = Some(k.ok_or_else(|| {
                bad(MODEL_FIELDS, "additionalModelRequestFields.top_k", "must be a non-negative integer")
            })?);
        }
        body.insert(MODEL_FIELDS.into(), fields);
    }
    if let Some(mut fields) = take(&mut body, METADATA) {
        let f = fields.as_object_mut().ok_or_else(|| bad(METADATA, METADATA, "must be an object"))?;
        request.user_id = opt_str_field(f, "user_id", METADATA, METADATA)?;
        f.remove("user_id");
        body.insert(METADATA.into(), fields);
    }
    body.retain(|_, value| !is_unset(value));
    if !body.is_empty() {
        request.extra = Some(Extra { protocol: TARGET, fields: body });
    }
    Ok(request)
}

fn read_system(system: &Value) -> Result<Vec<String>, RequestError> {
    let mut out = Vec::new();
    for (i, block) in as_array(system, "system", "system")?.iter().enumerate() {
        let at = format!("system[{i}]");
        match kind(as_object(block, "system", &at)?, "system", &at)? {
            ("text", Value::String(text)) => out.push(text.clone()),
            ("text", _) => return Err(bad("system", format_args!("{at}.text"), "must be a string")),
            ("cachePoint", _) => (),
            (other, _) => return Err(bad("system", at, format!("'{other}' blocks are not supported"))),
        }
    }
    Ok(out)
}

fn read_inference(request: &mut Request, config: &Value) -> Result<(), RequestError> {
    const AT: &str = "inferenceConfig";
    let c = as_object(config, AT, AT)?;
    only(c, &["maxTokens", "temperature", "topP", "stopSequences"], AT, AT)?;
    let number = |key: &str| match c.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(AT, format_args!("{AT}.{key}"), "must be a number")),
    };
    request.sampling.temperature = number("temperature")?;
    request.sampling.top_p = number("topP")?;
    if let Some(n) = c.get("maxTokens").filter(|v| !v.is_null()) {
        request.max_tokens =
            Some(positive(n, AT).map_err(|_| bad(AT, "inferenceConfig.maxTokens", "must be a positive integer"))?);
    }
    if let Some(stops) = c.get("stopSequences").filter(|v| !v.is_null()) {
        for (i, stop) in as_array(stops, AT, "inferenceConfig.stopSequences")?.iter().enumerate() {
            request.stop.push(as_str(stop, AT, format_args!("{AT}.stopSequences[{i}]"))?.to_owned());
        }
    }
    Ok(())
}

fn read_tool_config(request: &mut Request, config: &Value) -> Result<(), RequestError> {
    const AT: &str = "toolConfig";
    let c = as_object(config, AT, AT)?;
    only(c, &["tools", "toolChoice"], AT, AT)?;
    if let Some(tools) = c.get("tools").filter(|v| !v.is_null()) {
        for (i, tool) in as_array(tools, AT, "toolConfig.tools")?.iter().enumerate() {
            let at = format!("{AT}.tools[{i}]");
            match kind(as_object(tool, AT, &at)?, AT, &at)? {
                ("toolSpec", spec) => request.tools.push(read_tool(spec, &format!("{at}.toolSpec"))?),
                ("cachePoint", _) => (),
                (other, _) => return Err(bad(AT, at, format!("'{other}' tools are not supported"))),
            }
        }
    }
    if let Some(choice) = c.get("toolChoice").filter(|v| !v.is_null()) {
        let at = "toolConfig.toolChoice";
        request.tool_choice = Some(match kind(as_object(choice, AT, at)?, AT, at)? {
            ("auto", _) => ToolChoice::Auto,
            ("any", _) => ToolChoice::Any,
            ("tool", tool) => {
                let t = as_object(tool, AT, "toolConfig.toolChoice.tool")?;
                ToolChoice::Tool { name: str_field(t, "name", AT, "toolConfig.toolChoice.tool")? }
            }
            (other, _) => return Err(bad(AT, format_args!("{at}.{other}"), "must be 'auto', 'any' or 'tool'")),
        });
    }
    Ok(())
}

fn read_tool(spec: &Value, at: &str) -> Result<Tool, RequestError> {
    let s = as_object(spec, "toolConfig", at)?;
    only(s, &["name", "description", "inputSchema"], "toolConfig", at)?;
    let schema =
        as_object(s.get("inputSchema").unwrap_or(&Value::Null), "toolConfig", format_args!("{at}.inputSchema"))?;
    let input_schema = match kind(schema, "toolConfig", &format!("{at}.inputSchema"))? {
        ("json", schema @ Value::Object(_)) => schema.clone(),
        _ => return Err(bad("toolConfig", format_args!("{at}.inputSchema.json"), "must be a JSON schema object")),
    };
    Ok(Tool {
        name: str_field(s, "name", "toolConfig", at)?,
        description: opt_str_field(s, "description", "toolConfig", at)?,
        input_schema,
        strict: None,
    })
}

// === encoding ===

/// Writes a canonical request as a Converse body (the model id goes in the URL path, and
/// whether to stream in the operation called). Consecutive messages of one role are joined
/// into one, as Converse wants the roles to alternate.
pub fn encode_request(request: &Request) -> Result<Value, Unsupported> {
    if request.response_format.is_some() {
        return Err(unsupported("response_format", "Converse has no JSON mode"));
    }
    if request.parallel_tool_calls == Some(false) {
        return Err(unsupported("parallel_tool_calls", "Converse cannot turn parallel tool calls off"));
    }
    if !request.prefill && request.messages.last().is_some_and(|m| m.role == Role::Assistant) {
        return Err(unsupported(
            format!("messages[{}]", request.messages.len() - 1),
            "Converse would continue a final assistant message (prefill), not read it as a finished turn",
        ));
    }
    let extra = request.check_extra(TARGET)?;
    let mut body = Map::new();
    let mut messages: Vec<Value> = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        let mut message = write_message(message, i)?;
        // Converse wants the roles to alternate: a turn's messages become one.
        match messages.last_mut() {
            Some(last) if last["role"] == message["role"] => {
                if let (Some(to), Value::Array(more)) = (last["content"].as_array_mut(), message["content"].take()) {
                    to.extend(more);
                }
            }
            Some(_) | None => messages.push(message),
        }
    }
    body.insert("messages".into(), Value::Array(messages));
    if !request.system.is_empty() {
        body.insert("system".into(), request.system.iter().map(|t| json!({"text": t})).collect());
    }
    let mut inference = Map::new();
    if let Some(n) = request.max_tokens {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = request.sampling.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.sampling.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if !request.stop.is_empty() {
        inference.insert("stopSequences".into(), json!(request.stop));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(config) = write_tool_config(request)? {
        body.insert("toolConfig".into(), config);
    }
    if let Some(k) = request.sampling.top_k {
        body.insert(MODEL_FIELDS.into(), json!({"top_k": k}));
    }
    if let Some(user) = &request.user_id {
        body.insert(METADATA.into(), json!({"user_id": user}));
    }
    for (key, value) in extra.into_iter().flatten() {
        match (body.get_mut(key), value) {
            (Some(Value::Object(ours)), Value::Object(theirs)) => {
                for (k, v) in theirs {
                    ours.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            (Some(_), _) => (),
            (None, _) => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(Value::Object(body))
}

fn write_tool_config(request: &Request) -> Result<Option<Value>, Unsupported> {
    if request.tools.is_empty() {
        return match request.tool_choice {
            None | Some(ToolChoice::Auto | ToolChoice::None) => Ok(None),
            Some(ToolChoice::Any | ToolChoice::Tool { .. }) => {
                Err(unsupported("tool_choice", "Converse takes a tool choice only with tools"))
            }
        };
    }
    let mut tools = Vec::with_capacity(request.tools.len());
    for (i, tool) in request.tools.iter().enumerate() {
        if tool.strict == Some(true) {
            return Err(unsupported(format!("tools[{i}].strict"), "Converse has no strict tool schemas"));
        }
        let mut spec = Map::new();
        spec.insert("name".into(), json!(tool.name));
        if let Some(d) = &tool.description {
            spec.insert("description".into(), json!(d));
        }
        spec.insert("inputSchema".into(), json!({"json": tool.input_schema}));
        tools.push(json!({"toolSpec": spec}));
    }
    let mut config = Map::new();
    config.insert("tools".into(), Value::Array(tools));
    let choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"auto": {}})),
        Some(ToolChoice::Any) => Some(json!({"any": {}})),
        Some(ToolChoice::Tool { name }) => Some(json!({"tool": {"name": name}})),
        Some(ToolChoice::None) => {
            return Err(unsupported("tool_choice", "Converse cannot forbid tool calls while tools are given"));
        }
    };
    if let Some(choice) = choice {
        config.insert("toolChoice".into(), choice);
    }
    Ok(Some(Value::Object(config)))
}
