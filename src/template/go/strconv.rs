//! Go's `strconv`, the parts templates need: reading the literals of the template language
//! (`quote.go`'s `Unquote` and `UnquoteChar`, `atoi.go`'s `ParseInt` and `ParseUint`, `atof.go`'s
//! `ParseFloat`, with Go's base prefixes and `_` separators) and writing what `fmt` prints
//! (`quote.go`'s `Quote`, `ftoa.go`'s `FormatFloat`).
//!
//! Floats get Go's shortest representation for `%v`; decimal digits come from Rust's float
//! formatting, which rounds exactly as Go's `strconv` does (half to even on exact ties), and
//! are laid out with Go's rules.

use super::isprint::is_print;

// ---- reading literals ----

/// Go's `strconv.ErrSyntax`: a quoted literal that is not one (the literal, as written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid syntax in {0}")]
pub(crate) struct SyntaxError(pub String);

/// Go's `strconv.Unquote` for string and character literals, and raw strings.
pub(crate) fn unquote(text: &str) -> Result<String, SyntaxError> {
    let bad = || SyntaxError(text.to_owned());
    if let Some(raw) = text.strip_prefix('`') {
        let raw = raw.strip_suffix('`').ok_or_else(bad)?;
        return Ok(raw.replace('\r', ""));
    }
    let quote = text.chars().next().ok_or_else(bad)?;
    if quote != '"' && quote != '\'' {
        return Err(bad());
    }
    let body = text[1..].strip_suffix(quote).ok_or_else(bad)?;
    if body.contains('\n') {
        return Err(bad());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (piece, tail) = unquote_char(rest, quote).map_err(|()| bad())?;
        match piece {
            Piece::Char(c) => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            Piece::Byte(b) => out.push(b),
        }
        rest = tail;
        if quote == '\'' && !rest.is_empty() {
            return Err(bad());
        }
    }
    // A `\x` or octal escape may make bytes that are not UTF-8; those cannot be held here.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

pub(crate) enum Piece {
    Char(char),
    Byte(u8),
}

/// Go's `strconv.UnquoteChar`: the first character of `s`, escapes decoded, and the rest.
pub(crate) fn unquote_char(s: &str, quote: char) -> Result<(Piece, &str), ()> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(())?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(());
    }
    if c != '\\' {
        return Ok((Piece::Char(c), chars.as_str()));
    }
    let e = chars.next().ok_or(())?;
    let rest = chars.as_str();
    let simple = match e {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '\'' | '"' if e == quote => Some(e),
        _ => None,
    };
    if let Some(c) = simple {
        return Ok((Piece::Char(c), rest));
    }
    match e {
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            if rest.len() < n || !rest.is_char_boundary(n) {
                return Err(());
            }
            let v = u32::from_str_radix(&rest[..n], 16).map_err(|_| ())?;
            if rest[..n].starts_with(['+', '-']) {
                return Err(());
            }
            if e == 'x' {
                return Ok((Piece::Byte(v as u8), &rest[n..]));
            }
            let c = char::from_u32(v).ok_or(())?;
            Ok((Piece::Char(c), &rest[n..]))
        }
        '0'..='7' => {
            let digits = &s[1..];
            if digits.len() < 3 || !digits.is_char_boundary(3) {
                return Err(());
            }
            let mut v = 0u32;
            for b in digits[..3].bytes() {
                if !(b'0'..=b'7').contains(&b) {
                    return Err(());
                }
                v = v * 8 + u32::from(b - b'0');
            }
            if v > 255 {
                return Err(());
            }
            Ok((Piece::Byte(v as u8), &digits[3..]))
        }
        _ => Err(()),
    }
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with(['+', '-']) {
        return None;
    }
    let (base, digits) = match s.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &s[2..]),
        [b'0', b'o' | b'O', ..] => (8, &s[2..]),
        [b'0', b'b' | b'B', ..] => (2, &s[2..]),
        [b'0', _, ..] => (8, &s[1..]),
        _ => (10, s),
    };
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits, base).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(body)?;
    if neg {
        if u > 1 << 63 {
            None
        } else {
            Some((u as i64).wrapping_neg())
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms the lexer lets through.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let value = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        parse_hex_float(hex)?
    } else {
        if !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -value } else { value })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int.chars().chain(frac.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let shift = exp - 4 * frac.len() as i32;
    Some(value * 2f64.powi(shift))
}

// ---- writing ----

