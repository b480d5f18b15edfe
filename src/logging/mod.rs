//! Log output: human-readable text or one JSON object per line, fields first.
//!
//! Text logs escape control characters in every message and field ([`EscapedFields`]): a key
//! name or value from the store may hold a newline or a terminal escape, and must not be able to
//! forge a log line or repaint the operator's terminal. (JSON logs escape them by construction.)
//!
//! JSON logs carry a field given as [`json`]`(value)` as a JSON value (an array, a number), not
//! as a string holding JSON ([`JsonLines`]).

mod json;

pub use json::{Json, JsonLines, json};

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written: tracing's text format, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `--log-level` applies to terad; libraries log at most at
/// info, because their debug and trace output is noise to an operator and can include request
/// headers (credentials). `RUST_LOG` overrides both for debugging, with a default level and
/// per-target levels (`RUST_LOG=terad=trace,h2=warn`). (`Targets`, not `EnvFilter`: no
/// regular-expression engine needed.)
pub fn init(level: tracing::Level, format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_target("terad", level)
                .with_default(level.min(tracing::Level::INFO))
        });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests that run terad in-process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => registry.with(layer.fmt_fields(EscapedFields)).try_init(),
        LogFormat::Json => registry
            .with(
                layer
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                    .event_format(JsonLines),
            )
            .try_init(),
    };
}

/// The text format's fields, as tracing's default (`message name=value …`), with every control
/// character escaped: newline, carriage return and tab as `\n`, `\r`, `\t`, the other C0 and C1
/// characters and DEL (ESC among them) as `\u{1b}`, and the bidirectional-text overrides too
/// (they reorder what a terminal shows).
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            ansi: writer.has_ansi_escapes(),
            writer,
            first: true,
            scratch: String::new(),
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    /// Field names in italics, as tracing's default does on a terminal.
    ansi: bool,
    first: bool,
    /// The value formatted before it is escaped; reused across fields.
    scratch: String,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    /// Writes ` name=value` (or the message, which has no name) with `value` escaped.
    fn write_field(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        self.scratch.clear();
        if let Err(error) = self.scratch.write_fmt(value) {
            self.result = Err(error);
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            self.writer.write_str(separator)?;
            if name != "message" {
                if self.ansi {
                    write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")?;
                } else {
                    write!(self.writer, "{name}=")?;
                }
            }
            escape_control(&self.scratch, &mut self.writer)
        })();
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write_field(field.name(), format_args!("{value}"));
        } else {
            self.write_field(field.name(), format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write_field(field.name(), format_args!("{}", chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write_field(field.name(), format_args!("{value:?}"));
    }
}

/// An error and its causes on one line, as `cannot listen on 127.0.0.1:80: Address in use`: how
/// terad prints every error it did not word itself. A cause whose text the message already
/// quotes is not repeated (many errors both name their source and print it).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Writes `text` with control characters escaped (see [`EscapedFields`]).
pub fn escape_control(text: &str, out: &mut impl fmt::Write) -> fmt::Result {
    if !text.chars().any(needs_escape) {
        return out.write_str(text);
    }
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if needs_escape(c) => write!(out, "\\u{{{:x}}}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

fn needs_escape(c: char) -> bool {
    // is_control: C0, DEL and C1. The rest: bidirectional embeddings, overrides and isolates.
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// Logs through the text layer terad installs and returns what it wrote.
    fn text_log(ansi: bool, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(buffer.clone())
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
            .fmt_fields(EscapedFields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_key_with_a_newline_and_an_ansi_escape_stays_on_one_escaped_line() {
        let key = "/app/x\n2026-01-01T00:00:00Z ERROR forged\x1b[31m red\r\u{9b}\u{202e}";
        let output = text_log(false, || {
            tracing::warn!(key = %key, quoted = key, "value of {key} skipped");
        });
        assert_eq!(output.lines().count(), 1, "{output:?}");
        assert!(
            !output.contains('\x1b') && !output.contains('\r'),
            "{output:?}"
        );
        let escaped = r"/app/x\n2026-01-01T00:00:00Z ERROR forged\u{1b}[31m red\r\u{9b}\u{202e}";
        assert_eq!(
            output,
            format!(
                " WARN value of {escaped} skipped key={escaped} quoted=\"/app/x\\n2026-01-01T00:00:00Z ERROR forged\\u{{1b}}[31m red\\r\\u{{9b}}\\u{{202e}}\"\n"
            )
        );
    }

    #[test]
    fn plain_fields_look_as_before_and_terminals_keep_their_colours() {
        let output = text_log(false, || {
            tracing::info!(resource = %"app", count = 3, dest = ?"/etc/a b", "config updated");
        });
        assert_eq!(
            output,
            " INFO config updated resource=app count=3 dest=\"/etc/a b\"\n"
        );
        let output = text_log(true, || tracing::info!(key = %"a\nb", "m"));
        assert!(
            output.contains("\x1b[3mkey\x1b[0m\x1b[2m=\x1b[0ma\\nb"),
            "{output:?}"
        );
    }

    #[test]
    fn errors_are_escaped_with_their_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer\nline")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("inner\x1b[0m"));
        let output = text_log(false, || {
            tracing::error!(
                error = &error as &(dyn std::error::Error + 'static),
                "failed"
            )
        });
        assert_eq!(output, "ERROR failed error=outer\\nline: inner\\u{1b}[0m\n");
    }
}
