//! Server-sent events: an incremental parser for upstream streams and the framing we emit.
//!
//! The parser takes bytes as they arrive, in any split, and yields whole events. Lines and
//! events are bounded so a garbage stream cannot make it hold unbounded memory, and each byte
//! is scanned for a line end once, however the stream is split.

use bytes::BytesMut;

/// Longest line accepted (1 MiB), without its line end; longer ones are an error.
pub const MAX_LINE: usize = 1 << 20;

/// Largest event accepted (4 MiB): its data (the `data:` lines joined by newlines) and its
/// event name together. A chat chunk is a few hundred bytes and a whole answer sent as one
/// event is far below this; larger ones are an error. With [`MAX_LINE`] this bounds what one
/// parser holds to about 5 MiB plus the bytes of one `push`.
pub const MAX_EVENT: usize = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// A stream the parser refuses. After one, the parser has dropped everything it held; the
/// stream should be treated as cut.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("SSE event larger than {MAX_EVENT} bytes")]
    EventTooLong,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no line end.
    scanned: usize,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds bytes; complete events are appended to `out`. On an error the events completed
    /// before it are in `out`, and the parser is emptied, its memory released.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.buffer.extend_from_slice(bytes);
        let result = self.lines(out);
        if result.is_err() {
            *self = SseParser::default();
        }
        result
    }

    fn lines(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        while let Some(at) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + at;
            self.scanned = 0;
            if end > MAX_LINE {
                return Err(SseError::LineTooLong);
            }
            let mut line = self.buffer.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            self.line(&line, out)?;
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_LINE {
            return Err(SseError::LineTooLong);
        }
        Ok(())
    }

    /// Ends the stream: a last event without its blank line is still delivered, unless its
    /// last line makes it larger than [`MAX_EVENT`]; then it is dropped. The parser is left
    /// empty.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buffer.is_empty() {
            let line = self.buffer.split();
            if self.line(&line, out).is_err() {
                *self = SseParser::default();
                return;
            }
        }
        self.dispatch(out);
        *self = SseParser::default();
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.find(':') {
            Some(i) => (&text[..i], text[i + 1..].strip_prefix(' ').unwrap_or(&text[i + 1..])),
            None => (&text[..], ""),
        };
        let event_len = self.event.as_ref().map_or(0, String::len);
        let data_len = self.data.as_ref().map_or(0, |d| d.len() + 1);
        match field {
            "data" => {
                if event_len + data_len + value.len() > MAX_EVENT {
                    return Err(SseError::EventTooLong);
                }
                match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
            "event" => {
                if data_len + value.len() > MAX_EVENT {
                    return Err(SseError::EventTooLong);
                }
                self.event = Some(value.to_owned());
            }
            _ => (),
        }
        Ok(())
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
        // A whole over-long line in one push is refused too, whatever the split.
        let mut line = vec![b'x'; MAX_LINE + 1];
        line.push(b'\n');
        assert_eq!(p.push(&line, &mut out), Err(SseError::LineTooLong));
        assert!(out.is_empty());
    }

    /// Many short `data:` lines with no blank line between them: bounded by [`MAX_EVENT`].
    #[test]
    fn overlarge_events_are_refused_and_released() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"data: {\"small\":1}\n\n", &mut out).unwrap();
        let line = [b"data: ".as_slice(), &[b'y'; 1000], b"\n"].concat();
        let chunk = line.repeat(64);
        let mut result = Ok(());
        let mut pushed = 0;
        while result.is_ok() && pushed <= 2 * MAX_EVENT {
            result = p.push(&chunk, &mut out);
            pushed += chunk.len();
        }
        assert_eq!(result, Err(SseError::EventTooLong));
        assert!(pushed > MAX_EVENT && pushed < MAX_EVENT + 2 * chunk.len(), "refused once past the bound: {pushed}");
        assert_eq!(out.len(), 1, "the event before is delivered, the oversized one is not");
        assert!(p.data.is_none() && p.event.is_none() && p.buffer.capacity() == 0, "nothing held after the error");
    }

    #[test]
    fn the_event_bound_holds_at_the_end_of_the_stream() {
        let line = [b"data: ".as_slice(), &[b'y'; 1000], b"\n"].concat();
        // Each line adds 1000 bytes and a joining newline: this many fit in one event.
        let fits = (MAX_EVENT + 1) / 1001;
        let mut out = Vec::new();
        let mut p = SseParser::default();
        p.push(&line.repeat(fits), &mut out).unwrap();
        p.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), fits * 1001 - 1);
        out.clear();
        let mut p = SseParser::default();
        p.push(&line.repeat(fits), &mut out).unwrap();
        p.push(&line[..line.len() - 1], &mut out).unwrap();
        p.finish(&mut out);
        assert!(out.is_empty(), "an unterminated line that overflows the event drops it");
        assert!(p.data.is_none() && p.buffer.capacity() == 0);
    }

    #[test]
    fn an_event_just_within_the_bound_is_delivered() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        // Lines of exactly MAX_LINE bytes: four of them, three joining newlines and the
        // event name stay within MAX_EVENT.
        let value = vec![b'z'; MAX_LINE - 6];
        let line = [b"data: ".as_slice(), &value, b"\n"].concat();
        p.push(b"event: n\n", &mut out).unwrap();
        for _ in 0..4 {
            p.push(&line, &mut out).unwrap();
        }
        p.push(b"\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event.as_deref(), Some("n"));
        assert_eq!(out[0].data.len(), 4 * value.len() + 3);
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
