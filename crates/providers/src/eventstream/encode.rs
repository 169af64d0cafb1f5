//! The encoder: one [`Message`] as one frame, for the emulator's side of ConverseStream.

use super::{HeaderValue, MAX_FRAME, MAX_VALUE, Message, PRELUDE, TRAILER, crc32};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("header name {0:?} is empty or longer than 255 bytes")]
    HeaderName(String),
    #[error("header {name:?} has a value of {len} bytes, more than {MAX_VALUE}")]
    ValueTooLong { name: String, len: usize },
    #[error("the frame would be {len} bytes, more than {MAX_FRAME}")]
    FrameTooLarge { len: usize },
}

/// One message as a frame, with both checksums.
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut headers_len = 0;
    for header in &message.headers {
        if header.name.is_empty() || header.name.len() > usize::from(u8::MAX) {
            return Err(EncodeError::HeaderName(header.name.clone()));
        }
        let len = match &header.value {
            HeaderValue::Bytes(b) => b.len(),
            HeaderValue::String(s) => s.len(),
            HeaderValue::Bool(_)
            | HeaderValue::Byte(_)
            | HeaderValue::Short(_)
            | HeaderValue::Int(_)
            | HeaderValue::Long(_)
            | HeaderValue::Timestamp(_)
            | HeaderValue::Uuid(_) => 0,
        };
        if len > MAX_VALUE {
            return Err(EncodeError::ValueTooLong { name: header.name.clone(), len });
        }
        headers_len += 2 + header.name.len() + header.value.wire_len();
    }
    let total = PRELUDE + headers_len + message.payload.len() + TRAILER;
    if total > MAX_FRAME as usize {
        return Err(EncodeError::FrameTooLarge { len: total });
    }
    let mut out = Vec::with_capacity(total);
    // Both fit in a u32: they are at most MAX_FRAME.
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers_len as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    for header in &message.headers {
        out.push(header.name.len() as u8);
        out.extend_from_slice(header.name.as_bytes());
        out.push(header.value.type_byte());
        match &header.value {
            HeaderValue::Bool(_) => {}
            HeaderValue::Byte(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Short(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Long(v) | HeaderValue::Timestamp(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Bytes(b) => {
                out.extend_from_slice(&(b.len() as u16).to_be_bytes());
                out.extend_from_slice(b);
            }
            HeaderValue::String(s) => {
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            HeaderValue::Uuid(v) => out.extend_from_slice(v),
        }
    }
    out.extend_from_slice(&message.payload);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    Ok(out)
}