/// Go's `strconv.Quote` (`ascii`: `QuoteToASCII`).
pub(crate) fn quote(out: &mut Vec<u8>, s: &str, ascii: bool) {
    out.push(b'"');
    for c in s.chars() {
        escaped_rune(out, c, '"', ascii);
    }
    out.push(b'"');
}

/// [`quote`] as a `String`, for messages (Go's `%q` of a string).
pub(crate) fn quoted(s: &str) -> String {
    let mut out = Vec::new();
    quote(&mut out, s, false);
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `c` in UTF-8.
pub(crate) fn push_char(out: &mut Vec<u8>, c: char) {
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

/// Go's `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| !((c < ' ' && c != '\t') || c == '`' || c == '\u{7F}' || c == '\u{FEFF}'))
}

/// Go's `strconv.appendEscapedRune`.
pub(crate) fn escaped_rune(out: &mut Vec<u8>, c: char, quote: char, ascii: bool) {
    if c == quote || c == '\\' {
        out.push(b'\\');
        out.push(c as u8);
        return;
    }
    let printable = if ascii {
        c.is_ascii() && is_print(c)
    } else {
        is_print(c)
    };
    if printable {
        push_char(out, c);
        return;
    }
    let escape: &[u8] = match c {
        '\u{7}' => b"\\a",
        '\u{8}' => b"\\b",
        '\u{c}' => b"\\f",
        '\n' => b"\\n",
        '\r' => b"\\r",
        '\t' => b"\\t",
        '\u{b}' => b"\\v",
        _ => {
            let code = c as u32;
            let text = if code < 0x20 || code == 0x7F {
                format!("\\x{code:02x}")
            } else if code < 0x10000 {
                format!("\\u{code:04x}")
            } else {
                format!("\\U{code:08x}")
            };
            out.extend_from_slice(text.as_bytes());
            return;
        }
    };
    out.extend_from_slice(escape);
}

// ---- strconv.FormatFloat ----

const LOWERHEX: &[u8; 16] = b"0123456789abcdef";
const UPPERHEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decimal digits of a float: `0.d1d2d3… × 10^dp`, trailing zeros removed (none: zero).
struct Decimal {
    d: Vec<u8>,
    dp: i64,
}

impl Decimal {
    fn nd(&self) -> i64 {
        self.d.len() as i64
    }

    /// From Rust's `{:e}` output of a non-negative number (`1.25e-3`).
    fn from_exp(text: &str) -> Decimal {
        let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
        let exp: i64 = exp.parse().unwrap_or(0);
        let d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        Decimal { d, dp: exp + 1 }.trimmed()
    }

    /// From Rust's `{:.N}` output of a non-negative number (`123.4500`).
    fn from_fixed(text: &str) -> Decimal {
        let int_len = text.find('.').unwrap_or(text.len()) as i64;
        let d: Vec<u8> = text.bytes().filter(u8::is_ascii_digit).collect();
        Decimal { d, dp: int_len }.trimmed()
    }

    fn trimmed(mut self) -> Decimal {
        let lead = self.d.iter().take_while(|&&c| c == b'0').count();
        self.d.drain(..lead);
        self.dp -= lead as i64;
        while self.d.last() == Some(&b'0') {
            self.d.pop();
        }
        if self.d.is_empty() {
            self.dp = 0;
        }
        self
    }
}

/// More digits than any float64 has, after the point or in all: asking Rust for more (it
/// refuses precisions above 65535) would only add zeros, which the layout pads anyway.
const EXACT_DIGITS: usize = 1100;

/// Go's `strconv.AppendFloat(dst, v, fmt, prec, 64)`.
pub(crate) fn format_float(out: &mut Vec<u8>, v: f64, fmt: u8, mut prec: i64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v < 0.0 { b"-Inf" } else { b"+Inf" });
        return;
    }
    let bits = v.to_bits();
    let neg = bits >> 63 != 0;
    let mut exp = ((bits >> 52) & 0x7FF) as i64;
    let mut mant = bits & ((1u64 << 52) - 1);
    if exp == 0 {
        exp += 1;
    } else {
        mant |= 1u64 << 52;
    }
    exp -= 1023;
    match fmt {
        b'b' => return format_b(out, neg, mant, exp),
        b'x' | b'X' => return format_x(out, prec, fmt, neg, mant, exp),
        _ => {}
    }
    let abs = v.abs();
    let shortest = prec < 0;
    let digs = if shortest {
        let digs = if abs == 0.0 {
            Decimal { d: vec![], dp: 0 }
        } else {
            Decimal::from_exp(&format!("{abs:e}"))
        };
        prec = match fmt {
            b'e' | b'E' => (digs.nd() - 1).max(0),
            b'f' => (digs.nd() - digs.dp).max(0),
            _ => digs.nd(),
        };
        digs
    } else if fmt == b'f' {
        Decimal::from_fixed(&format!("{abs:.*}", (prec as usize).min(EXACT_DIGITS)))
    } else {
        let digits = match fmt {
            b'e' | b'E' => prec + 1,
            _ => {
                if prec == 0 {
                    prec = 1;
                }
                prec
            }
        };
        Decimal::from_exp(&format!(
            "{abs:.*e}",
            ((digits - 1) as usize).min(EXACT_DIGITS)
        ))
    };
    format_digits(out, shortest, neg, &digs, prec, fmt);
}

