//! Go's `fmt` printing (`Sprint`, `Sprintln`, `Sprintf`) over template [`Value`]s, and the
//! `strconv` float and quote formatting it relies on.
//!
//! The behaviour follows Go's `fmt` package: verbs, flags, width and precision (also from `*`
//! and `%[n]` argument indexes), the `%!verb(type=value)` complaints, `%!(EXTRA …)`,
//! `%!v(MISSING)`, and the recursive printing of lists, maps and structs where the flags apply
//! to every element. Floats get Go's shortest representation for `%v`; decimal digits come from
//! Rust's float formatting, which rounds exactly as Go's `strconv` does (half to even on exact
//! ties), and are laid out with Go's rules.

use super::isprint::is_print;
use super::value::{ListType, Value};

const NIL_ANGLE: &str = "<nil>";

/// Go's `fmt.Sprint`: operands printed with `%v`, a space between two operands when neither
/// is a string.
pub(crate) fn sprint(out: &mut Vec<u8>, args: &[Value]) {
    let mut p = Printer::new(out);
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(b' ');
        }
        p.print_arg(arg, 'v');
        prev_string = is_string;
    }
}

/// Go's `fmt.Sprintln`: operands printed with `%v`, always spaced, then a newline.
pub(crate) fn sprintln(out: &mut Vec<u8>, args: &[Value]) {
    let mut p = Printer::new(out);
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(b' ');
        }
        p.print_arg(arg, 'v');
    }
    p.buf.push(b'\n');
}

/// Go's `fmt.Sprintf`.
pub(crate) fn sprintf(out: &mut Vec<u8>, format: &str, args: &[Value]) {
    Printer::new(out).do_printf(format.as_bytes(), args);
}

/// Go's `strconv.Quote` (`ascii`: `QuoteToASCII`).
pub(crate) fn quote(out: &mut Vec<u8>, s: &str, ascii: bool) {
    out.push(b'"');
    for c in s.chars() {
        escaped_rune(out, c, '"', ascii);
    }
    out.push(b'"');
}

#[derive(Default, Clone, Copy)]
struct Flags {
    wid_present: bool,
    prec_present: bool,
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: usize,
    prec: usize,
}

struct Printer<'a> {
    buf: &'a mut Vec<u8>,
    f: Flags,
    erroring: bool,
    reordered: bool,
    good_arg_num: bool,
}

/// Go refuses widths, precisions and argument numbers above a million.
fn too_large(x: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&x)
}

/// Digits at `start..end` of `s`: (number, whether there was one, index after).
fn parse_num(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let mut num: i64 = 0;
    let mut is_num = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        if too_large(num) {
            return (0, false, end);
        }
        num = num * 10 + i64::from(s[i] - b'0');
        is_num = true;
        i += 1;
    }
    (num as usize, is_num, i)
}

/// `[n]` at the start of `s`: (zero-based index, bytes consumed, ok).
fn parse_arg_number(s: &[u8]) -> (usize, usize, bool) {
    if s.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..s.len() {
        if s[i] == b']' {
            let (width, ok, newi) = parse_num(s, 1, i);
            if !ok || newi != i || width == 0 {
                // Go computes width-1 = -1 for "[0]", which then fails the range check.
                return (usize::MAX, i + 1, ok && newi == i);
            }
            return (width - 1, i + 1, true);
        }
    }
    (0, 1, false)
}

fn count_runes(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c & 0xC0 != 0x80).count()
}

impl<'a> Printer<'a> {
    fn new(buf: &'a mut Vec<u8>) -> Self {
        Printer {
            buf,
            f: Flags::default(),
            erroring: false,
            reordered: false,
            good_arg_num: true,
        }
    }

    // ---- padding (Go's fmt.pad / padString / writePadding) ----

    fn write_padding(&mut self, n: usize) {
        let byte = if self.f.zero { b'0' } else { b' ' };
        self.buf.resize(self.buf.len() + n, byte);
    }

