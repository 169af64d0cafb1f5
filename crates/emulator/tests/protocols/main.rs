//! Each protocol the emulator speaks, end to end over in-memory connections on a paused clock:
//! answers, streams (decoded by the wire codecs' strict decoders), tool calls, JSON mode,
//! authentication, faults, embeddings, and the same answer for the same conversation across
//! protocols.

mod anthropic;
mod azure;
mod bedrock;
mod cross;
mod embeddings;
mod gemini;
mod oci;
mod oci_native;
mod openai;
mod support;
