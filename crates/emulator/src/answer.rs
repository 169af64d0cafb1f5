//! What to answer, whatever the protocol. A front end (`openai.rs`, `anthropic.rs`,
//! `bedrock.rs`) decodes a request into an [`Ask`]; [`plan`] decides, from it, the deployment's
//! settings and its active faults, either a [`Refusal`] (an emulated status, context length, a
//! content filter, a prefill this deployment refuses) or an [`Answer`] with its timing: the
//! conversation's deterministic words, a JSON answer, or a call of a tool with arguments
//! built from its schema; its finish reason and usage. The front end then only encodes.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::config::{Fault, FaultKind};
use switchyard_core::rng::{Rng, SplitMix64, stable_hash};
use switchyard_wire::canonical::{FinishReason, OutputPart, Response, ToolUse, Usage};

use crate::text::{answer_tokens, remainder_after};
use crate::{EmulatedDeployment, Seen, schema};

/// Bytes of a JSON answer or tool arguments per piece streamed: about a token's worth.
const JSON_PIECE: usize = 4;

/// A request, as far as its answer depends on it.
#[derive(Clone, Debug)]
pub(crate) struct Ask {
    /// The conversation's key ([`crate::conversation_key`]), without a prefill.
    pub(crate) key: u64,
    /// A trailing assistant message to be continued.
    pub(crate) prefill: Option<String>,
    pub(crate) input_tokens: u32,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) stream: bool,
    pub(crate) shape: Shape,
    /// The last user turn's text: where a tool call's strings come from.
    pub(crate) user_text: String,
}

/// What kind of answer is asked for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Shape {
    Text,
    /// `response_format` `json_object`.
    JsonObject,
    /// `response_format` `json_schema`, with its schema.
    JsonSchema(Value),
    /// Tools are offered, the choice allows a call, and the user spoke last: this tool is called.
    Tool {
        name: String,
        schema: Value,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Content {
    /// Text, as the pieces streamed (tokens).
    Text(Vec<String>),
    /// One tool call; its JSON arguments in the pieces streamed.
    Tool { id: String, name: String, pieces: Vec<String> },
}

/// A decided answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) content: Content,
    pub(crate) finish: FinishReason,
    pub(crate) usage: Usage,
}

/// Why a request gets an error instead of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is taken and the queue full.
    Capacity { retry_after: Duration },
    /// The fault plan's error status.
    Status { status: u16, retry_after: Option<Duration> },
    /// The prompt and the output asked for exceed the window, or the fault plan says so.
    ContextLength { input: u32, max_tokens: u32, window: u32 },
    /// The content filter, for protocols that refuse with an error (OpenAI's 400).
    ContentFilter,
    /// The deployment does not continue prefills.
    PrefillRejected,
}

/// An answer to give and how.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) answer: Answer,
    pub(crate) ttft: Duration,
    pub(crate) per_token: Duration,
    /// The faults that play during the answer (stalls, cuts, ...).
    pub(crate) faults: Vec<FaultKind>,
    pub(crate) prefill: bool,
    /// What is recorded when the answer is given: `Completed`, or `ContentFilter` for an
    /// answer the filter ended.
    pub(crate) outcome: Seen,
    /// A random number for the answer's id.
    pub(crate) nonce: u64,
}

pub(crate) enum Verdict {
    Answer(Box<Plan>),
    Refuse(Refusal, Seen),
    /// 200 with a body that is not the protocol's.
    Garbage,
}

// === impl Answer ===

impl Answer {
    /// The pieces streamed, one per token's time.
    pub(crate) fn pieces(&self) -> &[String] {
        match &self.content {
            Content::Text(pieces) | Content::Tool { pieces, .. } => pieces,
        }
    }

    pub(crate) fn text(&self) -> String {
        match &self.content {
            Content::Text(pieces) => pieces.concat(),
            Content::Tool { .. } => String::new(),
        }
    }

