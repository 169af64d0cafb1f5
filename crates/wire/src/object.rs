//! A JSON object kept as the caller's bytes, with the span of every top-level field, so that a
//! request can be forwarded with a few fields changed and nothing else re-serialised.

use std::borrow::Cow;
use std::collections::HashSet;
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

/// A key's text between its quotes as serde_json writes it: escaped only where JSON requires.
#[inline]
fn written_key(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        return Cow::Borrowed(key);
    }
    let quoted = serde_json::to_string(key).unwrap_or_default();
    Cow::Owned(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_owned())
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

/// A top-level key as serde_json reads it: borrowed from the body when it is written without
/// escapes, decoded into an owned string when it is not.
enum Key<'a> {
    Borrowed(&'a str),
    Decoded(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(k) => k,
            Key::Decoded(k) => k,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, k: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(k))
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key<'de>, E> {
                Ok(Key::Decoded(k.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, k: String) -> Result<Key<'de>, E> {
                Ok(Key::Decoded(k))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The top-level fields in document order, keys decoded, values as their raw text.
struct Fields<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((k, v));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The first key, decoded, that appeared before, in linear time.
fn first_duplicate<'k>(fields: &'k [(Key<'_>, &RawValue)]) -> Option<&'k str> {
    // Few fields, as in every real request: comparing pairs (at most 496) beats hashing.
    if fields.len() <= 32 {
        let mut keys = fields.iter().map(|(k, _)| k.as_str()).enumerate();
        return keys.find(|(i, k)| fields[..*i].iter().any(|(p, _)| p.as_str() == *k)).map(|(_, k)| k);
    }
    let mut seen = HashSet::with_capacity(fields.len());
    fields.iter().map(|(k, _)| k.as_str()).find(|k| !seen.insert(*k))
}

fn span_of(base: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    start..start + part.len()
}

impl RawObject {
    /// Reads a top-level JSON object. Keys are compared decoded, so a key written with escapes
    /// (`"mod\u0065l"`) is the same key as its plain spelling, and a repeated one is refused.
    /// Linear in the size of the body.
    ///
    /// When every key is written plainly (the usual case), the bytes are kept as they are.
    /// Otherwise the object is rewritten once with every key in its plain JSON spelling and
    /// every value's text unchanged, so that fields can still be found by name.
    pub fn parse(raw: Bytes) -> Result<RawObject, ObjectError> {
        let text = std::str::from_utf8(&raw).map_err(|e| ObjectError::Syntax(e.to_string()))?;
        let fields = match serde_json::from_str::<Fields<'_>>(text) {
            Ok(f) => f.0,
            // Valid JSON of another type; anything else is a syntax error.
            Err(e) if e.is_data() => {
                return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                    Ok(_) => Err(ObjectError::NotAnObject),
                    Err(e) => Err(ObjectError::Syntax(e.to_string())),
                };
            }
            Err(e) => return Err(ObjectError::Syntax(e.to_string())),
        };
        if let Some(key) = first_duplicate(&fields) {
            return Err(ObjectError::Duplicate(key.to_owned()));
        }
        if fields.iter().all(|(k, _)| matches!(k, Key::Borrowed(_))) {
            let spans = fields.iter().map(|(k, v)| (span_of(text, k.as_str()), span_of(text, v.get()))).collect();
            return Ok(RawObject { raw, fields: spans });
        }
        Ok(RawObject::canonical(&fields))
    }

    /// The object rewritten with each key in serde_json's spelling (escapes only where JSON
    /// requires them) and each value's text as it was, spans recorded as it is written.
    fn canonical(fields: &[(Key<'_>, &RawValue)]) -> RawObject {
        let size: usize = fields.iter().map(|(k, v)| k.as_str().len() + v.get().len() + 4).sum();
        let mut out = String::with_capacity(size + 2);
        let mut spans = Vec::with_capacity(fields.len());
        out.push('{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            let key_start = out.len();
            out.push_str(&written_key(k.as_str()));
            let key = key_start..out.len();
            out.push_str("\":");
            let value_start = out.len();
            out.push_str(v.get());
            spans.push((key, value_start..out.len()));
        }
        out.push('}');
        RawObject { raw: Bytes::from(out), fields: spans }
    }

    /// The raw JSON text of a top-level field. Only the value's bytes are checked as text
    /// (the whole was checked in `parse`), so a lookup costs the value's length, not the body's.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.span(key).and_then(|s| std::str::from_utf8(&self.raw[s]).ok())
    }

    /// Where a top-level field's value sits in the original bytes.
    pub fn span(&self, key: &str) -> Option<Range<usize>> {
        // Keys are kept as written, and written with escapes only where JSON requires them.
        let written = written_key(key);
        let found = self.fields.iter().find(|(k, _)| self.raw[k.clone()] == *written.as_bytes());
        found.map(|(_, v)| v.clone())
    }

    pub fn bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The object with `edits` applied; untouched bytes are copied as they are.
    pub fn write(&self, edits: &[Edit<'_>]) -> Vec<u8> {
        let text: &[u8] = &self.raw;
        let open = text.iter().position(|b| *b == b'{').map_or(0, |i| i + 1);
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
            out.extend_from_slice(&text[at..pos]);
            out.extend_from_slice(value.as_bytes());
            at = pos + len;
        }
        out.extend_from_slice(&text[at..]);
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

    /// Keys are compared decoded: an escaped spelling does not slip past the duplicate check.
    #[test]
    fn escaped_keys_are_duplicates_of_their_plain_spelling() {
        for body in [
            r#"{"model":"a","mod\u0065l":"b"}"#,
            r#"{"mod\u0065l":"a","model":"b"}"#,
            r#"{"mod\u0065l":"a","\u006dodel":"b"}"#,
            r#"{"x":1,"model":"a","m\u006f\u0064el":"b"}"#,
        ] {
            match RawObject::parse(Bytes::from(body.to_owned())) {
                Err(ObjectError::Duplicate(key)) => assert_eq!(key, "model", "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn escaped_keys_keep_order_values_and_other_keys() {
        let o = obj(
            r#"{ "stre\u0061m" : true, "messages": [ {"role":"user"} ], "a\"b\\c\n": 1, "x": {"k\u0065y": 2.50} }"#,
        );
        assert_eq!(o.get("stream"), Some("true"));
        assert_eq!(o.get("messages"), Some(r#"[ {"role":"user"} ]"#), "value text is kept as written");
        assert_eq!(o.get("x"), Some(r#"{"k\u0065y": 2.50}"#));
        assert_eq!(o.get("a\"b\\c\n"), Some("1"), "a key that needs escapes is found by its decoded name");
        assert_eq!(o.get(r#"a\"b\\c\n"#), None, "and not by its escaped spelling");
        let text = std::str::from_utf8(o.bytes()).unwrap();
        assert_eq!(text, r#"{"stream":true,"messages":[ {"role":"user"} ],"a\"b\\c\n":1,"x":{"k\u0065y": 2.50}}"#);
        let out = o.write(&[Edit::Set("model", r#""m""#.into())]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"model": "m", "stream": true, "messages": [{"role": "user"}], "a\"b\\c\n": 1, "x": {"key": 2.5}})
        );
        // Escaped keys that differ only once decoded are still duplicates.
        assert!(matches!(
            RawObject::parse(Bytes::from_static(br#"{"a\nb":1,"a\u000ab":2}"#)),
            Err(ObjectError::Duplicate(k)) if k == "a\nb"
        ));
    }

    /// A body at the 4 MiB limit made of about 260,000 small distinct fields: the
    /// duplicate check is linear (it used to compare each key with every earlier one, which
    /// took minutes here). No timing is asserted; a quadratic check would not finish.
    #[test]
    fn a_body_of_many_small_fields_parses() {
        let mut body = String::from(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]"#);
        let mut n = 0;
        while body.len() < (4 << 20) - 32 {
            body.push_str(&format!(",\"f{n}\":{n}"));
            n += 1;
        }
        body.push('}');
        assert!(n > 250_000, "{n} fields");
        let o = obj(&body);
        assert_eq!(o.get("f0"), Some("0"));
        assert_eq!(o.get(&format!("f{}", n - 1)), Some(format!("{}", n - 1).as_str()));
        body.pop();
        // One escaped key: the body is rewritten once, still linearly.
        let escaped = obj(&format!(r#"{body},"\u0067":true}}"#));
        assert_eq!(
            (escaped.get("g"), escaped.get("f1"), escaped.get("model")),
            (Some("true"), Some("1"), Some(r#""m""#))
        );
        body.push_str(r#","\u0066\u0037":0}"#);
        assert!(matches!(RawObject::parse(Bytes::from(body)), Err(ObjectError::Duplicate(k)) if k == "f7"));
    }
}
