//! Wire formats: the OpenAI Chat Completions and Embeddings shapes, SSE framing, OpenAI-shaped
//! errors and token estimates, and the canonical model with its protocol codecs (OpenAI Chat,
//! Anthropic, Bedrock, Gemini, OCI Generative AI's native chat, and OpenAI's Responses API inbound). Pure: bytes and JSON in, typed
//! views out. Embeddings in the clouds' own APIs: `embed_codec`.

pub mod anthropic_codec;
pub mod bedrock_codec;
pub mod canonical;
pub mod chat;
pub mod display;
pub mod embed_codec;
pub mod error;
pub mod gemini_codec;
pub mod object;
pub mod oci_codec;
pub mod openai_codec;
mod read;
pub mod responses_codec;
pub mod sse;
pub mod tokens;

pub use chat::{ChatRequest, ChunkView, RequestError};
pub use display::for_log;
pub use error::error_body;
pub use sse::{SseEvent, SseParser};
pub use tokens::estimate_tokens;
