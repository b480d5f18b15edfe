//! Durations as resource and coordination tables write them (`"500ms"`, `"2m"` or whole seconds),
//! and how a key holding one is checked and reported.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::value::ValueError;

/// Where a problem is: the key and, when known, its span in the file.
pub type Report<'a> = dyn FnMut(&str, Option<std::ops::Range<usize>>, String) + 'a;

/// A duration written as a string (`"500ms"`, `"2m"`) or as whole seconds.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// A duration key: `default` when absent. A value that does not parse, or is zero (`min` None)
/// or shorter than `min`, is reported and the default used, so validation goes on.
pub fn duration_key(
    key: &str,
    raw: &Option<Spanned<DurationValue>>,
    default: Duration,
    min: Option<Duration>,
    error: &mut Report<'_>,
) -> Duration {
    let Some(raw) = raw else { return default };
    match parse_duration(raw.get_ref()) {
        Ok(duration) => match min {
            None if duration.is_zero() => {
                error(key, Some(raw.span()), "must be longer than zero".into());
                default
            }
            Some(min) if duration < min => {
                error(
                    key,
                    Some(raw.span()),
                    format!("must be at least {}", humantime::format_duration(min)),
                );
                default
            }
            _ => duration,
        },
        Err(message) => {
            error(key, Some(raw.span()), message.to_string());
            default
        }
    }
}

pub fn parse_duration(value: &DurationValue) -> Result<Duration, ValueError> {
    match value {
        DurationValue::Seconds(seconds) => Ok(Duration::from_secs(*seconds)),
        DurationValue::Text(text) => {
            humantime::parse_duration(text.trim()).map_err(|source| ValueError::Duration {
                text: text.clone(),
                source,
            })
        }
    }
}
