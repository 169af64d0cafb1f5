//! Canonical stream events → the Responses API's typed SSE events.

use serde_json::{Value, json};

use super::response::{Envelope, call_item, message_item, output_text, status};
use crate::canonical::{BlockKind, ErrorClass, ErrorObject, FinishReason, StreamEvent, Usage};

/// Writes canonical stream events as a Responses stream: `response.created` and
/// `response.in_progress` at the message start; per text block a message item
/// (`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`s,
/// `response.output_text.done`, `response.content_part.done`, `response.output_item.done`);
/// per tool call a `function_call` item (`…added`, `response.function_call_arguments.delta`s
/// and `.done`, `…done`); and at the stop `response.completed` (or `response.incomplete`) with
/// the whole output and usage. Every event has `event:` its type and a `sequence_number`
/// counting from 0. An error is `response.failed` once the response was created (an item cut
/// short is in its output, `incomplete`), else an `error` event; nothing follows it.
#[derive(Debug)]
pub struct StreamEncoder {
    envelope: Envelope,
    sequence: u64,
    created: bool,
    /// The finished output items, in order.
    output: Vec<Value>,
    open: Option<Open>,
    n_calls: usize,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// What is known of the usage from the message start (its input).
    start_usage: Option<Usage>,
    ended: bool,
}

/// The output item being written.
#[derive(Debug)]
enum Open {
    Text { id: String, text: String },
    Call { id: String, call_id: String, name: String, arguments: String },
}

// === impl StreamEncoder ===

impl StreamEncoder {
    pub fn new(envelope: Envelope) -> StreamEncoder {
        StreamEncoder {
            envelope,
            sequence: 0,
            created: false,
            output: Vec::new(),
            open: None,
            n_calls: 0,
            finish: None,
            usage: None,
            start_usage: None,
            ended: false,
        }
    }