    /// The whole answer in the canonical model, for the protocols that encode from it.
    pub(crate) fn response(&self, id: String, model: String) -> Response {
        let content = match &self.content {
            Content::Text(pieces) if pieces.is_empty() => Vec::new(),
            Content::Text(_) => vec![OutputPart::Text(self.text())],
            Content::Tool { id, name, pieces } => {
                let input = serde_json::from_str(&pieces.concat()).unwrap_or_else(|_| json!({}));
                vec![OutputPart::ToolUse(ToolUse { id: id.clone(), name: name.clone(), input })]
            }
        };
        Response { id, model, content, finish: self.finish.clone(), usage: Some(self.usage) }
    }
}

/// Decides what `ask` gets from `dep` with `faults` active. `in_band_filter`: the protocol
/// reports a content filter as an answer's finish reason, not as an error. `id_prefix` begins
/// a tool call's id (`call_`, `toolu_`, `tooluse_`).
pub(crate) fn plan(
    dep: &EmulatedDeployment,
    ask: &Ask,
    faults: &[Fault],
    in_band_filter: bool,
    id_prefix: &str,
) -> Verdict {
    let has = |pred: fn(&FaultKind) -> bool| faults.iter().find(|f| pred(&f.kind)).map(|f| f.kind);
    if let Some(FaultKind::Error { status, retry_after }) = has(|k| matches!(k, FaultKind::Error { .. })) {
        return Verdict::Refuse(Refusal::Status { status, retry_after }, Seen::ErrorStatus(status));
    }
    let max_tokens = ask.max_tokens.unwrap_or(0);
    let needed = ask.input_tokens.saturating_add(max_tokens);
    if has(|k| matches!(k, FaultKind::ContextLength)).is_some() || needed > dep.context_window {
        let refusal = Refusal::ContextLength { input: ask.input_tokens, max_tokens, window: dep.context_window };
        return Verdict::Refuse(refusal, Seen::ContextLength);
    }
    if has(|k| matches!(k, FaultKind::Garbage)).is_some() {
        return Verdict::Garbage;
    }
    let filtered = has(|k| matches!(k, FaultKind::ContentFilter)).is_some();
    if filtered && !in_band_filter {
        return Verdict::Refuse(Refusal::ContentFilter, Seen::ContentFilter);
    }
    if ask.prefill.is_some() && dep.spec.reject_prefill && !filtered {
        return Verdict::Refuse(Refusal::PrefillRejected, Seen::PrefillRejected);
    }
    let answer = if filtered {
        Answer {
            content: Content::Text(Vec::new()),
            finish: FinishReason::ContentFilter,
            usage: usage(ask.input_tokens, 0),
        }
    } else {
        decide(ask, dep.spec.answer_tokens, id_prefix)
    };
    let slow = faults
        .iter()
        .find_map(|f| match f.kind {
            FaultKind::SlowFirstToken { delay } => Some(delay),
            _ => None,
        })
        .unwrap_or(Duration::ZERO);
    // Sampled in this order, as they always were: seeded runs keep their timing.
    let ttft = Duration::from_secs_f64(dep.sample(&dep.spec.ttft_ms).max(0.0) / 1000.0) + slow;
    let per_token = Duration::from_secs_f64(1.0 / dep.sample(&dep.spec.tokens_per_s).max(0.1));
    // After the timing draws, so seeded timing is as before; a full word, so ids differ.
    let nonce = dep.rng.lock().map_or(0, |mut rng| rng.next_u64());
    Verdict::Answer(Box::new(Plan {
        answer,
        ttft,
        per_token,
        faults: faults.iter().map(|f| f.kind).collect(),
        prefill: ask.prefill.is_some(),
        outcome: if filtered { Seen::ContentFilter } else { Seen::Completed },
        nonce,
    }))
}