fn format_digits(out: &mut Vec<u8>, shortest: bool, neg: bool, digs: &Decimal, prec: i64, fmt: u8) {
    match fmt {
        b'e' | b'E' => format_e(out, neg, digs, prec, fmt),
        b'f' => format_f(out, neg, digs, prec),
        b'g' | b'G' => {
            let mut eprec = prec;
            if eprec > digs.nd() && digs.nd() >= digs.dp {
                eprec = digs.nd();
            }
            if shortest {
                eprec = 6;
            }
            let exp = digs.dp - 1;
            if exp < -4 || exp >= eprec {
                let p = prec.min(digs.nd());
                format_e(out, neg, digs, p - 1, fmt + b'e' - b'g');
                return;
            }
            let p = if prec > digs.dp { digs.nd() } else { prec };
            format_f(out, neg, digs, (p - digs.dp).max(0));
        }
        _ => {
            out.push(b'%');
            out.push(fmt);
        }
    }
}

fn format_e(out: &mut Vec<u8>, neg: bool, d: &Decimal, prec: i64, fmt: u8) {
    if neg {
        out.push(b'-');
    }
    out.push(d.d.first().copied().unwrap_or(b'0'));
    if prec > 0 {
        out.push(b'.');
        let mut i = 1;
        let m = d.nd().min(prec + 1);
        if i < m {
            out.extend_from_slice(&d.d[i as usize..m as usize]);
            i = m;
        }
        while i <= prec {
            out.push(b'0');
            i += 1;
        }
    }
    out.push(fmt);
    let mut exp = d.dp - 1;
    if d.d.is_empty() {
        exp = 0;
    }
    if exp < 0 {
        out.push(b'-');
        exp = -exp;
    } else {
        out.push(b'+');
    }
    if exp < 10 {
        out.push(b'0');
    }
    out.extend_from_slice(exp.to_string().as_bytes());
}

fn format_f(out: &mut Vec<u8>, neg: bool, d: &Decimal, prec: i64) {
    if neg {
        out.push(b'-');
    }
    if d.dp > 0 {
        let m = d.nd().min(d.dp);
        out.extend_from_slice(&d.d[..m as usize]);
        for _ in m..d.dp {
            out.push(b'0');
        }
    } else {
        out.push(b'0');
    }
    if prec > 0 {
        out.push(b'.');
        for i in 0..prec {
            let j = d.dp + i;
            out.push(if 0 <= j && j < d.nd() {
                d.d[j as usize]
            } else {
                b'0'
            });
        }
    }
}

/// `%b` of a float: decimal mantissa, `p`, binary exponent.
fn format_b(out: &mut Vec<u8>, neg: bool, mant: u64, exp: i64) {
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(mant.to_string().as_bytes());
    out.push(b'p');
    let exp = exp - 52;
    if exp >= 0 {
        out.push(b'+');
    }
    out.extend_from_slice(exp.to_string().as_bytes());
}