    fn pad(&mut self, b: &[u8]) {
        if !self.f.wid_present || self.f.wid == 0 {
            self.buf.extend_from_slice(b);
            return;
        }
        let width = self.f.wid.saturating_sub(count_runes(b));
        if !self.f.minus {
            self.write_padding(width);
            self.buf.extend_from_slice(b);
        } else {
            self.buf.extend_from_slice(b);
            self.write_padding(width);
        }
    }

    fn pad_str(&mut self, s: &str) {
        self.pad(s.as_bytes());
    }

    /// Pads with spaces whatever the `0` flag says.
    fn pad_spaces(&mut self, b: &[u8]) {
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(b);
        self.f.zero = zero;
    }

    // ---- Printf ----

    fn arg_number(
        &mut self,
        arg_num: usize,
        format: &[u8],
        i: usize,
        num_args: usize,
    ) -> (usize, usize, bool) {
        if format.len() <= i || format[i] != b'[' {
            return (arg_num, i, false);
        }
        self.reordered = true;
        let (index, wid, ok) = parse_arg_number(&format[i..]);
        if ok && index < num_args {
            return (index, i + wid, true);
        }
        self.good_arg_num = false;
        (arg_num, i + wid, ok)
    }

    fn int_from_arg(args: &[Value], arg_num: usize) -> (usize, bool, bool, usize) {
        // (magnitude, negative, is_int, new arg_num)
        let mut new_arg_num = arg_num;
        let mut num: i64 = 0;
        let mut is_int = false;
        if arg_num < args.len() {
            if let Value::Int(n) = args[arg_num] {
                num = n;
                is_int = true;
            }
            new_arg_num = arg_num + 1;
            if too_large(num) {
                num = 0;
                is_int = false;
            }
        }
        (num.unsigned_abs() as usize, num < 0, is_int, new_arg_num)
    }

