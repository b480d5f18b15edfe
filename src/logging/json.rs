//! JSON log lines whose structured fields are JSON values.
//!
//! tracing-subscriber's JSON format writes every field recorded with `?` or `%` as a string, so
//! a list of resources arrived as the string `"[\"a\", \"b\"]"`. [`JsonLines`] writes the same
//! objects (`timestamp`, `level`, the event's fields, the spans), and a field given as
//! [`json`]`(value)` is written as the JSON of `value`: an array, an object, a number. Plain
//! numbers and booleans are JSON numbers and booleans as before; everything else is a string.
//!
//! How a field is recognised: tracing hands a formatter every `?`/`%` value as `&dyn Debug`, so
//! [`Json`]'s `Debug` writes the value's JSON and marks the thread; the visitor clears the mark
//! before formatting a value and embeds the text as JSON when the mark is set afterwards. The
//! text format simply shows the JSON text.

use std::cell::Cell;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

thread_local! {
    /// Set by [`Json`]'s `Debug`: the text just formatted is JSON.
    static FORMATTED_JSON: Cell<bool> = const { Cell::new(false) };
}

/// A log field that JSON logs carry as JSON: `resources = logging::json(&names)`.
pub fn json<T: Serialize>(value: T) -> tracing::field::DebugValue<Json<T>> {
    tracing::field::debug(Json(value))
}

/// See [`json`]. Its `Debug` is the value's compact JSON.
pub struct Json<T>(pub T);

impl<T: Serialize> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
        FORMATTED_JSON.with(|mark| mark.set(true));
        f.write_str(&text)
    }
}

/// The JSON log format: one object per line, the event's fields flattened into it.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut object = Map::new();
        object.insert("timestamp".into(), Value::String(timestamp));
        object.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().into()),
        );
        event.record(&mut JsonVisitor(&mut object));
        let spans: Vec<Value> = ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .map(|span| {
                let mut fields = span
                    .extensions()
                    .get::<FormattedFields<JsonFields>>()
                    .and_then(|formatted| serde_json::from_str::<Map<_, _>>(formatted).ok())
                    .unwrap_or_default();
                fields.insert("name".into(), Value::String(span.name().into()));
                Value::Object(fields)
            })
            .collect();
        if let Some(current) = spans.last() {
            object.insert("span".into(), current.clone());
            object.insert("spans".into(), Value::Array(spans));
        }
        let line = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Records an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = field.name();
        self.0
            .insert(name.strip_prefix("r#").unwrap_or(name).to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value =
            i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.insert(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value =
            u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.insert(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        FORMATTED_JSON.with(|mark| mark.set(false));
        let text = format!("{value:?}");
        let value = if FORMATTED_JSON.with(Cell::take) {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        self.insert(field, value);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Log lines written by `log` through [`JsonLines`], parsed.
    fn lines(log: impl FnOnce()) -> Vec<Value> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines),
        );
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn structured_fields_are_json_values_and_the_rest_strings() {
        let names = vec!["a".to_owned(), "b \"q\"".to_owned()];
        let lines = lines(|| {
            tracing::info!(
                resources = json(&names),
                count = 2u64,
                offset = -3i64,
                ok = true,
                took = 0.5f64,
                dest = %"/etc/x",
                debug = ?"quoted",
                "reloaded {}",
                "now"
            );
        });
        let [line] = &lines[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(line["message"], "reloaded now");
        assert_eq!(line["resources"], serde_json::json!(["a", "b \"q\""]));
        assert_eq!(line["count"], 2);
        assert_eq!(line["offset"], -3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["took"], 0.5);
        assert_eq!(line["dest"], "/etc/x");
        assert_eq!(line["debug"], "\"quoted\"");
    }

    #[test]
    fn a_string_that_looks_like_json_stays_a_string() {
        let lines = lines(|| {
            tracing::warn!(value = %"[1, 2]", after = json(1), again = %"[3]", "x");
        });
        assert_eq!(lines[0]["value"], "[1, 2]");
        assert_eq!(lines[0]["after"], 1);
        assert_eq!(lines[0]["again"], "[3]");
    }

    #[test]
    fn spans_are_listed_with_their_fields() {
        let lines = lines(|| {
            let span = tracing::info_span!("sync", resource = "r0");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(
            lines[0]["spans"],
            serde_json::json!([{"name": "sync", "resource": "r0"}])
        );
        assert_eq!(lines[0]["span"]["name"], "sync");
    }

    #[test]
    fn text_logs_show_the_json_text() {
        assert_eq!(format!("{:?}", Json(vec!["a", "b"])), "[\"a\",\"b\"]");
    }
}