/// `%x` of a float: `-0x1.8p+01`.
fn format_x(out: &mut Vec<u8>, prec: i64, fmt: u8, neg: bool, mut mant: u64, mut exp: i64) {
    if mant == 0 {
        exp = 0;
    }
    // Shift the digits so the leading 1 is at bit 60.
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if (0..15).contains(&prec) {
        let shift = (prec * 4) as u32;
        let extra = (mant << shift) & ((1u64 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let hex: &[u8; 16] = if fmt == b'X' { UPPERHEX } else { LOWERHEX };
    if neg {
        out.push(b'-');
    }
    out.push(b'0');
    out.push(fmt);
    out.push(b'0' + ((mant >> 60) & 1) as u8);
    mant <<= 4;
    if prec < 0 && mant != 0 {
        out.push(b'.');
        while mant != 0 {
            out.push(hex[((mant >> 60) & 15) as usize]);
            mant <<= 4;
        }
    } else if prec > 0 {
        out.push(b'.');
        for _ in 0..prec {
            out.push(hex[((mant >> 60) & 15) as usize]);
            mant <<= 4;
        }
    }
    out.push(if fmt == b'X' { b'P' } else { b'p' });
    if exp < 0 {
        out.push(b'-');
        exp = -exp;
    } else {
        out.push(b'+');
    }
    if exp < 10 {
        out.push(b'0');
    }
    out.extend_from_slice(exp.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64, fmt: u8, prec: i64) -> String {
        let mut out = Vec::new();
        format_float(&mut out, v, fmt, prec);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn shortest_floats_as_go_prints_them() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(float(v, b'g', -1), want, "{v:e}");
        }
    }

    #[test]
    fn fixed_precision_rounds_half_to_even_on_exact_ties() {
        assert_eq!(float(0.5, b'f', 0), "0");
        assert_eq!(float(1.5, b'f', 0), "2");
        assert_eq!(float(2.5, b'f', 0), "2");
        assert_eq!(float(0.125, b'f', 2), "0.12");
        assert_eq!(float(0.375, b'f', 2), "0.38");
        // 2.675 is really 2.67499999…
        assert_eq!(float(2.675, b'f', 2), "2.67");
        assert_eq!(float(2.5, b'e', 0), "2e+00");
        assert_eq!(float(1234.5678, b'e', 3), "1.235e+03");
        assert_eq!(float(1e-10, b'E', -1), "1E-10");
        assert_eq!(float(100.0, b'g', 3), "100");
        assert_eq!(float(1.0, b'g', 5), "1");
        assert_eq!(float(0.00012345, b'g', 3), "0.000123");
    }

    #[test]
    fn binary_and_hexadecimal_floats() {
        assert_eq!(float(1.0, b'b', -1), "4503599627370496p-52");
        assert_eq!(float(1.0, b'x', -1), "0x1p+00");
        assert_eq!(float(0.1, b'x', -1), "0x1.999999999999ap-04");
        assert_eq!(float(1.9375, b'x', 1), "0x1.fp+00");
        assert_eq!(float(1.96875, b'x', 1), "0x1.0p+01");
        assert_eq!(float(-0.5, b'X', -1), "-0X1P-01");
    }

    #[test]
    fn quoting_escapes_what_go_escapes() {
        let q = |s: &str, ascii: bool| {
            let mut out = Vec::new();
            quote(&mut out, s, ascii);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(q("a\"b\\c", false), r#""a\"b\\c""#);
        assert_eq!(
            q("\u{7}\u{8}\u{c}\n\r\t\u{b}\0\u{7f}", false),
            r#""\a\b\f\n\r\t\v\x00\x7f""#
        );
        assert_eq!(q("é\u{2028}😀", false), "\"é\\u2028😀\"");
        assert_eq!(q("é\u{2028}😀", true), r#""\u00e9\u2028\U0001f600""#);
        assert!(can_backquote("a\tb"));
        assert!(!can_backquote("a`b"));
        assert!(!can_backquote("a\nb"));
    }

    #[test]
    fn unquoting_follows_strconv() {
        assert_eq!(
            unquote(r#""a\tb\n\"\\\x41\u00e9\101\U0001F600""#).as_deref(),
            Ok("a\tb\n\"\\AéA😀")
        );
        assert_eq!(unquote("`a\\n\r\nb`").as_deref(), Ok("a\\n\nb"));
        // UTF-8 made of byte escapes is whole again.
        assert_eq!(unquote(r#""\xc3\xa9""#).as_deref(), Ok("é"));
        for bad in [r#""\q""#, r#""\'""#, r#""\x4""#, r#""\400""#, r#""\ud800""#] {
            assert!(unquote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn underscores_only_between_digits() {
        for ok in ["1_000", "0x_ff", "0b1_0", "-1_0"] {
            assert!(underscore_ok(ok), "{ok}");
        }
        for bad in ["_1", "1_", "1__0", "1_.5"] {
            assert!(!underscore_ok(bad), "{bad}");
        }
    }
}
