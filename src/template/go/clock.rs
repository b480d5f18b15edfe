//! Whether a template's output follows the clock: it calls confd's `datetime` and prints more
//! of the time than the date. `{{ datetime.Year }}` or `{{ datetime.Format "2006-01-02" }}`
//! changes once a day at most; `{{ datetime }}` or `{{ datetime.Unix }}` makes every render
//! differ, so every render rewrites the file and reloads the service, which is worth a warning.

use super::Template;
use super::node::{Arg, Node, Pipe};

/// `time.Time` methods whose result changes at most once a day.
const DATE_ONLY: &[&str] = &[
    "Year", "Month", "Day", "YearDay", "Weekday", "ISOWeek", "Date", "Location", "IsZero",
];

impl Template {
    /// Whether two renders a second apart may differ because of `datetime`. Any use this cannot
    /// see through (the time in a variable, passed to a function, printed whole) counts.
    pub fn follows_the_clock(&self) -> bool {
        self.trees.iter().any(|tree| nodes(&tree.root))
    }
}

fn nodes(list: &[Node]) -> bool {
    list.iter().any(|node| match node {
        Node::Action(pipe) => pipe_uses_clock(pipe),
        Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
            pipe_uses_clock(&branch.pipe)
                || nodes(&branch.list)
                || branch.else_list.as_deref().is_some_and(nodes)
        }
        Node::Template {
            pipe: Some(pipe), ..
        } => pipe_uses_clock(pipe),
        _ => false,
    })
}

fn pipe_uses_clock(pipe: &Pipe) -> bool {
    pipe.cmds
        .iter()
        .any(|command| match command.args.split_first() {
            // `datetime.Method args…` or `(datetime).Method args…`.
            Some((Arg::Chain { node, fields, .. }, rest)) if is_datetime(node) => {
                !date_only(fields, rest) || rest.iter().any(arg_uses_clock)
            }
            _ => command.args.iter().any(arg_uses_clock),
        })
}

fn arg_uses_clock(arg: &Arg) -> bool {
    match arg {
        Arg::Func { name, .. } => &**name == "datetime",
        Arg::Chain { node, fields, .. } if is_datetime(node) => !date_only(fields, &[]),
        Arg::Chain { node, .. } => arg_uses_clock(node),
        Arg::Pipe(pipe) => pipe_uses_clock(pipe),
        _ => false,
    }
}

/// `datetime`, or `(datetime)`.
fn is_datetime(arg: &Arg) -> bool {
    match arg {
        Arg::Func { name, .. } => &**name == "datetime",
        Arg::Pipe(pipe) => {
            pipe.decl.is_empty()
                && matches!(pipe.cmds.as_slice(), [command]
                    if matches!(command.args.as_slice(), [only] if is_datetime(only)))
        }
        _ => false,
    }
}

/// Whether `datetime.<fields> <args>` changes at most once a day: one date method, or `Format`
/// with a literal layout of no clock element (Go's layouts write the hour as 15, 3 or 03, the
/// minute as 4 or 04, the second as 5 or 05, and fractions as .000 or ,999).
fn date_only(fields: &[std::sync::Arc<str>], args: &[Arg]) -> bool {
    match fields {
        [method] if DATE_ONLY.contains(&&**method) => true,
        [method] if &**method == "Format" => match args {
            [Arg::Str { value, .. }] => value.as_str().is_some_and(|layout| {
                !layout.contains(['3', '4', '5'])
                    && ![".0", ".9", ",0", ",9"].iter().any(|f| layout.contains(f))
            }),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::template::go::engine::GoEngine;

    fn follows(source: &str) -> bool {
        GoEngine::default()
            .parse("t", source)
            .unwrap_or_else(|e| panic!("{source}: {e:?}"))
            .follows_the_clock()
    }

    #[test]
    fn the_date_alone_does_not_follow_the_clock() {
        for source in [
            "no time at all {{ getenv \"HOME\" }}",
            "# (c) {{ datetime.Year }}",
            "{{ (datetime).Year }}-{{ datetime.Month }}",
            "{{ datetime.Format \"2006-01-02\" }}",
            "{{ (datetime).Format \"Jan _2, 2006\" }}",
            "{{ if gt datetime.Year 2020 }}new{{ end }}",
            "{{ printf \"%d\" datetime.Year }}",
        ] {
            assert!(!follows(source), "{source}");
        }
    }

    #[test]
    fn the_time_of_day_or_the_whole_time_follows_the_clock() {
        for source in [
            "{{ datetime }}",
            "{{ datetime.Unix }}",
            "{{ datetime.Format \"2006-01-02 15:04:05\" }}",
            "{{ datetime.Format \"15h\" }}",
            "{{ datetime.Format \"2006-01-02.000\" }}",
            "{{ $layout := \"2006\" }}{{ datetime.Format $layout }}",
            "{{ $t := datetime }}{{ $t.Year }}",
            "{{ printf \"%v\" datetime }}",
            "{{ range getvs \"/a\" }}{{ datetime.Second }}{{ end }}",
            "{{ define \"x\" }}{{ datetime }}{{ end }}{{ template \"x\" }}",
        ] {
            assert!(follows(source), "{source}");
        }
    }
}