    fn do_printf(&mut self, format: &[u8], args: &[Value]) {
        let end = format.len();
        let mut arg_num = 0usize;
        let mut after_index;
        self.reordered = false;
        let mut i = 0usize;
        'format: while i < end {
            self.good_arg_num = true;
            let last = i;
            while i < end && format[i] != b'%' {
                i += 1;
            }
            if i > last {
                self.buf.extend_from_slice(&format[last..i]);
            }
            if i >= end {
                break;
            }
            i += 1; // the '%'
            self.f = Flags::default();
            while i < end {
                match format[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = !self.f.minus,
                    b'+' => self.f.plus = true,
                    b'-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }

            // Argument index, then width.
            (arg_num, i, after_index) = self.arg_number(arg_num, format, i, args.len());
            if i < end && format[i] == b'*' {
                i += 1;
                let (wid, negative, ok, next) = Self::int_from_arg(args, arg_num);
                arg_num = next;
                self.f.wid = wid;
                self.f.wid_present = ok;
                if !ok {
                    self.buf.extend_from_slice(b"%!(BADWIDTH)");
                }
                if negative {
                    self.f.minus = true;
                    self.f.zero = false;
                }
                after_index = false;
            } else {
                let (wid, present, next) = parse_num(format, i, end);
                self.f.wid = wid;
                self.f.wid_present = present;
                i = next;
                if after_index && present {
                    self.good_arg_num = false;
                }
            }

            // Precision.
            if i + 1 < end && format[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                (arg_num, i, after_index) = self.arg_number(arg_num, format, i, args.len());
                if i < end && format[i] == b'*' {
                    i += 1;
                    let (prec, negative, ok, next) = Self::int_from_arg(args, arg_num);
                    arg_num = next;
                    // A negative precision counts as none, and is reported like a bad one.
                    self.f.prec_present = ok && !negative;
                    self.f.prec = if self.f.prec_present { prec } else { 0 };
                    if !self.f.prec_present {
                        self.buf.extend_from_slice(b"%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (prec, present, next) = parse_num(format, i, end);
                    i = next;
                    self.f.prec = if present { prec } else { 0 };
                    self.f.prec_present = true;
                }
            }

            if !after_index {
                (arg_num, i, _) = self.arg_number(arg_num, format, i, args.len());
            }

            if i >= end {
                self.buf.extend_from_slice(b"%!(NOVERB)");
                break 'format;
            }

            let (verb, size) = decode_char(&format[i..]);
            i += size;

            if verb == '%' {
                self.buf.push(b'%');
            } else if !self.good_arg_num {
                self.bang(verb, "(BADINDEX)");
            } else if arg_num >= args.len() {
                self.bang(verb, "(MISSING)");
            } else {
                if verb == 'v' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                self.print_arg(&args[arg_num], verb);
                arg_num += 1;
            }
        }

        if !self.reordered && arg_num < args.len() {
            self.f = Flags::default();
            self.buf.extend_from_slice(b"%!(EXTRA ");
            for (n, arg) in args[arg_num..].iter().enumerate() {
                if n > 0 {
                    self.buf.extend_from_slice(b", ");
                }
                if let Value::Nil = arg {
                    self.buf.extend_from_slice(NIL_ANGLE.as_bytes());
                } else {
                    self.buf.extend_from_slice(arg.type_name().as_bytes());
                    self.buf.push(b'=');
                    self.print_arg(arg, 'v');
                }
            }
            self.buf.push(b')');
        }
    }

    fn bang(&mut self, verb: char, what: &str) {
        self.buf.extend_from_slice(b"%!");
        push_char(self.buf, verb);
        self.buf.extend_from_slice(what.as_bytes());
    }

    // ---- one operand ----

    fn bad_verb(&mut self, verb: char, value: &Value) {
        self.erroring = true;
        self.buf.extend_from_slice(b"%!");
        push_char(self.buf, verb);
        self.buf.push(b'(');
        match value {
            Value::Nil => self.buf.extend_from_slice(NIL_ANGLE.as_bytes()),
            _ => {
                self.buf.extend_from_slice(value.type_name().as_bytes());
                self.buf.push(b'=');
                self.print_value(value, 'v', 0);
            }
        }
        self.buf.push(b')');
        self.erroring = false;
    }

    fn print_arg(&mut self, arg: &Value, verb: char) {
        if let Value::Nil = arg {
            match verb {
                'T' | 'v' => self.pad_str(NIL_ANGLE),
                _ => self.bad_verb(verb, arg),
            }
            return;
        }
        match verb {
            'T' => {
                let name = arg.type_name().to_owned();
                self.fmt_s(&name);
            }
            // Pointers are not modelled: no value here has an address worth printing.
            'p' => self.bad_verb(verb, arg),
            _ => self.print_value(arg, verb, 0),
        }
    }

    /// Go's `handleMethods` for objects implementing `fmt.Stringer`.
    fn handle_methods(&mut self, value: &Value, verb: char) -> bool {
        if self.erroring || self.f.sharp_v {
            return false;
        }
        let Value::Object(object) = value else {
            return false;
        };
        if !object.is_stringer() || !matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') {
            return false;
        }
        let mut s = String::new();
        object.fmt_v(&mut s, self.f.plus_v);
        self.fmt_string(&s, verb);
        true
    }

    fn print_value(&mut self, value: &Value, verb: char, depth: usize) {
        if self.handle_methods(value, verb) {
            return;
        }
        match value {
            // Only reached for the nil elements of []interface {} and map values.
            Value::Nil => {
                if self.f.sharp_v {
                    self.buf.extend_from_slice(b"interface {}(nil)");
                } else {
                    self.buf.extend_from_slice(NIL_ANGLE.as_bytes());
                }
            }
            Value::Bool(b) => self.fmt_bool(*b, verb, value),
            Value::Int(i) => self.fmt_integer(*i as u64, true, verb, value),
            Value::Float(f) => self.fmt_float(*f, verb, value),
            Value::Str(s) => self.fmt_string(s, verb),
            Value::List(list) => {
                if depth > MAX_PRINT_DEPTH {
                    self.buf.extend_from_slice(b"[...]");
                    return;
                }
                if self.f.sharp_v {
                    self.buf.extend_from_slice(list.ty.name().as_bytes());
                    self.buf.push(b'{');
                    for (i, item) in list.items.iter().enumerate() {
                        if i > 0 {
                            self.buf.extend_from_slice(b", ");
                        }
                        self.print_element(item, list.ty, verb, depth + 1);
                    }
                    self.buf.push(b'}');
                } else {
                    self.buf.push(b'[');
                    for (i, item) in list.items.iter().enumerate() {
                        if i > 0 {
                            self.buf.push(b' ');
                        }
                        self.print_element(item, list.ty, verb, depth + 1);
                    }
                    self.buf.push(b']');
                }
            }
            Value::Map(map) => {
                if depth > MAX_PRINT_DEPTH {
                    self.buf.extend_from_slice(b"map[...]");
                    return;
                }
                if self.f.sharp_v {
                    self.buf.extend_from_slice(b"map[string]interface {}{");
                } else {
                    self.buf.extend_from_slice(b"map[");
                }
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        if self.f.sharp_v {
                            self.buf.extend_from_slice(b", ");
                        } else {
                            self.buf.push(b' ');
                        }
                    }
                    self.fmt_string(key, verb);
                    self.buf.push(b':');
                    self.print_value(item, verb, depth + 1);
                }
                self.buf.push(if self.f.sharp_v { b'}' } else { b']' });
            }
            Value::Pair(pair) => {
                if self.f.sharp_v {
                    self.buf.extend_from_slice(b"memkv.KVPair");
                }
                self.buf.push(b'{');
                for (i, (name, field)) in [("Key", &pair.key), ("Value", &pair.value)]
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        if self.f.sharp_v {
                            self.buf.extend_from_slice(b", ");
                        } else {
                            self.buf.push(b' ');
                        }
                    }
                    if self.f.plus_v || self.f.sharp_v {
                        self.buf.extend_from_slice(name.as_bytes());
                        self.buf.push(b':');
                    }
                    self.fmt_string(field, verb);
                }
                self.buf.push(b'}');
            }
            Value::Object(object) => {
                if verb == 'v' {
                    let mut s = String::new();
                    object.fmt_v(&mut s, self.f.plus_v);
                    self.buf.extend_from_slice(s.as_bytes());
                } else {
                    self.bad_verb(verb, value);
                }
            }
        }
    }

    /// An element of a list: only `[]interface {}` elements can be nil.
    fn print_element(&mut self, item: &Value, ty: ListType, verb: char, depth: usize) {
        if !ty.holds_interfaces() && matches!(item, Value::Nil) {
            // A typed list never holds nil; print its zero value as Go would have one.
            self.print_value(&Value::zero_of(ty), verb, depth);
        } else {
            self.print_value(item, verb, depth);
        }
    }

    // ---- scalars ----

    fn fmt_bool(&mut self, b: bool, verb: char, value: &Value) {
        match verb {
            't' | 'v' => self.pad_str(if b { "true" } else { "false" }),
            _ => self.bad_verb(verb, value),
        }
    }

    fn fmt_integer(&mut self, u: u64, signed: bool, verb: char, value: &Value) {
        match verb {
            'v' if self.f.sharp_v && !signed => {
                let sharp = self.f.sharp;
                self.f.sharp = true;
                self.fmt_int_base(u, 16, signed, verb, LOWER);
                self.f.sharp = sharp;
            }
            'v' | 'd' => self.fmt_int_base(u, 10, signed, verb, LOWER),
            'b' => self.fmt_int_base(u, 2, signed, verb, LOWER),
            'o' | 'O' => self.fmt_int_base(u, 8, signed, verb, LOWER),
            'x' => self.fmt_int_base(u, 16, signed, verb, LOWER),
            'X' => self.fmt_int_base(u, 16, signed, verb, UPPER),
            'c' => self.fmt_c(u),
            'q' => self.fmt_qc(u),
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(verb, value),
        }
    }

    /// Go's `fmt.fmtInteger`.
    fn fmt_int_base(&mut self, mut u: u64, base: u64, signed: bool, verb: char, digits: &[u8; 17]) {
        let negative = signed && (u as i64) < 0;
        if negative {
            u = u.wrapping_neg();
        }
        let mut prec = 0usize;
        if self.f.prec_present {
            prec = self.f.prec;
            if prec == 0 && u == 0 {
                let zero = self.f.zero;
                self.f.zero = false;
                self.write_padding(self.f.wid);
                self.f.zero = zero;
                return;
            }
        } else if self.f.zero && self.f.wid_present {
            prec = self.f.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        // Digits are produced backwards.
        let mut rev: Vec<u8> = Vec::with_capacity(24 + prec);
        loop {
            rev.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while rev.len() < prec {
            rev.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => {
                    rev.push(digits[16]);
                    rev.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if negative {
            rev.push(b'-');
        } else if self.f.plus {
            rev.push(b'+');
        } else if self.f.space {
            rev.push(b' ');
        }
        rev.reverse();
        self.pad_spaces(&rev);
    }

    fn fmt_c(&mut self, u: u64) {
        let c = u32::try_from(u)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}');
        let mut b = [0u8; 4];
        self.pad(c.encode_utf8(&mut b).as_bytes());
    }

    fn fmt_qc(&mut self, u: u64) {
        let c = u32::try_from(u)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}');
        let mut q = vec![b'\''];
        escaped_rune(&mut q, c, '\'', self.f.plus);
        q.push(b'\'');
        self.pad(&q);
    }

    fn fmt_unicode(&mut self, u: u64) {
        let mut prec = 4;
        if self.f.prec_present && self.f.prec > 4 {
            prec = self.f.prec;
        }
        let hex = format!("{u:X}");
        let mut s = String::from("U+");
        s.extend(std::iter::repeat_n('0', prec.saturating_sub(hex.len())));
        s.push_str(&hex);
        if self.f.sharp
            && let Some(c) = u32::try_from(u).ok().and_then(char::from_u32)
            && is_print(c)
        {
            s.push_str(" '");
            s.push(c);
            s.push('\'');
        }
        self.pad_spaces(s.as_bytes());
    }

    fn fmt_float(&mut self, v: f64, verb: char, value: &Value) {
        match verb {
            'v' => self.fmt_float_prec(v, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float_prec(v, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float_prec(v, verb, 6),
            'F' => self.fmt_float_prec(v, 'f', 6),
            _ => self.bad_verb(verb, value),
        }
    }

    /// Go's `fmt.fmtFloat`.
    fn fmt_float_prec(&mut self, v: f64, verb: char, mut prec: i64) {
        if self.f.prec_present {
            prec = self.f.prec as i64;
        }
        // A sign always leads `num`; it is dropped below when not wanted.
        let mut num = vec![b'+'];
        format_float(&mut num, v, verb as u8, prec);
        if num[1] == b'-' || num[1] == b'+' {
            num.remove(0);
        }
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num[1] == b'I' || num[1] == b'N' {
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad_spaces(&num);
            return;
        }
        if self.f.sharp && verb != 'b' {
            let mut digits: i64 = match verb {
                'v' | 'g' | 'G' | 'x' => {
                    if prec == -1 {
                        6
                    } else {
                        prec
                    }
                }
                _ => 0,
            };
            let mut tail: Vec<u8> = Vec::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let mut i = 1;
            while i < num.len() {
                match num[i] {
                    b'.' => has_point = true,
                    b'p' | b'P' => {
                        tail.extend_from_slice(&num[i..]);
                        num.truncate(i);
                        break;
                    }
                    b'e' | b'E' if verb != 'x' && verb != 'X' => {
                        tail.extend_from_slice(&num[i..]);
                        num.truncate(i);
                        break;
                    }
                    c => {
                        if c != b'0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
                i += 1;
            }
            if !has_point {
                if num.len() == 2 && num[1] == b'0' {
                    digits -= 1;
                }
                num.push(b'.');
            }
            while digits > 0 {
                num.push(b'0');
                digits -= 1;
            }
            num.extend_from_slice(&tail);
        }
        if self.f.plus || num[0] != b'+' {
            if self.f.zero && self.f.wid_present && self.f.wid > num.len() {
                self.buf.push(num[0]);
                self.write_padding(self.f.wid - num.len());
                self.buf.extend_from_slice(&num[1..]);
                return;
            }
            self.pad(&num);
            return;
        }
        self.pad(&num[1..]);
    }

    // ---- strings ----

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        if self.f.prec_present
            && let Some((i, _)) = s.char_indices().nth(self.f.prec)
        {
            return &s[..i];
        }
        s
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad_str(s);
    }

    fn fmt_string(&mut self, s: &str, verb: char) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => self.fmt_s(s),
            'x' => self.fmt_sx(s.as_bytes(), LOWER),
            'X' => self.fmt_sx(s.as_bytes(), UPPER),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, &Value::str(s)),
        }
    }

    /// Go's `fmt.fmtSbx`: hexadecimal bytes, `% x` spaced, `%#x` with 0x.
    fn fmt_sx(&mut self, b: &[u8], digits: &[u8; 17]) {
        let mut length = b.len();
        if self.f.prec_present && self.f.prec < length {
            length = self.f.prec;
        }
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if self.f.wid_present {
                self.write_padding(self.f.wid);
            }
            return;
        }
        if self.f.wid_present && self.f.wid > width && !self.f.minus {
            self.write_padding(self.f.wid - width);
        }
        if self.f.sharp {
            self.buf.push(b'0');
            self.buf.push(digits[16]);
        }
        for (i, &c) in b[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                self.buf.push(b' ');
                if self.f.sharp {
                    self.buf.push(b'0');
                    self.buf.push(digits[16]);
                }
            }
            self.buf.push(digits[(c >> 4) as usize]);
            self.buf.push(digits[(c & 0xF) as usize]);
        }
        if self.f.wid_present && self.f.wid > width && self.f.minus {
            self.write_padding(self.f.wid - width);
        }
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            let mut q = Vec::with_capacity(s.len() + 2);
            q.push(b'`');
            q.extend_from_slice(s.as_bytes());
            q.push(b'`');
            self.pad(&q);
            return;
        }
        let mut q = Vec::with_capacity(s.len() + 2);
        quote(&mut q, s, self.f.plus);
        self.pad(&q);
    }
}

