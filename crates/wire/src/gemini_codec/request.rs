//! `GenerateContentRequest` bodies ⇄ canonical requests: the system instruction,
//! `generationConfig`, `tools` and `toolConfig`.

use serde_json::{Map, Value, json};

use super::content::{read_contents, unsupported, write_contents};
use crate::canonical::{Extra, Protocol, Request, ResponseFormat, Role, Tool, ToolChoice, Unsupported};
use crate::chat::RequestError;
use crate::read::{as_array, as_object, as_str, bad, is_unset, object, only, opt_str_field, positive, str_field, take};

pub(super) const TARGET: Protocol = Protocol::Gemini;

/// Reads a `generateContent` body. `model` comes from the URL path and `stream` from the
/// method called (`streamGenerateContent` or `generateContent`). Fields the model has no place
/// for (`safetySettings`, `cachedContent`, `labels`, ...) are kept in [`Request::extra`]. A
/// final `model` turn is read as history, not as a prefill: Gemini does not continue it.
pub fn decode_request(body: &[u8], model: &str, stream: bool) -> Result<Request, RequestError> {
    if model.is_empty() {
        return Err(bad("model", "model", "must be a non-empty string"));
    }
    let mut body = object(body)?;
    let mut request = Request { model: model.to_owned(), stream, include_usage: true, ..Request::default() };
    let Some(contents) = take(&mut body, "contents") else {
        return Err(bad("contents", "contents", "is required"));
    };
    let contents = as_array(&contents, "contents", "contents")?;
    if contents.is_empty() {
        return Err(bad("contents", "contents", "must contain at least one content"));
    }
    request.messages = read_contents(contents)?;
    if let Some(system) = take(&mut body, "systemInstruction").or_else(|| take(&mut body, "system_instruction")) {
        let s = as_object(&system, "systemInstruction", "systemInstruction")?;
        let parts = as_array(s.get("parts").unwrap_or(&Value::Null), "systemInstruction", "systemInstruction.parts")?;
        for (i, part) in parts.iter().enumerate() {
            let at = format!("systemInstruction.parts[{i}]");
            let p = as_object(part, "systemInstruction", &at)?;
            request.system.push(str_field(p, "text", "systemInstruction", &at)?);
        }
    }
    if let Some(config) = take(&mut body, "generationConfig") {
        read_generation(&mut request, &config)?;
    }
    if let Some(tools) = take(&mut body, "tools") {
        for (i, tool) in as_array(&tools, "tools", "tools")?.iter().enumerate() {
            let at = format!("tools[{i}]");
            let t = as_object(tool, "tools", &at)?;
            only(t, &["functionDeclarations"], "tools", &at)?;
            let declarations = t.get("functionDeclarations").unwrap_or(&Value::Null);
            for (j, f) in as_array(declarations, "tools", format_args!("{at}.functionDeclarations"))?.iter().enumerate()
            {
                request.tools.push(read_tool(f, &format!("{at}.functionDeclarations[{j}]"))?);
            }
        }
    }
    if let Some(config) = take(&mut body, "toolConfig") {
        request.tool_choice = read_tool_config(&config)?;
    }
    body.retain(|_, value| !is_unset(value));
    if !body.is_empty() {
        request.extra = Some(Extra { protocol: TARGET, fields: body });
    }
    Ok(request)
}

fn read_generation(request: &mut Request, config: &Value) -> Result<(), RequestError> {
    const AT: &str = "generationConfig";
    let c = as_object(config, AT, AT)?;
    let known =
        ["temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "responseMimeType", "responseSchema"];
    only(c, &known, AT, AT)?;
    let number = |key: &str| match c.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(AT, format_args!("{AT}.{key}"), "must be a number")),
    };
    request.sampling.temperature = number("temperature")?;
    request.sampling.top_p = number("topP")?;
    if let Some(k) = number("topK")? {
        if k < 0.0 || k.fract() != 0.0 || k > f64::from(u32::MAX) {
            return Err(bad(AT, "generationConfig.topK", "must be a non-negative integer"));
        }
        // In range and whole: the cast is exact.
        request.sampling.top_k = Some(k as u32);
    }
    if let Some(n) = c.get("maxOutputTokens").filter(|v| !v.is_null()) {
        request.max_tokens = Some(
            positive(n, AT).map_err(|_| bad(AT, "generationConfig.maxOutputTokens", "must be a positive integer"))?,
        );
    }
    if let Some(stops) = c.get("stopSequences").filter(|v| !v.is_null()) {
        for (i, stop) in as_array(stops, AT, "generationConfig.stopSequences")?.iter().enumerate() {
            request.stop.push(as_str(stop, AT, format_args!("{AT}.stopSequences[{i}]"))?.to_owned());
        }
    }
    let schema = c.get("responseSchema").filter(|v| !v.is_null());
    match (opt_str_field(c, "responseMimeType", AT, AT)?.as_deref(), schema) {
        (None | Some("text/plain"), None) => (),
        (Some("application/json"), None) => request.response_format = Some(ResponseFormat::JsonObject),
        (Some("application/json"), Some(schema)) => {
            request.response_format = Some(ResponseFormat::JsonSchema {
                name: "response".into(),
                description: None,
                schema: schema.clone(),
                strict: None,
            });
        }
        (_, Some(_)) => {
            return Err(bad(AT, "generationConfig.responseSchema", "needs responseMimeType application/json"));
        }
        (Some(other), None) => {
            return Err(bad(AT, "generationConfig.responseMimeType", format!("'{other}' is not supported")));
        }
    }
    Ok(())
}

