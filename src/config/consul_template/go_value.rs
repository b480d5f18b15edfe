//! Values as consul-template reads them, with Go's parsers: booleans as `strconv.ParseBool`,
//! durations as `time.ParseDuration` (`"1.5s"` is valid, a bare `"5"` is not, unlike terad's
//! own durations), and `wait` as `MIN[:MAX]`.

use std::time::Duration;

/// A value Go's parsers refuse; the text is quoted as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoValueError {
    #[error("invalid duration {0:?} (write e.g. \"30s\", \"1m30s\" or \"250ms\")")]
    Duration(String),
    #[error("invalid wait {0:?}: write MIN or MIN:MAX, e.g. \"5s:10s\"")]
    WaitShape(String),
    #[error("invalid wait {0:?}: MAX is shorter than MIN")]
    WaitOrder(String),
}

/// Go's `strconv.ParseBool`.
pub fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A duration as Go's `time.ParseDuration` reads it: `"30s"`, `"1m30s"`, `"1.5s"`, `"250ms"`.
pub fn go_duration(text: &str) -> Result<Duration, GoValueError> {
    let invalid = || GoValueError::Duration(text.to_owned());
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// consul-template's `-wait` / `wait = "MIN[:MAX]"` (Go durations), as terad's `MIN:MAX`.
pub fn go_wait(text: &str) -> Result<String, GoValueError> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let (min, max) = match parts.as_slice() {
        [min] => {
            let min = go_duration(min)?;
            (min, min * 4)
        }
        [min, max] => (go_duration(min)?, go_duration(max)?),
        _ => {
            return Err(GoValueError::WaitShape(text.to_owned()));
        }
    };
    if max < min {
        return Err(GoValueError::WaitOrder(text.to_owned()));
    }
    Ok(format!("{}ms:{}ms", min.as_millis(), max.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_go_reads_them() {
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        assert!(go_duration("5").is_err());
        assert!(go_duration("5 parsecs").is_err());
        assert_eq!(go_wait("5s"), Ok("5000ms:20000ms".into()));
        assert_eq!(go_wait("1s:3s"), Ok("1000ms:3000ms".into()));
        assert!(go_wait("3s:1s").is_err());
    }
}