    /// Whether the stream has ended (completed or failed).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Appends the bytes of `event` to `out`. Events after the end write nothing.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::MessageStart { usage, .. } => self.start(*usage, out),
            StreamEvent::BlockStart { block, .. } => self.block_start(block, out),
            StreamEvent::TextDelta { text, .. } => {
                if let Some(Open::Text { id, text: all }) = &mut self.open {
                    all.push_str(text);
                    let data = json!({"type": "response.output_text.delta", "item_id": id,
                        "output_index": self.output.len(), "content_index": 0, "delta": text, "logprobs": []});
                    self.write(data, out);
                }
            }
            StreamEvent::ToolInputDelta { partial_json, .. } => {
                if let Some(Open::Call { id, arguments, .. }) = &mut self.open {
                    arguments.push_str(partial_json);
                    let data = json!({"type": "response.function_call_arguments.delta", "item_id": id,
                        "output_index": self.output.len(), "delta": partial_json});
                    self.write(data, out);
                }
            }
            StreamEvent::BlockStop { .. } => self.block_stop(out),
            StreamEvent::MessageDelta { finish, usage } => {
                self.finish = Some(finish.clone());
                self.usage = usage.or(self.start_usage);
            }
            StreamEvent::MessageStop => self.stop(out),
            StreamEvent::Ping => (),
            StreamEvent::Error(error) => self.fail(error, out),
        }
    }

    /// Ends the stream with a failure: `code` and `message` as OpenAI writes an error.
    pub fn fail(&mut self, error: &ErrorObject, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let code = error.code.clone().unwrap_or_else(|| code_of(error.class).to_owned());
        if self.created {
            // An item cut short is in the output as it was, incomplete, without its `.done`s.
            match self.open.take() {
                Some(Open::Text { id, text }) => self.output.push(message_item(&id, "incomplete", Some(&text))),
                Some(Open::Call { id, call_id, name, arguments }) => {
                    self.output.push(call_item(&id, "incomplete", &call_id, &name, &arguments));
                }
                None => (),
            }
            let failure = json!({"code": code, "message": error.message});
            let output = std::mem::take(&mut self.output);
            let response = self.envelope.response("failed", output, self.usage.as_ref(), None, failure);
            self.write(json!({"type": "response.failed", "response": response}), out);
        } else {
            let data = json!({"type": "error", "code": code, "message": error.message, "param": error.param});
            self.write(data, out);
        }
        self.ended = true;
    }

    fn start(&mut self, usage: Option<Usage>, out: &mut Vec<u8>) {
        if self.created {
            return;
        }
        self.created = true;
        self.start_usage = usage;
        let response = self.envelope.response("in_progress", Vec::new(), None, None, Value::Null);
        self.write(json!({"type": "response.created", "response": response}), out);
        let response = self.envelope.response("in_progress", Vec::new(), None, None, Value::Null);
        self.write(json!({"type": "response.in_progress", "response": response}), out);
    }

    fn block_start(&mut self, block: &BlockKind, out: &mut Vec<u8>) {
        self.close_open(out);
        let index = self.output.len();
        match block {
            BlockKind::Text => {
                let id = self.envelope.message_id();
                let id = if self.output.iter().any(|item| item["id"] == id) { format!("{id}_{index}") } else { id };
                let item = message_item(&id, "in_progress", None);
                self.write(json!({"type": "response.output_item.added", "output_index": index, "item": item}), out);
                let data = json!({"type": "response.content_part.added", "item_id": id, "output_index": index,
                    "content_index": 0, "part": output_text("")});
                self.write(data, out);
                self.open = Some(Open::Text { id, text: String::new() });
            }
            BlockKind::ToolUse { id: call_id, name } => {
                let id = self.envelope.call_item_id(self.n_calls);
                self.n_calls += 1;
                let item = call_item(&id, "in_progress", call_id, name, "");
                self.write(json!({"type": "response.output_item.added", "output_index": index, "item": item}), out);
                self.open =
                    Some(Open::Call { id, call_id: call_id.clone(), name: name.clone(), arguments: String::new() });
            }
        }
    }

    fn block_stop(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
    }

    /// Finishes the open item, if any: its `.done` events, and it joins the output.
    fn close_open(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let index = self.output.len();
        let item = match open {
            Open::Text { id, text } => {
                let data = json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                    "content_index": 0, "text": text, "logprobs": []});
                self.write(data, out);
                let data = json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
                    "content_index": 0, "part": output_text(&text)});
                self.write(data, out);
                message_item(&id, "completed", Some(&text))
            }
            Open::Call { id, call_id, name, arguments } => {
                let data = json!({"type": "response.function_call_arguments.done", "item_id": id,
                    "output_index": index, "name": name, "arguments": arguments});
                self.write(data, out);
                call_item(&id, "completed", &call_id, &name, &arguments)
            }
        };
        self.write(json!({"type": "response.output_item.done", "output_index": index, "item": item}), out);
        self.output.push(item);
    }

    fn stop(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        let finish = self.finish.clone().unwrap_or(FinishReason::Stop);
        let status = status(&finish);
        let output = std::mem::take(&mut self.output);
        let usage = self.usage.or(self.start_usage);
        let response = self.envelope.response(status, output, usage.as_ref(), Some(&finish), Value::Null);
        let kind = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.write(json!({"type": kind, "response": response}), out);
        self.ended = true;
    }

    /// Writes one event, numbering it.
    fn write(&mut self, mut data: Value, out: &mut Vec<u8>) {
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        let kind = data["type"].as_str().unwrap_or("error").to_owned();
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(data.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

/// OpenAI's error code for a class, when the error has none of its own.
fn code_of(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::InvalidRequest => "invalid_request_error",
        ErrorClass::ContextLength => "context_length_exceeded",
        ErrorClass::ContentFilter => "content_filter",
        ErrorClass::RateLimit => "rate_limit_exceeded",
        ErrorClass::Overloaded => "server_is_overloaded",
        ErrorClass::Authentication => "invalid_api_key",
        ErrorClass::Permission => "permission_denied",
        ErrorClass::NotFound => "not_found",
        ErrorClass::Server => "server_error",
    }
}
