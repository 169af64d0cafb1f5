//! One identity per caller's stream: the `id`, `created` and `model` of its first chunk, which
//! chunks from a continuation (another deployment finishing the answer) are rewritten to carry,
//! without repeating the assistant's role delta. What really served each part is told apart
//! in the route comment at the end of the stream and in the logs.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Identity {
    pub(crate) id: Value,
    pub(crate) created: Value,
    pub(crate) model: Value,
}

impl Identity {
    /// The identity a stream takes from its first chunk; `model` when the chunk names none.
    pub(crate) fn of(chunk: &[u8], model: &str) -> Identity {
        let value: Value = serde_json::from_slice(chunk).unwrap_or(Value::Null);
        let field = |name: &str| value.get(name).filter(|v| !v.is_null()).cloned();
        Identity {
            id: field("id").unwrap_or_else(|| Value::from("chatcmpl-switchyard")),
            created: field("created").unwrap_or_else(|| Value::from(0)),
            model: field("model").unwrap_or_else(|| Value::from(model)),
        }
    }

    /// A continuation's chunk under this identity, with no `role` in its deltas. A chunk that
    /// is not a JSON object is returned as it is.
    pub(crate) fn rewrite(&self, chunk: &[u8]) -> Vec<u8> {
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(chunk) else {
            return chunk.to_vec();
        };
        object.insert("id".to_owned(), self.id.clone());
        object.insert("created".to_owned(), self.created.clone());
        object.insert("model".to_owned(), self.model.clone());
        if let Some(Value::Array(choices)) = object.get_mut("choices") {
            for choice in choices {
                if let Some(Value::Object(delta)) = choice.get_mut("delta") {
                    delta.remove("role");
                }
            }
        }
        serde_json::to_vec(&object).unwrap_or_else(|_| chunk.to_vec())
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
        assert_eq!(identity.model, "chat");
        assert_eq!(identity.created, 0);
        assert_eq!(identity.rewrite(b"not json"), b"not json");
    }
}
