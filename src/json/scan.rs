//! The fast path for a properties object: one pass over the bytes that
//! checks the shapes callers send (plain keys, strings, short numbers,
//! literals, nesting) and copies them compactly, without serde's visitor
//! calls or reading numbers into binary and printing them again.
//!
//! It declines what it does not take on — an escaped key, a `\u` escape, an
//! exponent, a number serde_json would read as a float of more than 15
//! significant digits or an integer beyond 18 digits, nesting deeper than
//! [`MAX_DEPTH`], and anything invalid — and the serde path in `mod.rs`
//! then decides. So what it accepts means exactly what serde_json's parse of
//! the text means: strings and numbers are copied as written, and a decimal
//! of at most 15 significant digits is read to the same `f64` from either
//! spelling.

use std::borrow::Cow;

/// Deeper objects and arrays go the serde way (its own limit is 128).
const MAX_DEPTH: u32 = 32;

/// Copies the object `text` (which starts with `{` after blanks) into
/// `members` as `"key":value,...` without braces, and its top-level keys
/// into `keys`. `None` when declined; what was written is then garbage.
pub(super) fn object<'a>(
    text: &'a str,
    members: &mut Vec<u8>,
    keys: &mut Vec<Cow<'a, str>>,
) -> Option<()> {
    let mut scan = Scan {
        text: text.as_bytes(),
        at: 0,
        out: members,
    };
    scan.blanks();
    scan.eat(b'{')?;
    scan.members(0, |start, end| {
        keys.push(Cow::Borrowed(text.get(start..end)?));
        Some(())
    })?;
    scan.blanks();
    (scan.at == scan.text.len()).then_some(())
}

struct Scan<'t, 'o> {
    text: &'t [u8],
    at: usize,
    out: &'o mut Vec<u8>,
}

