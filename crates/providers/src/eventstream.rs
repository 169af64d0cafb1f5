//! The `application/vnd.amazon.eventstream` framing of Bedrock's ConverseStream: an incremental
//! [`Decoder`] that is fed the body's chunks as they come, an [`encode`] for the emulator's side,
//! and the reading of a message's `:message-type`, `:event-type` and Bedrock exceptions.
//!
//! A frame is a prelude (total length and headers length, u32 big-endian, then a CRC32 of those
//! eight bytes), the headers, the payload, and a CRC32 of everything before it. Each header is a
//! name (u8 length, then bytes), a type byte and a value of that type. Everything read is
//! untrusted: lengths are checked before they are used, a frame longer than the limit is refused
//! as soon as its prelude is read (before any of it is buffered), and a bad checksum or a cut
//! header is a [`FrameError`] value, never a panic. A stream has no way to find the next frame
//! after a broken one, so the first error ends decoding.
//!
//! `aws-smithy-eventstream` was considered and not used: its decoder checks the prelude only
//! once the whole frame it announces has arrived (a garbage length means waiting for up to
//! 4 GiB), it has no size limit, and its error kinds are private, so a bad checksum cannot be
//! told from a cut frame.

mod decode;
mod encode;

use bytes::Bytes;

pub use decode::{Decoder, FrameError};
pub use encode::{EncodeError, encode};

/// The largest frame accepted by default, and the largest [`encode`] writes: 16 MiB.
pub const MAX_FRAME: u32 = 16 << 20;

/// Prelude: total length, headers length, prelude CRC.
const PRELUDE: usize = 12;
/// The message CRC after the payload.
const TRAILER: usize = 4;
/// The longest string or bytes value [`encode`] writes: every implementation reads `i16::MAX`.
const MAX_VALUE: usize = i16::MAX as usize;

/// A header value, by its wire type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false): no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6: u16 length, then the bytes.
    Bytes(Bytes),
    /// Type 7: u16 length, then UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    fn type_byte(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => 0,
            HeaderValue::Bool(false) => 1,
            HeaderValue::Byte(_) => 2,
            HeaderValue::Short(_) => 3,
            HeaderValue::Int(_) => 4,
            HeaderValue::Long(_) => 5,
            HeaderValue::Bytes(_) => 6,
            HeaderValue::String(_) => 7,
            HeaderValue::Timestamp(_) => 8,
            HeaderValue::Uuid(_) => 9,
        }
    }

    /// The value's bytes on the wire, after the type byte.
    fn wire_len(&self) -> usize {
        match self {
            HeaderValue::Bool(_) => 0,
            HeaderValue::Byte(_) => 1,
            HeaderValue::Short(_) => 2,
            HeaderValue::Int(_) => 4,
            HeaderValue::Long(_) | HeaderValue::Timestamp(_) => 8,
            HeaderValue::Bytes(b) => 2 + b.len(),
            HeaderValue::String(s) => 2 + s.len(),
            HeaderValue::Uuid(_) => 16,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: HeaderValue,
}

/// One decoded frame: headers in wire order, and the payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<Header>,
    pub payload: Bytes,
}

/// `:message-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Event,
    Exception,
    Error,
}

/// The exceptions Bedrock Runtime sends inside a response stream (`:exception-type`), for the
/// adapter to map to an attempt error. Names are matched ignoring ASCII case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamException {
    /// `throttlingException`.
    Throttling,
    /// `serviceUnavailableException`.
    ServiceUnavailable,
    /// `modelStreamErrorException`: the model failed mid-stream.
    ModelStreamError,
    /// `modelTimeoutException` (InvokeModelWithResponseStream).
    ModelTimeout,
    /// `validationException`: the request was refused, e.g. too long a prompt.
    Validation,
    /// `internalServerException`.
    InternalServer,
    /// Any other exception name, a missing one, or a `:message-type` `error` message.
    Unknown,
}