fn read_tool(f: &Value, at: &str) -> Result<Tool, RequestError> {
    let d = as_object(f, "tools", at)?;
    only(d, &["name", "description", "parameters"], "tools", at)?;
    let input_schema = match d.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(schema @ Value::Object(_)) => schema.clone(),
        Some(_) => return Err(bad("tools", format_args!("{at}.parameters"), "must be a schema object")),
    };
    Ok(Tool {
        name: str_field(d, "name", "tools", at)?,
        description: opt_str_field(d, "description", "tools", at)?,
        input_schema,
        strict: None,
    })
}

fn read_tool_config(config: &Value) -> Result<Option<ToolChoice>, RequestError> {
    const AT: &str = "toolConfig.functionCallingConfig";
    let c = as_object(config, "toolConfig", "toolConfig")?;
    only(c, &["functionCallingConfig"], "toolConfig", "toolConfig")?;
    let Some(f) = c.get("functionCallingConfig").filter(|v| !v.is_null()) else { return Ok(None) };
    let f = as_object(f, "toolConfig", AT)?;
    only(f, &["mode", "allowedFunctionNames"], "toolConfig", AT)?;
    let names: Vec<&str> = match f.get("allowedFunctionNames").filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(names) => as_array(names, "toolConfig", format_args!("{AT}.allowedFunctionNames"))?
            .iter()
            .map(|n| as_str(n, "toolConfig", format_args!("{AT}.allowedFunctionNames")))
            .collect::<Result<_, _>>()?,
    };
    let mode = f.get("mode").and_then(Value::as_str).unwrap_or("AUTO");
    Ok(Some(match (mode, names.as_slice()) {
        ("AUTO" | "MODE_UNSPECIFIED", []) => ToolChoice::Auto,
        ("NONE", []) => ToolChoice::None,
        ("ANY", []) => ToolChoice::Any,
        ("ANY", [name]) => ToolChoice::Tool { name: (*name).to_owned() },
        ("ANY", _) => {
            return Err(bad("toolConfig", format_args!("{AT}.allowedFunctionNames"), "at most one is supported"));
        }
        (_, [_, ..]) => return Err(bad("toolConfig", format_args!("{AT}.allowedFunctionNames"), "only with mode ANY")),
        (other, []) => return Err(bad("toolConfig", format_args!("{AT}.mode"), format!("'{other}' is not supported"))),
    }))
}

// === encoding ===

/// Writes a canonical request as a `generateContent` body (the model goes in the URL, and
/// whether to stream in the method called).
pub fn encode_request(request: &Request) -> Result<Value, Unsupported> {
    if request.prefill {
        return Err(unsupported(
            format!("messages[{}]", request.messages.len().saturating_sub(1)),
            "Gemini cannot continue a final model message (prefill)",
        ));
    }
    if request.messages.last().is_some_and(|m| m.role == Role::Assistant) {
        return Err(unsupported(
            format!("messages[{}]", request.messages.len() - 1),
            "Gemini answers a user turn; the conversation cannot end with the model's",
        ));
    }
    if request.parallel_tool_calls.is_some() {
        return Err(unsupported("parallel_tool_calls", "Gemini has no parallel tool call setting"));
    }
    if request.user_id.is_some() {
        return Err(unsupported("user", "Gemini takes no end-user id"));
    }
    let extra = request.check_extra(TARGET)?;
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(write_contents(&request.messages)?));
    if !request.system.is_empty() {
        let parts: Vec<Value> = request.system.iter().map(|t| json!({"text": t})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    let mut config = Map::new();
    if let Some(t) = request.sampling.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.sampling.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(k) = request.sampling.top_k {
        config.insert("topK".into(), json!(k));
    }
    if let Some(n) = request.max_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), json!(request.stop));
    }
    match &request.response_format {
        None => (),
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseSchema".into(), schema.clone());
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    write_tools(request, &mut body)?;
    for (key, value) in extra.into_iter().flatten() {
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Ok(Value::Object(body))
}

fn write_tools(request: &Request, body: &mut Map<String, Value>) -> Result<(), Unsupported> {
    if request.tools.is_empty() {
        return match request.tool_choice {
            None | Some(ToolChoice::Auto | ToolChoice::None) => Ok(()),
            Some(ToolChoice::Any | ToolChoice::Tool { .. }) => {
                Err(unsupported("tool_choice", "Gemini takes a function calling mode only with tools"))
            }
        };
    }
    let mut declarations = Vec::with_capacity(request.tools.len());
    for (i, tool) in request.tools.iter().enumerate() {
        if tool.strict == Some(true) {
            return Err(unsupported(format!("tools[{i}].strict"), "Gemini has no strict function schemas"));
        }
        let mut d = Map::new();
        d.insert("name".into(), json!(tool.name));
        if let Some(description) = &tool.description {
            d.insert("description".into(), json!(description));
        }
        d.insert("parameters".into(), tool.input_schema.clone());
        declarations.push(Value::Object(d));
    }
    body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
    let config = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
        Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
        Some(ToolChoice::Any) => Some(json!({"mode": "ANY"})),
        Some(ToolChoice::Tool { name }) => Some(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
    };
    if let Some(config) = config {
        body.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
    }
    Ok(())
}