impl Scan<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn blanks(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// After the opening brace, through the closing one (not written).
    /// `key` gets each key's span in the text (between its quotes).
    fn members(
        &mut self,
        depth: u32,
        mut key: impl FnMut(usize, usize) -> Option<()>,
    ) -> Option<()> {
        self.list(b'}', |scan| {
            scan.blanks();
            let (start, end) = scan.string(false)?;
            key(start, end)?;
            scan.blanks();
            scan.eat(b':')?;
            scan.out.push(b':');
            scan.value(depth)
        })
    }

    /// After the opening bracket, through the closing one (not written).
    fn elements(&mut self, depth: u32) -> Option<()> {
        self.list(b']', |scan| scan.value(depth))
    }

    /// Items separated by commas, through `close`.
    fn list(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.blanks();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            item(self)?;
            self.blanks();
            match self.peek()? {
                b',' => self.out.push(b','),
                byte if byte == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
            self.at += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        self.blanks();
        match self.peek()? {
            b'"' => self.string(true).map(drop),
            b'{' | b'[' if depth + 1 >= MAX_DEPTH => None,
            b'{' => {
                self.at += 1;
                self.out.push(b'{');
                self.members(depth + 1, |_, _| Some(()))?;
                self.out.push(b'}');
                Some(())
            }
            b'[' => {
                self.at += 1;
                self.out.push(b'[');
                self.elements(depth + 1)?;
                self.out.push(b']');
                Some(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then_some(())?;
        self.at = end;
        self.out.extend_from_slice(word);
        Some(())
    }

    /// A string, copied with its quotes; returns the span between them.
    /// Escapes other than `\u` are copied as written (they mean the same);
    /// `escapes` false declines any (a key must compare as written).
    fn string(&mut self, escapes: bool) -> Option<(usize, usize)> {
        let open = self.at;
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' if escapes => match self.text.get(self.at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                    _ => return None,
                },
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        self.out.extend_from_slice(&self.text[open..self.at]);
        Some((open + 1, self.at - 1))
    }

    fn number(&mut self) -> Option<()> {
        let start = self.at;
        let _ = self.eat(b'-');
        let integer = self.at;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let integer_digits = self.at - integer;
        let mut fraction_digits = 0;
        if self.eat(b'.').is_some() {
            let fraction = self.at;
            self.digits();
            fraction_digits = self.at - fraction;
            if fraction_digits == 0 {
                return None;
            }
        }
        let plain = !matches!(self.peek(), Some(b'e' | b'E'))
            && if fraction_digits == 0 {
                integer_digits <= 18
            } else {
                integer_digits + fraction_digits <= 15
            };
        plain.then_some(())?;
        self.out.extend_from_slice(&self.text[start..self.at]);
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The members and keys when the scanner takes `text`.
    fn scanned(text: &str) -> Option<(String, Vec<String>)> {
        let (mut members, mut keys) = (Vec::new(), Vec::new());
        object(text, &mut members, &mut keys)?;
        let keys = keys.iter().map(|k| k.to_string()).collect();
        Some((String::from_utf8(members).unwrap(), keys))
    }

    #[test]
    fn common_shapes_are_copied_compactly_as_written() {
        let text = " {\n \"plan\" : \"pro\", \"n\": -3, \"x\": 0.50, \"ok\": true, \"no\": null,
            \"list\": [1, \"t\\\"wo\", [], {}, {\"a\": [false]}], \"esc\": \"line\\nbreak\\/\",
            \"é\": \"ü\", \"big\": 999999999999999999 } ";
        let (members, keys) = scanned(text).expect("taken");
        assert_eq!(
            members,
            r#""plan":"pro","n":-3,"x":0.50,"ok":true,"no":null,"list":[1,"t\"wo",[],{},{"a":[false]}],"esc":"line\nbreak\/","é":"ü","big":999999999999999999"#
        );
        assert_eq!(
            keys,
            ["plan", "n", "x", "ok", "no", "list", "esc", "é", "big"]
        );
        let reparsed: Value = serde_json::from_str(&format!("{{{members}}}")).unwrap();
        assert_eq!(reparsed, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(scanned("{}").unwrap(), (String::new(), vec![]));
    }

    #[test]
    fn what_it_does_not_take_on_is_declined() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        for text in [
            // Left to serde (valid JSON):
            r#"{"k\n":1}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1E-3}"#,
            r#"{"a":1234567890123456789}"#,
            r#"{"a":0.1234567890123456}"#,
            &deep,
            // Invalid:
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a" 1}"#,
            r#"{"a":1} x"#,
            r#"{"a":1"#,
            "{\"a\":\"x\u{1}\"}",
            r#"{"a":"\x"}"#,
            r#"{a:1}"#,
            "[1]",
            "",
        ] {
            assert!(scanned(text).is_none(), "{text}");
        }
    }

    /// Every object built from these parts: whatever the scanner takes
    /// means what serde_json's parse of the text means.
    #[test]
    fn what_it_takes_means_what_serde_json_reads() {
        let values = [
            "0",
            "-0",
            "7",
            "-12",
            "0.1",
            "1.50",
            "-0.000125",
            "123456789.123456",
            "999999999999999999",
            "1e2",
            "true",
            "false",
            "null",
            "\"\"",
            "\"a b\"",
            "\"\\\\\\\"\\t\"",
            "\"\u{1F600}\"",
            "[]",
            "[1, [2, {\"x\": null}]]",
            "{}",
            "{\"k\": {\"l\": [\"m\"]}}",
            "01",
            "1.",
            "\"\\u00e9\"",
            "tru",
        ];
        let mut taken = 0;
        for a in values {
            for b in values {
                let text = format!("{{\"a\": {a}, \"b\" :{b}}}");
                let serde = serde_json::from_str::<Value>(&text);
                if let Some((members, _)) = scanned(&text) {
                    taken += 1;
                    let ours: Value = serde_json::from_str(&format!("{{{members}}}")).unwrap();
                    assert_eq!(Ok(ours), serde.map_err(|e| e.to_string()), "{text}");
                }
            }
        }
        assert!(taken >= 18 * 18, "the scanner took only {taken}");
    }
}