const MAX_PRINT_DEPTH: usize = 1000;
const LOWER: &[u8; 17] = b"0123456789abcdefx";
const UPPER: &[u8; 17] = b"0123456789ABCDEFX";

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

fn decode_char(b: &[u8]) -> (char, usize) {
    // `b` starts a valid UTF-8 sequence: it is a slice of a `str` at a char boundary.
    let len = match b[0] {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    };
    let c = std::str::from_utf8(&b[..len.min(b.len())])
        .ok()
        .and_then(|s| s.chars().next())
        .unwrap_or('\u{FFFD}');
    (c, len)
}

/// Go's `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| !((c < ' ' && c != '\t') || c == '`' || c == '\u{7F}' || c == '\u{FEFF}'))
}

/// Go's `strconv.appendEscapedRune`.
fn escaped_rune(out: &mut Vec<u8>, c: char, quote: char, ascii: bool) {
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
    let hex: &[u8; 17] = if fmt == b'X' { UPPER } else { LOWER };
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

/// Debug output is Go's `%v`, with the type for scalars.
impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        sprint(&mut out, std::slice::from_ref(self));
        write!(f, "{}({})", self.type_name(), String::from_utf8_lossy(&out))
    }
}

/// `%v`, as `print` shows the value.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        sprint(&mut out, std::slice::from_ref(self));
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64, fmt: u8, prec: i64) -> String {
        let mut out = Vec::new();
        format_float(&mut out, v, fmt, prec);
        String::from_utf8(out).unwrap()
    }

    fn printf(format: &str, args: &[Value]) -> String {
        let mut out = Vec::new();
        sprintf(&mut out, format, args);
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
    fn huge_precisions_pad_with_zeros() {
        let f = float(0.1, b'f', 100_000);
        assert_eq!(f.len(), 100_002);
        assert!(f.starts_with("0.1000000000000000055511151231257827"));
        assert!(f.ends_with("000"));
        let e = float(5e-324, b'e', 2000);
        assert!(e.starts_with("4.9406564584124654417656879286822137236505980"));
        assert!(e.ends_with("0e-324"));
        assert_eq!(
            printf("%.70000d|%.9U", &[Value::Int(1), Value::Int(65)]).len(),
            70_000 + 1 + 11
        );
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
    fn print_spaces_operands_that_are_not_strings() {
        let mut out = Vec::new();
        sprint(
            &mut out,
            &[
                Value::Int(1),
                Value::Int(2),
                Value::str("a"),
                Value::Int(3),
                Value::str("b"),
                Value::str("c"),
            ],
        );
        assert_eq!(out, b"1 2a3bc");
        out.clear();
        sprintln(&mut out, &[Value::str("a"), Value::str("b"), Value::Nil]);
        assert_eq!(out, b"a b <nil>\n");
    }

    #[test]
    fn printf_complaints() {
        assert_eq!(printf("%d", &[Value::str("x")]), "%!d(string=x)");
        assert_eq!(printf("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            printf("%d", &[Value::Int(1), Value::str("x"), Value::Nil]),
            "1%!(EXTRA string=x, <nil>)"
        );
        assert_eq!(printf("%", &[]), "%!(NOVERB)");
        assert_eq!(printf("%z", &[Value::Int(1)]), "%!z(int=1)");
        assert_eq!(printf("%[3]d", &[Value::Int(1)]), "%!d(BADINDEX)");
        assert_eq!(
            printf("%*d", &[Value::str("x"), Value::Int(1)]),
            "%!(BADWIDTH)1"
        );
        assert_eq!(
            printf("%.*d", &[Value::Int(-1), Value::Int(1)]),
            "%!(BADPREC)1"
        );
        assert_eq!(printf("%5%", &[]), "%");
    }

    #[test]
    fn flags_width_and_precision_on_integers() {
        let n = [Value::Int(-42)];
        assert_eq!(
            printf(
                "%6d|%-6d|%06d|%+d|%x|%X|%o|%b",
                &[
                    Value::Int(42),
                    Value::Int(42),
                    Value::Int(-42),
                    Value::Int(42),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5),
                ]
            ),
            "    42|42    |-00042|+42|ff|FF|10|101"
        );
        assert_eq!(
            printf(
                "%#x|%#o|%#b|%O",
                &[Value::Int(255), Value::Int(8), Value::Int(5), Value::Int(8)]
            ),
            "0xff|010|0b101|0o10"
        );
        assert_eq!(printf("%8.4d|", &n), "   -0042|");
        assert_eq!(printf("%.0d|", &[Value::Int(0)]), "|");
        assert_eq!(
            printf(
                "%c%c|%q|%U|%#U",
                &[
                    Value::Int(72),
                    Value::Int(233),
                    Value::Int(39),
                    Value::Int(0x1F600),
                    Value::Int(65)
                ]
            ),
            "Hé|'\\''|U+1F600|U+0041 'A'"
        );
    }
}
