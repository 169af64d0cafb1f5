//! A JSON object kept as the caller's bytes, with the span of every top-level field, so that a
//! request can be forwarded with a few fields changed and nothing else re-serialised.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A top-level JSON object: the bytes and where each field's key and value sit in them.
#[derive(Clone, Debug)]
pub struct RawObject {
    raw: Bytes,
    /// (key without quotes, value) spans, in document order.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

/// A change to a [`RawObject`] when it is written out.
#[derive(Clone, Debug)]
pub enum Edit<'a> {
    /// Sets a top-level field to this JSON text (replacing it, or adding it first).
    Set(&'a str, String),
    /// Inserts text at this byte offset of the original.
    Insert(usize, String),
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the request body is not valid JSON: {0}")]
    Syntax(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the field '{0}' appears more than once")]
    Duplicate(String),
}

struct Fields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<&'de str, &'de RawValue>()? {
                    fields.push((k, v));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(V)
    }
}

fn span_of(base: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    start..start + part.len()
}

impl RawObject {
    pub fn parse(raw: Bytes) -> Result<RawObject, ObjectError> {
        let text = std::str::from_utf8(&raw).map_err(|e| ObjectError::Syntax(e.to_string()))?;
        let fields = match serde_json::from_str::<Fields<'_>>(text) {
            Ok(f) => f,
            Err(e) => {
                // Keys with escape sequences cannot be borrowed: re-encode them plainly once.
                return match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(serde_json::Value::Object(map)) if e.to_string().contains("borrowed") => {
                        let canonical = serde_json::to_vec(&map).map_err(|e| ObjectError::Syntax(e.to_string()))?;
                        RawObject::parse_plain(Bytes::from(canonical))
                    }
                    Ok(_) => Err(ObjectError::NotAnObject),
                    Err(e) => Err(ObjectError::Syntax(e.to_string())),
                };
            }
        };
        let mut spans = Vec::with_capacity(fields.0.len());
        for (k, v) in fields.0 {
            if spans.iter().any(|(key, _): &(Range<usize>, Range<usize>)| &text[key.clone()] == k) {
                return Err(ObjectError::Duplicate(k.to_owned()));
            }
            spans.push((span_of(text, k), span_of(text, v.get())));
        }
        Ok(RawObject { raw, fields: spans })
    }

    fn parse_plain(raw: Bytes) -> Result<RawObject, ObjectError> {
        let text = std::str::from_utf8(&raw).map_err(|e| ObjectError::Syntax(e.to_string()))?;
        let fields: Fields<'_> = serde_json::from_str(text).map_err(|e| ObjectError::Syntax(e.to_string()))?;
        let spans = fields.0.iter().map(|(k, v)| (span_of(text, k), span_of(text, v.get()))).collect();
        Ok(RawObject { raw, fields: spans })
    }

    fn text(&self) -> &str {
        // Checked in `parse`.
        std::str::from_utf8(&self.raw).unwrap_or("")
    }

    /// The raw JSON text of a top-level field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.span(key).map(|s| &self.text()[s])
    }

    /// Where a top-level field's value sits in the original bytes.
    pub fn span(&self, key: &str) -> Option<Range<usize>> {
        let text = self.text();
        self.fields.iter().find(|(k, _)| &text[k.clone()] == key).map(|(_, v)| v.clone())
    }

    pub fn bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The object with `edits` applied; untouched bytes are copied as they are.
    pub fn write(&self, edits: &[Edit<'_>]) -> Vec<u8> {
        let text = self.text();
        let open = text.find('{').map_or(0, |i| i + 1);
        // (position, replaced length, text), applied in order of position.
        let mut splices: Vec<(usize, usize, &str)> = Vec::with_capacity(edits.len());
        let mut added = String::new();
        let mut added_keys: Vec<(&str, &str)> = Vec::new();
        for edit in edits {
            match edit {
                Edit::Set(key, value) => match self.span(key) {
                    Some(span) => splices.push((span.start, span.len(), value)),
                    None => added_keys.push((key, value)),
                },
                Edit::Insert(at, value) => splices.push((*at, 0, value)),
            }
        }
        for (key, value) in &added_keys {
            added.push('"');
            added.push_str(key);
            added.push_str("\":");
            added.push_str(value);
            added.push(',');
        }
        if self.fields.is_empty() && added.ends_with(',') {
            added.pop();
        }
        splices.push((open, 0, &added));
        splices.sort_by_key(|s| s.0);
        let extra: usize = splices.iter().map(|s| s.2.len()).sum();
        let mut out = Vec::with_capacity(text.len() + extra);
        let mut at = 0;
        for (pos, len, value) in splices {
            out.extend_from_slice(&text.as_bytes()[at..pos]);
            out.extend_from_slice(value.as_bytes());
            at = pos + len;
        }
        out.extend_from_slice(&text.as_bytes()[at..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn obj(text: &str) -> RawObject {
        RawObject::parse(Bytes::from(text.to_owned())).unwrap()
    }

    #[test]
    fn edits_touch_only_what_they_name() {
        let o = obj(r#"{ "model" : "a", "messages": [ {"role":"user"} ], "x": {"deep": [1, 2]} }"#);
        assert_eq!(o.get("model"), Some(r#""a""#));
        let end = o.span("messages").unwrap().end - 1;
        let out = o.write(&[
            Edit::Set("model", r#""b""#.into()),
            Edit::Set("stream", "true".into()),
            Edit::Insert(end, r#",{"role":"assistant"}"#.into()),
        ]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"model": "b", "stream": true, "messages": [{"role": "user"}, {"role": "assistant"}], "x": {"deep": [1, 2]}})
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""x": {"deep": [1, 2]}"#), "untouched bytes stay as they were: {text}");
    }

    #[test]
    fn rejects_duplicates_and_non_objects_and_handles_escaped_keys() {
        assert!(matches!(RawObject::parse(Bytes::from_static(br#"{"a":1,"a":2}"#)), Err(ObjectError::Duplicate(_))));
        assert!(matches!(RawObject::parse(Bytes::from_static(b"[1]")), Err(ObjectError::NotAnObject)));
        assert!(matches!(RawObject::parse(Bytes::from_static(b"{")), Err(ObjectError::Syntax(_))));
        let o = obj(r#"{"mod\u0065l":"a"}"#);
        assert_eq!(o.get("model"), Some(r#""a""#));
    }
}
