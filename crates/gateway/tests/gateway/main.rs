//! Integration tests: the gateway in front of the emulator on loopback, asserting what the
//! caller receives and what the emulator saw.

mod accounts;
mod api;
mod embeddings;
mod embeddings_fit;
mod faults;
mod gemini;
mod key_settings;
mod leaks;
mod messages;
mod oci;
mod oci_native;
mod protocols;
mod ptu;
mod responses;
mod streams;
mod support;
mod surface;
