//! Go's `fmt` printing (`Sprint`, `Sprintln`, `Sprintf`) over template [`Value`]s.
//!
//! The behaviour follows Go's `fmt` package: verbs, flags, width and precision (also from `*`
//! and `%[n]` argument indexes), the `%!verb(type=value)` complaints, `%!(EXTRA …)`,
//! `%!v(MISSING)`, and the recursive printing of lists, maps and structs where the flags apply
//! to every element. The files mirror Go's own:
//!
//! - this one: the entry points and the printer's state (`fmt/print.go`'s `pp`, `fmt/format.go`'s
//!   `fmtFlags`), and `Value`'s `Display` and `Debug`, which print through them;
//! - `print`: `fmt/print.go`, the format string and the choice of how to print each operand;
//! - `format`: `fmt/format.go`, padding and the layout of integers, floats and strings.
//!
//! The digits of floats and quoted strings come from [`super::strconv`], as Go's `fmt` takes
//! them from its `strconv`.

mod format;
mod print;

use super::value::Value;

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
}

/// The digits of integers in bases up to 16, and the `x` of a `0x` prefix.
const LOWER: &[u8; 17] = b"0123456789abcdefx";
const UPPER: &[u8; 17] = b"0123456789ABCDEFX";

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
    use super::super::strconv::format_float;
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
