//! Reading a caller's JSON request for the codecs: each refusal names the parameter and the
//! path to the value at fault.

use std::fmt::Display;

use serde_json::{Map, Value};

use crate::canonical::{Image, ImageSource};
use crate::chat::RequestError;

/// A refusal: `param` is the top-level field, `path` where inside it.
pub(crate) fn bad(param: &'static str, path: impl Display, what: impl Display) -> RequestError {
    RequestError { message: format!("{path}: {what}"), param: Some(param) }
}

/// The body as a JSON object.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError { message: "the request body must be a JSON object".into(), param: None }),
        Err(e) => Err(RequestError { message: format!("the request body is not valid JSON: {e}"), param: None }),
    }
}

/// Whether a value means "not given": `null`, or an empty array or object (as SDKs echo back).
pub(crate) fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => false,
    }
}

/// Removes a field; `null` reads as absent.
pub(crate) fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    map.remove(key).filter(|v| !v.is_null())
}

/// Refuses a field the codec does not know, unless it is unset.
pub(crate) fn only(
    map: &Map<String, Value>,
    known: &[&str],
    param: &'static str,
    path: impl Display,
) -> Result<(), RequestError> {
    match map.iter().find(|(k, v)| !known.contains(&k.as_str()) && !is_unset(v)) {
        None => Ok(()),
        Some((key, _)) => Err(bad(param, format_args!("{path}.{key}"), "is not supported here")),
    }
}

pub(crate) fn as_object<'a>(
    value: &'a Value,
    param: &'static str,
    path: impl Display,
) -> Result<&'a Map<String, Value>, RequestError> {
    value.as_object().ok_or_else(|| bad(param, path, "must be an object"))
}

pub(crate) fn as_array<'a>(
    value: &'a Value,
    param: &'static str,
    path: impl Display,
) -> Result<&'a Vec<Value>, RequestError> {
    value.as_array().ok_or_else(|| bad(param, path, "must be an array"))
}

pub(crate) fn as_str<'a>(value: &'a Value, param: &'static str, path: impl Display) -> Result<&'a str, RequestError> {
    value.as_str().ok_or_else(|| bad(param, path, "must be a string"))
}

/// A string field of an object, required.
pub(crate) fn str_field(
    map: &Map<String, Value>,
    key: &str,
    param: &'static str,
    path: impl Display,
) -> Result<String, RequestError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Err(bad(param, format_args!("{path}.{key}"), "is required")),
        Some(_) => Err(bad(param, format_args!("{path}.{key}"), "must be a string")),
    }
}

/// A string field of an object, optional.
pub(crate) fn opt_str_field(
    map: &Map<String, Value>,
    key: &str,
    param: &'static str,
    path: impl Display,
) -> Result<Option<String>, RequestError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(bad(param, format_args!("{path}.{key}"), "must be a string")),
    }
}

pub(crate) fn boolean(value: &Value, param: &'static str) -> Result<bool, RequestError> {
    value.as_bool().ok_or_else(|| bad(param, param, "must be a boolean"))
}

pub(crate) fn number(value: &Value, param: &'static str) -> Result<f64, RequestError> {
    value.as_f64().ok_or_else(|| bad(param, param, "must be a number"))
}

pub(crate) fn count(value: &Value, param: &'static str) -> Result<u32, RequestError> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(param, param, "must be a non-negative integer"))
}

pub(crate) fn positive(value: &Value, param: &'static str) -> Result<u32, RequestError> {
    match count(value, param)? {
        0 => Err(bad(param, param, "must be a positive integer")),
        n => Ok(n),
    }
}

/// A string or an array of strings (`stop`).
pub(crate) fn strings(value: &Value, param: &'static str) -> Result<Vec<String>, RequestError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| as_str(v, param, format_args!("{param}[{i}]")).map(str::to_owned))
            .collect(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => {
            Err(bad(param, param, "must be a string or an array of strings"))
        }
    }
}

/// An image named by a URL: a `data:<media type>;base64,<data>` URL becomes inline data.
pub(crate) fn image_from_url(url: &str) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() };
    }
    ImageSource::Url(url.to_owned())
}

/// An image as a URL: inline data as a `data:` URL.
pub(crate) fn image_url(image: &Image) -> String {
    match &image.source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url(url) => url.clone(),
    }
}
