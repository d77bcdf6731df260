//! Cutting a subprocess's output into messages: lines up to a line `end`, joined with
//! newlines, as Storm reads them. Pure: the caller reads the lines.

/// Largest message accepted by default: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why the output cannot be cut into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A line is not UTF-8.
    #[error("line {line} of the message is not UTF-8 (byte {offset} of the line)")]
    NotUtf8 {
        /// Line number within the message, from 1.
        line: usize,
        /// Offset of the first invalid byte in that line.
        offset: usize,
    },
    /// The message grew past the limit before its `end` line.
    #[error("the message exceeds {max} bytes without an \"end\" line")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// Collects lines until a line `end` and hands back the message they make.
#[derive(Debug)]
pub struct Framer {
    message: String,
    lines: usize,
    max: usize,
}

impl Framer {
    /// A framer accepting messages of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            message: String::new(),
            lines: 0,
            max,
        }
    }

    /// How many more bytes a line may have before the message is too large (the caller
    /// reads at most this much plus one before giving up on a line).
    pub fn room(&self) -> usize {
        self.max.saturating_sub(self.message.len())
    }

    /// Whether no line of a message is pending.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The lines collected so far (for error reports).
    pub fn pending(&self) -> &str {
        &self.message
    }

    /// Takes one line (with or without its `\n` or `\r\n`). Returns the message when the
    /// line is `end`.
    ///
    /// # Errors
    /// [`FrameError`] when the line is not UTF-8 or the message grows too large; the pending
    /// message is then dropped.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<String>, FrameError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == super::protocol::END_LINE.as_bytes() {
            self.lines = 0;
            return Ok(Some(std::mem::take(&mut self.message)));
        }
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(error) => {
                let line = self.lines + 1;
                self.reset();
                return Err(FrameError::NotUtf8 {
                    line,
                    offset: error.valid_up_to(),
                });
            }
        };
        let separator = usize::from(self.lines > 0);
        if self.message.len() + separator + text.len() > self.max {
            self.reset();
            return Err(FrameError::TooLarge { max: self.max });
        }
        if separator == 1 {
            self.message.push('\n');
        }
        self.message.push_str(text);
        self.lines += 1;
        Ok(None)
    }

    fn reset(&mut self) {
        self.message.clear();
        self.lines = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_up_to_end_make_a_message() {
        let mut framer = Framer::new(1024);
        assert_eq!(framer.push_line(b"{\"command\":\n"), Ok(None));
        assert_eq!(framer.push_line(b" \"sync\"}\r\n"), Ok(None));
        assert_eq!(
            framer.push_line(b"end\n"),
            Ok(Some("{\"command\":\n \"sync\"}".to_owned()))
        );
        assert!(framer.is_empty());
        assert_eq!(framer.push_line(b"end"), Ok(Some(String::new())));
    }

    #[test]
    fn bad_lines_are_named() {
        let mut framer = Framer::new(1024);
        assert_eq!(framer.push_line(b"{\n"), Ok(None));
        assert_eq!(
            framer.push_line(b"ab\xffcd\n"),
            Err(FrameError::NotUtf8 { line: 2, offset: 2 })
        );
        let mut small = Framer::new(8);
        assert_eq!(small.push_line(b"12345"), Ok(None));
        assert_eq!(
            small.push_line(b"6789"),
            Err(FrameError::TooLarge { max: 8 })
        );
        assert!(small.is_empty());
        assert_eq!(small.room(), 8);
    }
}
