//! The incremental decoder: a prelude is checked as soon as its 12 bytes are in, a frame is
//! decoded once all of it is, and the first error ends the stream.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::{Header, HeaderValue, MAX_FRAME, Message, PRELUDE, TRAILER, crc32};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("prelude checksum mismatch: computed {computed:#010x}, the frame says {stated:#010x}")]
    PreludeCrc { computed: u32, stated: u32 },
    #[error("message checksum mismatch: computed {computed:#010x}, the frame says {stated:#010x}")]
    MessageCrc { computed: u32, stated: u32 },
    #[error("a frame of {total} bytes is shorter than the 16 bytes of prelude and checksum")]
    FrameTooShort { total: u32 },
    #[error("a frame of {total} bytes is larger than the limit of {max}")]
    FrameTooLarge { total: u32, max: u32 },
    #[error("{headers} bytes of headers do not fit in a frame of {total} bytes")]
    HeadersTooLong { headers: u32, total: u32 },
    #[error("header {index} runs past the end of the headers")]
    HeaderTruncated { index: usize },
    #[error("header {index} has an empty name")]
    EmptyHeaderName { index: usize },
    #[error("header {index} has unknown value type {type_byte}")]
    UnknownHeaderType { index: usize, type_byte: u8 },
    #[error("header {index}'s name or string value is not UTF-8")]
    NotUtf8 { index: usize },
    #[error("the stream ended inside a frame ({buffered} bytes of it received)")]
    Truncated { buffered: usize },
}

impl FrameError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::PreludeCrc { .. } => "prelude_crc",
            FrameError::MessageCrc { .. } => "message_crc",
            FrameError::FrameTooShort { .. } => "frame_too_short",
            FrameError::FrameTooLarge { .. } => "frame_too_large",
            FrameError::HeadersTooLong { .. } => "headers_too_long",
            FrameError::HeaderTruncated { .. } => "header_truncated",
            FrameError::EmptyHeaderName { .. } => "empty_header_name",
            FrameError::UnknownHeaderType { .. } => "unknown_header_type",
            FrameError::NotUtf8 { .. } => "not_utf8",
            FrameError::Truncated { .. } => "truncated",
        }
    }
}

/// An incremental decoder: [`Decoder::push`] each chunk of the body as it arrives, then
/// [`Decoder::finish`] at its end. Holds at most one frame (plus the last chunk) at a time.
#[derive(Debug)]
pub struct Decoder {
    buffer: BytesMut,
    max_frame: u32,
    /// The current frame's total length, once its prelude has been read and checked.
    frame_len: Option<usize>,
    /// The first error; decoding stops there.
    failed: Option<FrameError>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

// === impl Decoder ===

impl Decoder {
    /// A decoder accepting frames up to [`MAX_FRAME`].
    pub fn new() -> Decoder {
        Decoder::with_max_frame(MAX_FRAME)
    }

    /// A decoder accepting frames up to `max_frame` bytes.
    pub fn with_max_frame(max_frame: u32) -> Decoder {
        Decoder { buffer: BytesMut::new(), max_frame, frame_len: None, failed: None }
    }

    /// Takes the next chunk and returns the messages it completed. An error in a chunk that
    /// also completed messages is held back: those messages are returned, and the error comes
    /// from the next call (or [`Decoder::finish`]). After an error every call returns it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, FrameError> {
        self.feed(chunk);
        let mut messages = Vec::new();
        loop {
            match self.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => return Ok(messages),
                Err(e) if messages.is_empty() => return Err(e),
                Err(_) => return Ok(messages),
            }
        }
    }

    /// Buffers a chunk without decoding; call [`Decoder::next_message`] until it gives `None`.
    /// Ignored after an error.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(chunk);
        }
    }

    /// The next complete message in what was fed, `None` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.decode() {
            Ok(message) => Ok(message),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buffer = BytesMut::new();
                Err(e)
            }
        }
    }

    /// At the end of the stream: an error if decoding failed or a frame was left incomplete.
    pub fn finish(&self) -> Result<(), FrameError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None if self.buffer.is_empty() => Ok(()),
            None => Err(FrameError::Truncated { buffered: self.buffer.len() }),
        }
    }

    /// Bytes received of a frame not yet complete.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn decode(&mut self) -> Result<Option<Message>, FrameError> {
        let total = match self.frame_len {
            Some(total) => total,
            None => {
                let Some(prelude) = self.buffer.get(..PRELUDE) else { return Ok(None) };
                let total = prelude_len(prelude, self.max_frame)?;
                self.frame_len = Some(total);
                total
            }
        };
        if self.buffer.len() < total {
            return Ok(None);
        }
        self.frame_len = None;
        let frame = self.buffer.split_to(total).freeze();
        decode_frame(frame).map(Some)
    }
}

