//! Output helpers shared by the client commands: the default format, a buffered stdout that
//! ends quietly when its reader goes away, tables, and how bytes are shown.

use crate::Format;
use bytes::Bytes;
use comfy_table::{Table, presets};
use std::io::{IsTerminal, Write};

/// Table on a terminal, text otherwise.
pub fn default_format() -> Format {
    if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Text
    }
}

/// Buffered standard output for streams of lines (consumed records, produce acknowledgements).
///
/// Lines are buffered and written by [`Out::flush`], so a stream of many records costs few
/// writes. Once the reader has gone away (`strata consume ... | head`), writes are dropped
/// and [`Out::closed`] turns true: the command stops as if it had finished.
pub struct Out {
    stdout: std::io::BufWriter<std::io::Stdout>,
    closed: bool,
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

impl Out {
    /// Standard output.
    pub fn new() -> Out {
        Out {
            stdout: std::io::BufWriter::with_capacity(64 << 10, std::io::stdout()),
            closed: false,
        }
    }

    /// Whether the reader of standard output has gone away.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Writes `line` and a newline.
    pub fn line(&mut self, line: &str) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self
            .stdout
            .write_all(line.as_bytes())
            .and_then(|()| self.stdout.write_all(b"\n"));
        self.settle(r)
    }

    /// Writes everything buffered.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.stdout.flush();
        self.settle(r)
    }

    fn settle(&mut self, r: std::io::Result<()>) -> anyhow::Result<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.stdout.flush();
        }
    }
}

/// Prints a whole document: `text` unless the format is JSON, then `json` (pretty).
pub fn print_document(format: Format, text: &str, json: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = Out::new();
    match format {
        Format::Json => out.line(&serde_json::to_string_pretty(json)?)?,
        Format::Table | Format::Text => out.line(text.trim_end_matches('\n'))?,
    }
    out.flush()
}

/// An aligned table without borders, with `header`.
pub fn table<S: ToString>(header: &[S]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().map(ToString::to_string));
    t
}

/// Bytes as a JSON value: a UTF-8 (lossy) string, or null when absent.
pub fn json_bytes(bytes: Option<&Bytes>) -> serde_json::Value {
    match bytes {
        Some(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        None => serde_json::Value::Null,
    }
}

/// Bytes as one field of a text line: UTF-8 (lossy) with line breaks and tabs escaped, so one
/// record stays on one line; `-` when absent.
pub fn text_bytes(bytes: Option<&Bytes>) -> String {
    match bytes {
        Some(b) => escape_line(&String::from_utf8_lossy(b)),
        None => "-".to_string(),
    }
}

/// `s` with `\n`, `\r` and `\t` written as escapes.
pub fn escape_line(s: &str) -> String {
    if !s.contains(['\n', '\r', '\t']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// A list of numbers as `1,2,3`.
pub fn id_list(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// An optional value, or `-`.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_render() {
        assert_eq!(text_bytes(None), "-");
        assert_eq!(text_bytes(Some(&Bytes::from_static(b"a b"))), "a b");
        assert_eq!(
            text_bytes(Some(&Bytes::from_static(b"l1\nl2\t\r"))),
            "l1\\nl2\\t\\r"
        );
        assert_eq!(text_bytes(Some(&Bytes::from_static(b"\xff!"))), "\u{fffd}!");
        assert_eq!(json_bytes(None), serde_json::Value::Null);
        assert_eq!(json_bytes(Some(&Bytes::from_static(b"v"))), "v");
    }

    #[test]
    fn lists() {
        assert_eq!(id_list(&[1, 2, 3]), "1,2,3");
        assert_eq!(or_dash(None::<u64>), "-");
        assert_eq!(or_dash(Some(4)), "4");
    }
}