/// The answer to `ask`, for answers of `range` tokens.
pub(crate) fn decide(ask: &Ask, range: (u32, u32), id_prefix: &str) -> Answer {
    let words = || answer_tokens(ask.key, range);
    let (mut content, mut finish) = match &ask.shape {
        Shape::Tool { name, schema } if ask.prefill.is_none() => {
            let mut arguments = schema::fill(schema, &schema::subjects(&ask.user_text));
            if !arguments.is_object() {
                arguments = json!({});
            }
            let id = call_id(id_prefix, ask.key ^ stable_hash(name.as_bytes()));
            let pieces = split(&arguments.to_string());
            (Content::Tool { id, name: name.clone(), pieces }, FinishReason::ToolUse)
        }
        Shape::JsonObject => {
            let text = json!({"answer": words().concat()}).to_string();
            (Content::Text(split(&text)), FinishReason::Stop)
        }
        Shape::JsonSchema(schema) => {
            let mut subjects = schema::subjects(&ask.user_text);
            subjects.push(words().concat());
            let text = schema::fill(schema, &subjects).to_string();
            (Content::Text(split(&text)), FinishReason::Stop)
        }
        Shape::Text | Shape::Tool { .. } => (Content::Text(words()), FinishReason::Stop),
    };
    if let (Content::Text(pieces), Some(prefill)) = (&mut content, &ask.prefill)
        && let Some(rest) = remainder_after(pieces, prefill)
    {
        *pieces = rest;
    }
    let pieces = match &mut content {
        Content::Text(pieces) | Content::Tool { pieces, .. } => pieces,
    };
    if let Some(max) = ask.max_tokens
        && pieces.len() > max as usize
    {
        pieces.truncate(max as usize);
        finish = FinishReason::Length;
    }
    let output = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    Answer { content, finish, usage: usage(ask.input_tokens, output) }
}

fn usage(input: u32, output: u32) -> Usage {
    Usage { input_tokens: u64::from(input), output_tokens: u64::from(output), ..Usage::default() }
}

/// `text` in pieces of about [`JSON_PIECE`] bytes, cut at character boundaries.
fn split(text: &str) -> Vec<String> {
    let mut pieces = Vec::with_capacity(text.len() / JSON_PIECE + 1);
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + JSON_PIECE).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(text[start..end].to_owned());
        start = end;
    }
    pieces
}

/// A tool call's id: the protocol's prefix and 24 letters and digits from `seed`.
fn call_id(prefix: &str, seed: u64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = SplitMix64::new(seed);
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    id.extend((0..24).map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())])));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(shape: Shape) -> Ask {
        Ask {
            key: 7,
            prefill: None,
            input_tokens: 10,
            max_tokens: None,
            stream: false,
            shape,
            user_text: "Weather in Paris?".into(),
        }
    }

    #[test]
    fn a_tool_is_called_with_arguments_from_its_schema() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let answer = decide(&ask(Shape::Tool { name: "get_weather".into(), schema }), (12, 12), "call_");
        let Content::Tool { id, name, pieces } = &answer.content else { panic!("{answer:?}") };
        assert!(id.starts_with("call_") && id.len() == 29, "{id}");
        assert_eq!(name, "get_weather");
        assert!(pieces.len() > 2, "streamed in several pieces: {pieces:?}");
        assert_eq!(pieces.concat(), r#"{"city":"Paris"}"#);
        assert_eq!(answer.finish, FinishReason::ToolUse);
        assert_eq!(answer.usage.output_tokens, pieces.len() as u64);
    }

    #[test]
    fn json_answers_are_valid_json_when_joined() {
        let object = decide(&ask(Shape::JsonObject), (12, 12), "");
        let value: Value = serde_json::from_str(&object.text()).unwrap();
        assert_eq!(value["answer"], answer_tokens(7, (12, 12)).concat());
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
            "required": ["n", "s"]});
        let filled = decide(&ask(Shape::JsonSchema(schema)), (12, 12), "");
        assert_eq!(serde_json::from_str::<Value>(&filled.text()).unwrap(), json!({"n": 1, "s": "Paris"}));
        assert!(filled.pieces().len() > 1);
    }

    #[test]
    fn prefills_continue_and_max_tokens_cut() {
        let full = decide(&ask(Shape::Text), (12, 12), "").text();
        let mut continued = ask(Shape::Text);
        continued.prefill = Some(full[..7].to_owned());
        assert_eq!(format!("{}{}", &full[..7], decide(&continued, (12, 12), "").text()), full);
        let mut short = ask(Shape::Text);
        short.max_tokens = Some(3);
        let cut = decide(&short, (12, 12), "");
        assert_eq!((cut.pieces().len(), cut.finish), (3, FinishReason::Length));
        let pieces = split("héllo wörld");
        assert_eq!(pieces.concat(), "héllo wörld");
        assert!(pieces.iter().all(|p| (4..=5).contains(&p.len()) || p == pieces.last().unwrap()), "{pieces:?}");
    }
}
