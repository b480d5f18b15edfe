//! Go's `time.Time`, as confd's `datetime` returns it: the current local time, with the methods
//! templates call on it (`Format` with Go's reference-time layouts, `Unix`, `Year`, …).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{FuncError, Object, Param, Signature, Value};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A moment in local time, broken down.
#[derive(Debug, Clone)]
pub struct Time {
    unix: i64,
    nanos: u32,
    year: i64,
    /// 1–12.
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 is Sunday.
    weekday: u32,
    /// 1–366.
    yearday: u32,
    /// Seconds east of UTC.
    offset: i64,
    zone: String,
}

impl Time {
    pub fn now() -> Time {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Time::local(now.as_secs() as i64, now.subsec_nanos())
    }

    /// The local time at `unix` seconds (the process's time zone, as Go's `time.Local`).
    pub fn local(unix: i64, nanos: u32) -> Time {
        let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
        let seconds: nix::libc::time_t = unix;
        // SAFETY: localtime_r writes only to `tm`, which lives for the call.
        let ok = unsafe { !nix::libc::localtime_r(&seconds, &mut tm).is_null() };
        if !ok {
            return Time::utc(unix, nanos);
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            // SAFETY: tm_zone points at a NUL-terminated name glibc keeps alive.
            unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
                .to_string_lossy()
                .into_owned()
        };
        Time {
            unix,
            nanos,
            year: i64::from(tm.tm_year) + 1900,
            month: tm.tm_mon as u32 + 1,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            weekday: tm.tm_wday as u32,
            yearday: tm.tm_yday as u32 + 1,
            offset: tm.tm_gmtoff,
            zone,
        }
    }

    /// The UTC time at `unix` seconds.
    pub fn utc(unix: i64, nanos: u32) -> Time {
        let days = unix.div_euclid(86_400);
        let rest = unix.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let before: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yearday = before[month as usize - 1] + day + u32::from(leap && month > 2);
        Time {
            unix,
            nanos,
            year,
            month,
            day,
            hour: rest / 3600,
            minute: rest / 60 % 60,
            second: rest % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
            yearday,
            offset: 0,
            zone: "UTC".to_owned(),
        }
    }

    /// Go's `Time.Format`: the layout is the reference time `Mon Jan 2 15:04:05 MST 2006`
    /// written the way the result should look.
    pub fn format(&self, layout: &str) -> String {
        let mut out = String::with_capacity(layout.len() + 8);
        let mut rest = layout;
        while !rest.is_empty() {
            let (token, len) = next_token(rest);
            match token {
                Some(token) => self.push(&mut out, token, &rest[..len]),
                None => out.push_str(&rest[..len]),
            }
            rest = &rest[len..];
        }
        out
    }

    fn push(&self, out: &mut String, token: Token, written: &str) {
        let hour12 = match self.hour % 12 {
            0 => 12,
            h => h,
        };
        match token {
            Token::LongYear => out.push_str(&format!("{:04}", self.year)),
            Token::Year => out.push_str(&format!("{:02}", self.year.rem_euclid(100))),
            Token::LongMonth => out.push_str(MONTHS[self.month as usize - 1]),
            Token::Month => out.push_str(&MONTHS[self.month as usize - 1][..3]),
            Token::NumMonth => out.push_str(&self.month.to_string()),
            Token::ZeroMonth => out.push_str(&format!("{:02}", self.month)),
            Token::LongWeekDay => out.push_str(DAYS[self.weekday as usize]),
            Token::WeekDay => out.push_str(&DAYS[self.weekday as usize][..3]),
            Token::Day => out.push_str(&self.day.to_string()),
            Token::UnderDay => out.push_str(&format!("{:>2}", self.day)),
            Token::ZeroDay => out.push_str(&format!("{:02}", self.day)),
            Token::UnderYearDay => out.push_str(&format!("{:>3}", self.yearday)),
            Token::ZeroYearDay => out.push_str(&format!("{:03}", self.yearday)),
            Token::Hour => out.push_str(&format!("{:02}", self.hour)),
            Token::Hour12 => out.push_str(&hour12.to_string()),
            Token::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
            Token::Minute => out.push_str(&self.minute.to_string()),
            Token::ZeroMinute => out.push_str(&format!("{:02}", self.minute)),
            Token::Second => out.push_str(&self.second.to_string()),
            Token::ZeroSecond => out.push_str(&format!("{:02}", self.second)),
            Token::PM => out.push_str(if self.hour >= 12 { "PM" } else { "AM" }),
            Token::Pm => out.push_str(if self.hour >= 12 { "pm" } else { "am" }),
            Token::TzName => {
                if self.zone.is_empty() {
                    push_offset(out, self.offset, false, false, false);
                } else {
                    out.push_str(&self.zone);
                }
            }
            Token::Offset {
                z,
                colon,
                seconds,
                hours_only,
            } => {
                if z && self.offset == 0 {
                    out.push('Z');
                } else if hours_only {
                    let sign = if self.offset < 0 { '-' } else { '+' };
                    out.push_str(&format!("{sign}{:02}", self.offset.abs() / 3600));
                } else {
                    push_offset(out, self.offset, colon, seconds, true);
                }
            }
            Token::Fraction { digits, trim } => {
                let text = format!("{:09}", self.nanos);
                let mut text = &text[..digits];
                if trim {
                    text = text.trim_end_matches('0');
                    if text.is_empty() {
                        return;
                    }
                }
                out.push_str(&written[..1]);
                out.push_str(text);
            }
        }
    }
}

