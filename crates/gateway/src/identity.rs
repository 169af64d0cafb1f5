//! One identity per caller's stream: the `id`, `created` and `model` of its first chunk that
//! names one (Azure's prompt annotations come first, with an empty `id`), which
//! chunks from a continuation (another deployment finishing the answer) are rewritten to carry,
//! without repeating the assistant's role delta. What really served each part is told apart
//! in the route comment at the end of the stream and in the logs.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The three fields, each kept as its JSON text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) created: String,
    pub(crate) model: String,
}

/// Just the identity fields of a chunk, borrowed; everything else is skipped unread.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    created: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<&'a RawValue>,
}

impl Identity {
    /// The identity a stream takes from its first chunk; `model` when the chunk names none.
    pub(crate) fn of(chunk: &[u8], model: &str) -> Identity {
        let head = serde_json::from_slice::<Head<'_>>(chunk).ok();
        let text = |raw: Option<&RawValue>| raw.map(RawValue::get).filter(|v| *v != "null").map(str::to_owned);
        let (id, created, model_text) = match &head {
            Some(h) => (text(h.id), text(h.created), text(h.model)),
            None => (None, None, None),
        };
        Identity {
            id: id.unwrap_or_else(|| "\"chatcmpl-switchyard\"".to_owned()),
            created: created.unwrap_or_else(|| "0".to_owned()),
            model: model_text.unwrap_or_else(|| Value::from(model).to_string()),
        }
    }

    /// Whether `chunk` names a stream's identity: an `id` that is neither empty nor null.
    /// Azure's first chunk, the prompt's content-filter annotations, has an empty one.
    pub(crate) fn named_in(chunk: &[u8]) -> bool {
        let head = serde_json::from_slice::<Head<'_>>(chunk).ok();
        head.and_then(|h| h.id).is_some_and(|id| !matches!(id.get(), "\"\"" | "null"))
    }

    /// A continuation's chunk under this identity, with no `role` in its deltas. A chunk that
    /// is not a JSON object is returned as it is.
    pub(crate) fn rewrite(&self, chunk: &[u8]) -> Vec<u8> {
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(chunk) else {
            return chunk.to_vec();
        };
        for (name, text) in [("id", &self.id), ("created", &self.created), ("model", &self.model)] {
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                object.insert(name.to_owned(), value);
            }
        }
        if let Some(Value::Array(choices)) = object.get_mut("choices") {
            for choice in choices {
                if let Some(Value::Object(delta)) = choice.get_mut("delta") {
                    delta.remove("role");
                }
            }
        }
        serde_json::to_vec(&object).unwrap_or_else(|_| chunk.to_vec())
    }

    /// The usage chunk that ends a stream, under this identity.
    pub(crate) fn usage_chunk(&self, prompt: u64, completion: u64) -> String {
        format!(
            r#"{{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}}}"#,
            self.id,
            self.created,
            self.model,
            prompt.saturating_add(completion),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continued_chunk_takes_the_streams_identity_and_drops_its_role() {
        let first =
            br#"{"id":"a","created":7,"model":"model-one","choices":[{"delta":{"role":"assistant","content":"Hi"}}]}"#;
        let identity = Identity::of(first, "chat");
        let next = br#"{"id":"b","created":9,"model":"model-two","choices":[{"index":0,"delta":{"role":"assistant","content":" there"}}]}"#;
        let out: Value = serde_json::from_slice(&identity.rewrite(next)).unwrap();
        assert_eq!(out["id"], "a");
        assert_eq!(out["created"], 7);
        assert_eq!(out["model"], "model-one");
        assert_eq!(out["choices"][0]["delta"], serde_json::json!({"content": " there"}));
        assert_eq!(out["choices"][0]["index"], 0);
    }

    #[test]
    fn a_chunk_without_identity_fields_gets_defaults() {
        let identity = Identity::of(b"{}", "chat");
        assert_eq!(identity.model, "\"chat\"");
        assert_eq!(identity.created, "0");
        assert_eq!(identity.rewrite(b"not json"), b"not json");
    }

    #[test]
    fn azures_prompt_annotations_name_no_identity() {
        let annotations = br#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}"#;
        assert!(!Identity::named_in(annotations));
        assert!(!Identity::named_in(br#"{"id":null}"#) && !Identity::named_in(b"{}") && !Identity::named_in(b"[1"));
        assert!(Identity::named_in(br#"{"id":"chatcmpl-1","choices":[]}"#));
    }

    #[test]
    fn the_usage_chunk_is_json_under_the_identity() {
        let identity = Identity::of(br#"{"id":"x\"y","created":5,"model":"m"}"#, "chat");
        let chunk: Value = serde_json::from_str(&identity.usage_chunk(3, 4)).unwrap();
        assert_eq!(chunk["id"], "x\"y");
        assert_eq!(chunk["usage"]["total_tokens"], 7);
        assert_eq!(chunk["choices"], serde_json::json!([]));
    }
}
