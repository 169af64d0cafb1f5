//! Deterministic JSON from a JSON schema: a tool call's arguments and a structured answer. The
//! required properties of each object are filled by their schema: strings from the words of
//! the conversation, numbers within their bounds, `true`, the first `enum` value, nested
//! objects and arrays of one item. The same schema and words always give the same value.

use serde_json::{Map, Number, Value, json};

/// How deep a schema is followed; deeper values are `null`.
const MAX_DEPTH: usize = 12;
/// The longest string taken whole from the conversation.
const MAX_STRING: usize = 80;

/// A value for `schema`, its strings drawn in turn from `words` (see [`subjects`]).
pub(crate) fn fill(schema: &Value, words: &[String]) -> Value {
    let mut filler = Filler { words, next: 0 };
    filler.value(schema, 0)
}

/// The strings a question offers, best first: its capitalised words after the first (names:
/// "Weather in Paris?" offers "Paris"), or else the whole text, cut to a sensible length.
pub(crate) fn subjects(text: &str) -> Vec<String> {
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    let names: Vec<String> = words
        .iter()
        .skip(1)
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .map(|w| (*w).to_owned())
        .collect();
    if !names.is_empty() {
        return names;
    }
    let whole = text.trim();
    if whole.is_empty() {
        return vec!["example".to_owned()];
    }
    let mut end = whole.len().min(MAX_STRING);
    while !whole.is_char_boundary(end) {
        end -= 1;
    }
    vec![whole[..end].to_owned()]
}

struct Filler<'a> {
    words: &'a [String],
    next: usize,
}

impl Filler<'_> {
    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        let Value::Object(s) = schema else { return self.string(None) };
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(value) = s.get("const") {
            return value.clone();
        }
        if let Some(Value::Array(values)) = s.get("enum")
            && let Some(first) = values.first()
        {
            return first.clone();
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(variants)) = s.get(key) {
                let variant = variants.iter().find(|v| v.get("type") != Some(&json!("null"))).or(variants.first());
                if let Some(variant) = variant {
                    return self.value(variant, depth + 1);
                }
            }
        }
        let kind = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(types)) => {
                types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null")
            }
            _ if s.contains_key("properties") => "object",
            _ if s.contains_key("items") => "array",
            _ => "string",
        };
        match kind {
            "object" => self.object(s, depth),
            "array" => {
                let n = s.get("minItems").and_then(Value::as_u64).unwrap_or(1).clamp(1, 3);
                let items = s.get("items").cloned().unwrap_or_else(|| json!({"type": "string"}));
                Value::Array((0..n).map(|_| self.value(&items, depth + 1)).collect())
            }
            "integer" => {
                let low = s.get("minimum").and_then(Value::as_i64).unwrap_or(1);
                let high = s.get("maximum").and_then(Value::as_i64).unwrap_or(i64::MAX);
                json!(low.max(1).min(high))
            }
            "number" => {
                let low = s.get("minimum").and_then(Value::as_f64).unwrap_or(1.5);
                let high = s.get("maximum").and_then(Value::as_f64).unwrap_or(f64::MAX);
                Number::from_f64(low.max(1.5).min(high)).map_or(Value::Null, Value::Number)
            }
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => self.string(s.get("format").and_then(Value::as_str)),
        }
    }

    fn object(&mut self, s: &Map<String, Value>, depth: usize) -> Value {
        let empty = Map::new();
        let properties = s.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let mut out = Map::new();
        for name in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            let value = match properties.get(name) {
                Some(schema) => self.value(schema, depth + 1),
                None => self.string(None),
            };
            out.insert(name.to_owned(), value);
        }
        Value::Object(out)
    }

    fn string(&mut self, format: Option<&str>) -> Value {
        let fixed = match format {
            Some("date") => "2025-01-01",
            Some("date-time") => "2025-01-01T00:00:00Z",
            Some("time") => "12:00:00",
            Some("email") => "user@example.com",
            Some("uri" | "url") => "https://example.com/",
            Some("uuid") => "00000000-0000-4000-8000-000000000000",
            _ => {
                let word = self.words.get(self.next % self.words.len().max(1)).cloned();
                self.next += 1;
                return Value::String(word.unwrap_or_else(|| "example".to_owned()));
            }
        };
        Value::String(fixed.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_properties_are_filled_by_type() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 3, "maximum": 10},
                "detailed": {"type": "boolean"},
                "ratio": {"type": "number", "maximum": 1.0},
                "when": {"type": "string", "format": "date"},
                "place": {"type": "object", "properties": {"country": {"type": ["string", "null"]}}, "required": ["country"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "optional": {"type": "string"},
            },
            "required": ["city", "unit", "days", "detailed", "ratio", "when", "place", "tags"],
        });
        let words = subjects("What is the weather in Paris and Lyon?");
        assert_eq!(words, ["Paris", "Lyon"]);
        let value = fill(&schema, &words);
        assert_eq!(
            value,
            json!({
                "city": "Paris", "unit": "celsius", "days": 3, "detailed": true, "ratio": 1.0,
                "when": "2025-01-01", "place": {"country": "Lyon"}, "tags": ["Paris"],
            })
        );
        assert_eq!(fill(&schema, &words), value, "deterministic");
    }

    #[test]
    fn subjects_fall_back_to_the_text() {
        assert_eq!(subjects("  tell me a joke "), ["tell me a joke"]);
        assert_eq!(subjects(""), ["example"]);
        assert_eq!(subjects(&"é".repeat(100)).first().map(String::len), Some(80));
        assert_eq!(fill(&json!({}), &[]), json!("example"));
        assert_eq!(fill(&json!({"type": "object"}), &[]), json!({}));
    }
}