/// Checks a prelude and gives the frame's total length.
fn prelude_len(prelude: &[u8], max_frame: u32) -> Result<usize, FrameError> {
    let total = be_u32(&prelude[0..4]);
    let headers = be_u32(&prelude[4..8]);
    let stated = be_u32(&prelude[8..12]);
    let computed = crc32(&prelude[..8]);
    if computed != stated {
        return Err(FrameError::PreludeCrc { computed, stated });
    }
    if (total as usize) < PRELUDE + TRAILER {
        return Err(FrameError::FrameTooShort { total });
    }
    if total > max_frame {
        return Err(FrameError::FrameTooLarge { total, max: max_frame });
    }
    if headers as usize > total as usize - PRELUDE - TRAILER {
        return Err(FrameError::HeadersTooLong { headers, total });
    }
    Ok(total as usize)
}

/// A whole frame whose prelude was checked by [`prelude_len`].
fn decode_frame(frame: Bytes) -> Result<Message, FrameError> {
    let body_end = frame.len() - TRAILER;
    let stated = be_u32(&frame[body_end..]);
    let computed = crc32(&frame[..body_end]);
    if computed != stated {
        return Err(FrameError::MessageCrc { computed, stated });
    }
    let headers_end = PRELUDE + be_u32(&frame[4..8]) as usize;
    let headers = decode_headers(&frame, PRELUDE..headers_end)?;
    Ok(Message { headers, payload: frame.slice(headers_end..body_end) })
}

/// The headers in `frame[range]`.
fn decode_headers(frame: &Bytes, range: Range<usize>) -> Result<Vec<Header>, FrameError> {
    let mut headers = Vec::new();
    let mut cursor = Cursor { frame, at: range.start, end: range.end, index: 0 };
    while cursor.at < cursor.end {
        cursor.index = headers.len();
        let index = cursor.index;
        let [name_len] = cursor.array()?;
        if name_len == 0 {
            return Err(FrameError::EmptyHeaderName { index });
        }
        let name = cursor.text(usize::from(name_len))?;
        let [type_byte] = cursor.array()?;
        let value = match type_byte {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(cursor.array()?)),
            3 => HeaderValue::Short(i16::from_be_bytes(cursor.array()?)),
            4 => HeaderValue::Int(i32::from_be_bytes(cursor.array()?)),
            5 => HeaderValue::Long(i64::from_be_bytes(cursor.array()?)),
            6 => {
                let len = u16::from_be_bytes(cursor.array()?);
                HeaderValue::Bytes(frame.slice(cursor.take(usize::from(len))?))
            }
            7 => {
                let len = u16::from_be_bytes(cursor.array()?);
                HeaderValue::String(cursor.text(usize::from(len))?)
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(cursor.array()?)),
            9 => HeaderValue::Uuid(cursor.array()?),
            _ => return Err(FrameError::UnknownHeaderType { index, type_byte }),
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// Reads the headers section of a frame; every read is bounded by its end.
struct Cursor<'f> {
    frame: &'f Bytes,
    at: usize,
    end: usize,
    /// The header being read, for errors.
    index: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<Range<usize>, FrameError> {
        if self.end - self.at < n {
            return Err(FrameError::HeaderTruncated { index: self.index });
        }
        self.at += n;
        Ok(self.at - n..self.at)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let range = self.take(N)?;
        Ok(array(&self.frame[range]))
    }

    fn text(&mut self, n: usize) -> Result<String, FrameError> {
        let range = self.take(n)?;
        let text = std::str::from_utf8(&self.frame[range]).map_err(|_| FrameError::NotUtf8 { index: self.index })?;
        Ok(text.to_owned())
    }
}

/// A slice of known length as an array (callers pass exactly `N` bytes).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(array(bytes))
}