fn push_offset(out: &mut String, offset: i64, colon: bool, seconds: bool, _: bool) {
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.abs();
    let (h, m, s) = (offset / 3600, offset / 60 % 60, offset % 60);
    let sep = if colon { ":" } else { "" };
    out.push_str(&format!("{sign}{h:02}{sep}{m:02}"));
    if seconds {
        out.push_str(&format!("{sep}{s:02}"));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    LongYear,
    Year,
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    PM,
    Pm,
    TzName,
    Offset {
        z: bool,
        colon: bool,
        seconds: bool,
        hours_only: bool,
    },
    Fraction {
        digits: usize,
        trim: bool,
    },
}

/// The layout element at the start of `s` (Go's `nextStdChunk`), and how many bytes it spans;
/// `None` for literal text up to the next element.
fn next_token(s: &str) -> (Option<Token>, usize) {
    const TABLE: &[(&str, Token)] = &[
        ("January", Token::LongMonth),
        ("Jan", Token::Month),
        ("Monday", Token::LongWeekDay),
        ("Mon", Token::WeekDay),
        ("MST", Token::TzName),
        ("2006", Token::LongYear),
        ("002", Token::ZeroYearDay),
        ("01", Token::ZeroMonth),
        ("02", Token::ZeroDay),
        ("03", Token::ZeroHour12),
        ("04", Token::ZeroMinute),
        ("05", Token::ZeroSecond),
        ("06", Token::Year),
        ("15", Token::Hour),
        ("__2", Token::UnderYearDay),
        ("_2", Token::UnderDay),
        ("PM", Token::PM),
        ("pm", Token::Pm),
        (
            "Z070000",
            Token::Offset {
                z: true,
                colon: false,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "Z07:00:00",
            Token::Offset {
                z: true,
                colon: true,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "Z0700",
            Token::Offset {
                z: true,
                colon: false,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "Z07:00",
            Token::Offset {
                z: true,
                colon: true,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "Z07",
            Token::Offset {
                z: true,
                colon: false,
                seconds: false,
                hours_only: true,
            },
        ),
        (
            "-070000",
            Token::Offset {
                z: false,
                colon: false,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "-07:00:00",
            Token::Offset {
                z: false,
                colon: true,
                seconds: true,
                hours_only: false,
            },
        ),
        (
            "-0700",
            Token::Offset {
                z: false,
                colon: false,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "-07:00",
            Token::Offset {
                z: false,
                colon: true,
                seconds: false,
                hours_only: false,
            },
        ),
        (
            "-07",
            Token::Offset {
                z: false,
                colon: false,
                seconds: false,
                hours_only: true,
            },
        ),
        ("1", Token::NumMonth),
        ("2", Token::Day),
        ("3", Token::Hour12),
        ("4", Token::Minute),
        ("5", Token::Second),
    ];
    let bytes = s.as_bytes();
    // `.000` / `,999`: fractional seconds, when not followed by another digit.
    if matches!(bytes[0], b'.' | b',') && bytes.len() > 1 && matches!(bytes[1], b'0' | b'9') {
        let digit = bytes[1];
        let run = bytes[1..].iter().take_while(|b| **b == digit).count();
        let next_is_digit = bytes.get(1 + run).is_some_and(u8::is_ascii_digit);
        if !next_is_digit && run <= 9 {
            return (
                Some(Token::Fraction {
                    digits: run,
                    trim: digit == b'9',
                }),
                1 + run,
            );
        }
    }
    for (pattern, token) in TABLE {
        if let Some(after) = s.strip_prefix(pattern) {
            // Go's rules: `Jan`/`Mon` need not be words, but `2006` must not continue a
            // number, and `_2` before `006` is `__2`-like handled by the table order.
            if *pattern == "Mon" && after.starts_with("th") {
                continue;
            }
            return (Some(*token), pattern.len());
        }
    }
    let literal = s
        .char_indices()
        .skip(1)
        .find(|(i, _)| {
            TABLE.iter().any(|(p, _)| s[*i..].starts_with(p)) || {
                let b = s.as_bytes();
                matches!(b[*i], b'.' | b',')
                    && b.get(*i + 1).is_some_and(|c| *c == b'0' || *c == b'9')
            }
        })
        .map_or(s.len(), |(i, _)| i);
    (None, literal)
}

impl Object for Time {
    fn type_name(&self) -> &str {
        "time.Time"
    }

    fn method(&self, name: &str) -> Option<Signature> {
        const NONE: &[Param] = &[];
        Some(match name {
            "Format" => Signature::new(&[Param::String], None),
            "Unix" | "UnixNano" | "UnixMilli" | "Year" | "Month" | "Day" | "Hour" | "Minute"
            | "Second" | "Nanosecond" | "YearDay" | "Weekday" | "UTC" | "Local" | "String" => {
                Signature::new(NONE, None)
            }
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: &[Value]) -> Result<Value, FuncError> {
        Ok(match name {
            "Format" => Value::from(self.format(args[0].as_str().unwrap_or_default())),
            "Unix" => Value::Int(self.unix),
            "UnixMilli" => Value::Int(self.unix * 1000 + i64::from(self.nanos / 1_000_000)),
            "UnixNano" => Value::Int(self.unix * 1_000_000_000 + i64::from(self.nanos)),
            "Year" => Value::Int(self.year),
            // A time.Month prints its name.
            "Month" => Value::str(MONTHS[self.month as usize - 1]),
            "Day" => Value::Int(i64::from(self.day)),
            "Hour" => Value::Int(i64::from(self.hour)),
            "Minute" => Value::Int(i64::from(self.minute)),
            "Second" => Value::Int(i64::from(self.second)),
            "Nanosecond" => Value::Int(i64::from(self.nanos)),
            "YearDay" => Value::Int(i64::from(self.yearday)),
            "Weekday" => Value::str(DAYS[self.weekday as usize]),
            "UTC" => Value::Object(std::sync::Arc::new(Time::utc(self.unix, self.nanos))),
            "Local" => Value::Object(std::sync::Arc::new(Time::local(self.unix, self.nanos))),
            "String" => Value::from(self.to_string()),
            other => {
                return Err(FuncError::NoMethod {
                    type_name: "time.Time".to_owned(),
                    method: other.to_owned(),
                });
            }
        })
    }

    fn fmt_v(&self, out: &mut String, _plus: bool) {
        out.push_str(&self.to_string());
    }

    fn is_stringer(&self) -> bool {
        true
    }
}

impl std::fmt::Display for Time {
    /// Go's `Time.String`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.format("2006-01-02 15:04:05.999999999 -0700 MST"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_go_reference_layouts() {
        // 2009-11-10 23:04:05.000123 UTC, a Tuesday, day 314.
        let t = Time::utc(1_257_894_245, 123_000);
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2009-11-10T23:04:05Z"
        );
        assert_eq!(
            t.format("Mon Jan _2 15:04:05 MST 2006"),
            "Tue Nov 10 23:04:05 UTC 2009"
        );
        assert_eq!(
            t.format("Monday, 02-Jan-06 3:4:5 PM"),
            "Tuesday, 10-Nov-09 11:4:5 PM"
        );
        assert_eq!(
            t.format("2006-01-02 15:04:05.000000"),
            "2009-11-10 23:04:05.000123"
        );
        assert_eq!(t.format("15:04:05.999"), "23:04:05");
        assert_eq!(
            t.format("002 __2 -0700 -07:00 Z0700"),
            "314 314 +0000 +00:00 Z"
        );
        assert_eq!(t.format("January 2, 2006"), "November 10, 2009");
        assert_eq!(t.to_string(), "2009-11-10 23:04:05.000123 +0000 UTC");
        assert_eq!(Time::utc(0, 0).format("2006-01-02 Mon"), "1970-01-01 Thu");
        assert_eq!(
            Time::utc(951_782_400, 0).format("2006-01-02 002"),
            "2000-02-29 060"
        );
    }

    #[test]
    fn methods_answer_as_go() {
        let t = Time::utc(1_257_894_245, 0);
        assert!(matches!(t.call("Unix", &[]), Ok(Value::Int(1_257_894_245))));
        assert!(matches!(t.call("Year", &[]), Ok(Value::Int(2009))));
        assert_eq!(t.call("Month", &[]).unwrap().as_str(), Some("November"));
        assert!(t.method("Nope").is_none());
    }
}
