//! Server-sent events: an incremental parser for upstream streams and the framing we emit.
//!
//! The parser takes bytes as they arrive, in any split, and yields whole events. Lines are
//! bounded so a garbage stream cannot make it hold unbounded memory.

use bytes::{Buf, BytesMut};

/// Longest line accepted (1 MiB); longer ones are an error.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line = self.buffer.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            self.line(&line, out);
        }
        if self.buffer.len() > MAX_LINE {
            self.buffer.advance(self.buffer.len());
            return Err(SseError::LineTooLong);
        }
        Ok(())
    }

    /// Ends the stream: a last event without its blank line is still delivered.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buffer.is_empty() {
            let line = self.buffer.split();
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.find(':') {
            Some(i) => (&text[..i], text[i + 1..].strip_prefix(' ').unwrap_or(&text[i + 1..])),
            None => (&text[..], ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            _ => (),
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if let Some(data) = self.data.take() {
            out.push(SseEvent { event: self.event.take(), data });
        }
        self.event = None;
    }
}

/// Frames one `data:` event.
pub fn data_event(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\n\n");
    out
}

pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn parses_events_split_anywhere() {
        let stream = b"data: {\"a\":1}\n\n: comment\r\nevent: x\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        let whole = parse_all(&[stream]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1], SseEvent { event: Some("x".into()), data: "line1\nline2".into() });
        assert_eq!(whole[2].data, "[DONE]");
        for split in 0..stream.len() {
            assert_eq!(parse_all(&[&stream[..split], &stream[split..]]), whole, "split at {split}");
        }
    }

    #[test]
    fn unterminated_last_event_is_delivered_at_finish() {
        assert_eq!(parse_all(&[b"data: tail"])[0].data, "tail");
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        assert_eq!(p.push(&vec![b'x'; MAX_LINE + 1], &mut out), Err(SseError::LineTooLong));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x55e),
            ..ProptestConfig::default()
        })]

        #[test]
        fn never_panics_on_garbage(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut p = SseParser::default();
            let mut out = Vec::new();
            for c in &chunks {
                let _ = p.push(c, &mut out);
            }
            p.finish(&mut out);
        }
    }
}
