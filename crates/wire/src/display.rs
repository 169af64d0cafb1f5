//! Text from outside (callers, upstreams) made safe to put in a log line or an error message:
//! no control characters, no line breaks, and a bounded length.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` as it can go into one log line: control characters and line breaks escaped, at most
/// `max` bytes of it kept.
///
/// Escaped: every C0 control, DEL and every C1 control (`\n`, `\r` and `\t` by name, the
/// others as `\u{1b}`), the Unicode line and paragraph separators (U+2028, U+2029), and the
/// bidirectional embedding, override and isolate controls (U+202A to U+202E, U+2066 to
/// U+2069), which can make a log line read as something else. Backslashes are left as they
/// are.
///
/// When the escaped text is longer than `max` bytes, it is cut at the last character or
/// escape that fits, and `…(N bytes)` is appended, N being the length of `s`. Borrowed when
/// nothing had to change.
pub fn for_log(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max && !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max) + 24);
    let mut piece = String::new();
    let mut truncated = false;
    for c in s.chars() {
        piece.clear();
        match c {
            '\n' => piece.push_str("\\n"),
            '\r' => piece.push_str("\\r"),
            '\t' => piece.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(piece, "\\u{{{:x}}}", u32::from(c));
            }
            c => piece.push(c),
        }
        if out.len() + piece.len() > max {
            truncated = true;
            break;
        }
        out.push_str(&piece);
    }
    if truncated {
        let _ = write!(out, "…({} bytes)", s.len());
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(for_log("gpt-4o mini, ünïcödé \\ ok", 100), Cow::Borrowed(_)));
        assert!(matches!(for_log("", 0), Cow::Borrowed("")));
        assert!(matches!(for_log("abc", 3), Cow::Borrowed("abc")));
    }

    #[test]
    fn controls_and_line_breaks_are_escaped() {
        assert_eq!(for_log("a\nb\r\nc\td", 100), "a\\nb\\r\\nc\\td");
        assert_eq!(for_log("red \u{1b}[31m", 100), "red \\u{1b}[31m");
        assert_eq!(for_log("\0\u{7f}\u{85}\u{9b}", 100), "\\u{0}\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(for_log("x\u{2028}y\u{2029}z", 100), "x\\u{2028}y\\u{2029}z");
        assert_eq!(for_log("\u{202e}gnp.exe\u{2066}", 100), "\\u{202e}gnp.exe\\u{2066}");
        // A forged second log line stays on the first.
        let forged = for_log("model\n2026-01-01T00:00:00Z INFO admin logged in", 200);
        assert!(!forged.contains('\n'));
    }

    #[test]
    fn long_text_is_cut_on_a_boundary_with_its_length() {
        assert_eq!(for_log("abcdef", 3), "abc…(6 bytes)");
        assert_eq!(for_log("abcdef", 0), "…(6 bytes)");
        // 'é' is two bytes: it is not split.
        assert_eq!(for_log("aé", 2), "a…(3 bytes)");
        // An escape is kept whole or left out.
        assert_eq!(for_log("ab\ncd", 3), "ab…(5 bytes)");
        assert_eq!(for_log("ab\ncd", 4), "ab\\n…(5 bytes)");
        let long = "x".repeat(10_000);
        let cut = for_log(&long, 64);
        assert_eq!(cut, format!("{}…(10000 bytes)", "x".repeat(64)));
    }

    #[test]
    fn the_kept_part_never_exceeds_max() {
        let text = "a\u{1b}é\u{2028}\n漢字 \u{9f}z";
        for max in 0..=text.len() * 8 {
            let out = for_log(text, max);
            let kept = out.split('…').next().unwrap_or("");
            assert!(kept.len() <= max, "{max}: {out}");
            assert!(!out.chars().any(needs_escape), "{max}: {out}");
        }
    }
}
