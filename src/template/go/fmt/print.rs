//! Go's `fmt/print.go`: the format string of `Printf` (flags, width, precision, argument
//! indexes and the complaints about them) and how each operand is printed, by its type and
//! the verb: scalars go to `format`, lists, maps and structs are printed element by element.

use super::super::strconv::push_char;
use super::super::value::{ListType, Value};
use super::{Flags, LOWER, NIL_ANGLE, Printer, UPPER};

/// How deep lists and maps nested in one another are printed before `[...]`.
const MAX_PRINT_DEPTH: usize = 1000;

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

impl Printer<'_> {
    // ---- Printf ----

    pub(super) fn arg_number(
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

    pub(super) fn int_from_arg(args: &[Value], arg_num: usize) -> (usize, bool, bool, usize) {
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

    pub(super) fn do_printf(&mut self, format: &[u8], args: &[Value]) {
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

    pub(super) fn bang(&mut self, verb: char, what: &str) {
        self.buf.extend_from_slice(b"%!");
        push_char(self.buf, verb);
        self.buf.extend_from_slice(what.as_bytes());
    }

    // ---- one operand ----

    pub(super) fn bad_verb(&mut self, verb: char, value: &Value) {
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

    pub(super) fn print_arg(&mut self, arg: &Value, verb: char) {
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
    pub(super) fn handle_methods(&mut self, value: &Value, verb: char) -> bool {
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

    pub(super) fn print_value(&mut self, value: &Value, verb: char, depth: usize) {
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
    pub(super) fn print_element(&mut self, item: &Value, ty: ListType, verb: char, depth: usize) {
        if !ty.holds_interfaces() && matches!(item, Value::Nil) {
            // A typed list never holds nil; print its zero value as Go would have one.
            self.print_value(&Value::zero_of(ty), verb, depth);
        } else {
            self.print_value(item, verb, depth);
        }
    }

    // ---- scalars ----

    pub(super) fn fmt_bool(&mut self, b: bool, verb: char, value: &Value) {
        match verb {
            't' | 'v' => self.pad_str(if b { "true" } else { "false" }),
            _ => self.bad_verb(verb, value),
        }
    }
    pub(super) fn fmt_integer(&mut self, u: u64, signed: bool, verb: char, value: &Value) {
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

    pub(super) fn fmt_float(&mut self, v: f64, verb: char, value: &Value) {
        match verb {
            'v' => self.fmt_float_prec(v, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float_prec(v, verb, -1),
            'f' | 'e' | 'E' => self.fmt_float_prec(v, verb, 6),
            'F' => self.fmt_float_prec(v, 'f', 6),
            _ => self.bad_verb(verb, value),
        }
    }

    pub(super) fn fmt_string(&mut self, s: &str, verb: char) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => self.fmt_s(s),
            'x' => self.fmt_sx(s.as_bytes(), LOWER),
            'X' => self.fmt_sx(s.as_bytes(), UPPER),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, &Value::str(s)),
        }
    }
}
