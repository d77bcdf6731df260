//! Structured logging set-up shared by Squall's programs: human-readable text, coloured only
//! on a terminal, or one JSON object per line for log shippers.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// Environment variable naming the log format (`text` or `json`) when no option does.
/// Supervisors pass their own format to their workers through it.
pub const LOG_FORMAT_ENV: &str = "SQUALL_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event; coloured when written to a terminal.
    #[default]
    Text,
    /// One JSON object per line, with `timestamp`, `level`, `target` and `fields`.
    Json,
}

/// A log format name other than `text` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: expected `text` or `json`")]
pub struct UnknownLogFormat(pub String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(UnknownLogFormat(other.to_owned())),
        }
    }
}

impl LogFormat {
    /// Its name, as [`FromStr`](std::str::FromStr) reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }

    /// The format named by [`LOG_FORMAT_ENV`], or text when it is unset.
    ///
    /// # Errors
    /// When the variable names no format.
    pub fn from_env() -> Result<Self, UnknownLogFormat> {
        match std::env::var(LOG_FORMAT_ENV) {
            Ok(name) if !name.is_empty() => name.parse(),
            _ => Ok(Self::Text),
        }
    }
}

/// The format this process logs in, once [`init`] ran.
static CHOSEN_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format [`init`] installed ([`LogFormat::Text`] before it ran).
pub fn current_format() -> LogFormat {
    CHOSEN_FORMAT.get().copied().unwrap_or_default()
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter does not parse.
    #[error("{filter:?} is not a valid log filter: {source}")]
    Filter {
        /// The filter given.
        filter: String,
        /// What is wrong with it.
        source: tracing_subscriber::filter::ParseError,
    },
}

/// A subscriber writing to `writer`: `filter` in the `RUST_LOG` syntax, colour codes only
/// when `ansi` (and never in JSON).
///
/// # Errors
/// When `filter` is not a valid filter.
pub fn subscriber<W>(
    filter: &str,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, LoggingError>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let env_filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
            filter: filter.to_owned(),
            source,
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
    })
}

/// Installs a subscriber writing to standard error in `format`, filtered by `filter` (the
/// `RUST_LOG` syntax, e.g. `info` or `squall=debug`); text is coloured only when standard
/// error is a terminal, so files and the journal get plain lines. Does nothing if a
/// subscriber is installed already.
///
/// # Errors
/// When `filter` is not a valid filter.
pub fn init(filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let subscriber = subscriber(
        filter,
        format,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    )?;
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = CHOSEN_FORMAT.set(format);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_some(format: LogFormat, ansi: bool) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber("info", format, move || writer.clone(), ansi).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(port = 6700, topology = "wordcount-1", "worker started");
            tracing::warn!("a \"quoted\"\nmulti-line message");
            tracing::debug!("filtered out");
        });
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn text_has_no_colour_codes_unless_asked() {
        let plain = log_some(LogFormat::Text, false);
        assert!(plain.contains("worker started port=6700"), "{plain}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        assert!(!plain.contains("filtered out"));
        assert!(log_some(LogFormat::Text, true).contains('\u{1b}'));
    }

    #[test]
    fn json_is_one_object_per_line() {
        // Even when asked for colour: JSON never carries it.
        let json = log_some(LogFormat::Json, true);
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(lines.len(), 2, "{json}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["fields"]["message"], "worker started");
        assert_eq!(first["fields"]["port"], 6700);
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            second["fields"]["message"],
            "a \"quoted\"\nmulti-line message"
        );
        assert!(!json.contains('\u{1b}'));
    }

    #[test]
    fn formats_are_read_by_name() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert_eq!(
            "yaml".parse::<LogFormat>().unwrap_err().to_string(),
            "unknown log format \"yaml\": expected `text` or `json`"
        );
    }
}