impl StreamException {
    pub fn from_name(name: &str) -> StreamException {
        const NAMES: [(&str, StreamException); 6] = [
            ("throttlingException", StreamException::Throttling),
            ("serviceUnavailableException", StreamException::ServiceUnavailable),
            ("modelStreamErrorException", StreamException::ModelStreamError),
            ("modelTimeoutException", StreamException::ModelTimeout),
            ("validationException", StreamException::Validation),
            ("internalServerException", StreamException::InternalServer),
        ];
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map_or(StreamException::Unknown, |(_, e)| *e)
    }

    /// A bounded label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamException::Throttling => "throttling",
            StreamException::ServiceUnavailable => "service_unavailable",
            StreamException::ModelStreamError => "model_stream_error",
            StreamException::ModelTimeout => "model_timeout",
            StreamException::Validation => "validation",
            StreamException::InternalServer => "internal_server",
            StreamException::Unknown => "unknown",
        }
    }
}

// === impl Message ===

impl Message {
    pub fn new(headers: Vec<Header>, payload: impl Into<Bytes>) -> Message {
        Message { headers, payload: payload.into() }
    }

    /// An event as Bedrock sends one: `:event-type`, `:content-type` JSON, `:message-type`
    /// `event`.
    pub fn new_event(event_type: &str, payload: impl Into<Bytes>) -> Message {
        Message::new(
            vec![
                string_header(":event-type", event_type),
                string_header(":content-type", "application/json"),
                string_header(":message-type", "event"),
            ],
            payload,
        )
    }

    /// An exception as Bedrock sends one, e.g. `throttlingException` with a JSON
    /// `{"message": ...}` payload.
    pub fn new_exception(exception_type: &str, payload: impl Into<Bytes>) -> Message {
        Message::new(
            vec![
                string_header(":exception-type", exception_type),
                string_header(":content-type", "application/json"),
                string_header(":message-type", "exception"),
            ],
            payload,
        )
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|h| h.name == name).map(|h| &h.value)
    }

    /// The first header called `name`, if it is a string.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.header(name)? {
            HeaderValue::String(s) => Some(s),
            HeaderValue::Bool(_)
            | HeaderValue::Byte(_)
            | HeaderValue::Short(_)
            | HeaderValue::Int(_)
            | HeaderValue::Long(_)
            | HeaderValue::Bytes(_)
            | HeaderValue::Timestamp(_)
            | HeaderValue::Uuid(_) => None,
        }
    }

    /// `:message-type`; `None` when missing or not one of the three.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.string(":message-type")? {
            "event" => Some(MessageType::Event),
            "exception" => Some(MessageType::Exception),
            "error" => Some(MessageType::Error),
            _ => None,
        }
    }

    pub fn event_type(&self) -> Option<&str> {
        self.string(":event-type")
    }

    pub fn content_type(&self) -> Option<&str> {
        self.string(":content-type")
    }

    pub fn exception_type(&self) -> Option<&str> {
        self.string(":exception-type")
    }

    /// For an `exception` or `error` message, which failure it reports (`None` for events and
    /// messages without a known `:message-type`).
    pub fn exception(&self) -> Option<StreamException> {
        match self.message_type()? {
            MessageType::Event => None,
            MessageType::Exception => {
                Some(self.exception_type().map_or(StreamException::Unknown, StreamException::from_name))
            }
            MessageType::Error => Some(StreamException::Unknown),
        }
    }

    /// The text a failure message carries: an exception's JSON `message` (or `Message`), an
    /// error's `:error-message` (or `:error-code`).
    pub fn failure_text(&self) -> Option<String> {
        match self.message_type()? {
            MessageType::Event => None,
            MessageType::Exception => {
                let value: serde_json::Value = serde_json::from_slice(&self.payload).ok()?;
                let text = value.get("message").or_else(|| value.get("Message"))?.as_str()?;
                Some(text.to_owned())
            }
            MessageType::Error => {
                self.string(":error-message").or_else(|| self.string(":error-code")).map(str::to_owned)
            }
        }
    }
}

fn string_header(name: &str, value: &str) -> Header {
    Header { name: name.to_owned(), value: HeaderValue::String(value.to_owned()) }
}

// === CRC32 ===

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), byte-wise from a table built at
/// compile time.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut bit = 0;
            while bit < 8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                bit += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests;
