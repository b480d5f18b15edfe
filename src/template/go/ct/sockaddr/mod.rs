//! consul-template's `sockaddr` (added after v0.20.1): its arguments, joined by spaces inside
//! one action (`{{ ARGS }}`), are a go-sockaddr template (`sockaddr/template.Parse`), whose
//! result is returned. `{{ sockaddr "GetPrivateIP" }}` is the host's private address.
//!
//! The inner template runs on terad's own Go engine with go-sockaddr's function map
//! ([`funcs`]) over the host's interface table ([`host::Host`]), read from the kernel when
//! `sockaddr` is called (no network traffic), or given by a test through the render context.
//! Its errors are go-sockaddr's and Go's, with Go's positions (0-based byte columns), so they
//! read as consul-template's.
//!
//! A literal argument is parsed at load: a template that does not parse, or calls `math`
//! (which terad does not provide), is refused there with its position.

pub mod addr;
pub mod funcs;
pub mod host;

#[cfg(test)]
mod tests;

use std::sync::{Arc, LazyLock};

use super::super::{ExecError, FuncError, Functions, Param, ParseError, Signature, Template};
use crate::template::go::context::GoContext;
use crate::template::go::strconv;
use host::Host;

/// Why go-sockaddr's evaluation failed, in go-sockaddr's words (capitals included, as they are
/// what consul-template prints).
#[derive(Debug, thiserror::Error)]
pub enum SockaddrError {
    #[error("unable to parse template {}: {error}", quoted(.input))]
    Parse { input: String, error: String },
    #[error("unable to execute sockaddr input {}: {error}", quoted(.input))]
    Execute { input: String, error: String },
    #[error("unable to query interface addresses: {0}")]
    Query(#[from] host::ReadError),
    #[error("No default interface found")]
    NoDefaultInterface,
    #[error("go-sockaddr's function {} is not supported by terad", quoted(.0))]
    Refused(String),
    #[error("invalid {operation} selector {}", quoted(.selector))]
    Selector {
        operation: &'static str,
        selector: String,
    },
    #[error("unknown sort type: {}", quoted(.0))]
    SortUnknown(String),
    #[error("unsupported attribute name {}", quoted(.0))]
    AttrUnknown(String),
    #[error("unable to obtain attribute {name} from type {type_name} ({value})")]
    AttrOfType {
        name: String,
        type_name: String,
        value: String,
    },
    #[error("unsupported unique constraint {}", quoted(.0))]
    UniqueUnknown(String),
    #[error(
        "unable to seek past the end of the interface array: offset ({offset}) exceeds the number of interfaces ({count})"
    )]
    Offset { offset: u64, count: usize },
    #[error("expected unsigned integer; found {0}")]
    NotUnsigned(i64),
    #[error("Unknown interface flag: {}", quoted(.0))]
    UnknownFlag(String),
    #[error("Unable to compile {what} regexp {}: {error}", quoted(.pattern))]
    Regexp {
        what: &'static str,
        pattern: String,
        error: String,
    },
    #[error("unable to create an IP address from {}: invalid IPAddr {network}", quoted(.network))]
    Network { network: String },
    #[error("unable to lookup RFC number {}: {cause}", quoted(.rfc))]
    RfcLookup {
        rfc: String,
        cause: Box<SockaddrError>,
    },
    #[error("unable to parse RFC number {}: {error}", quoted(.rfc))]
    RfcNumber { rfc: String, error: String },
    #[error("unsupported RFC {0}")]
    RfcUnknown(u64),
    #[error("invalid exclude size argument ({}): {error}", quoted(.size))]
    SizeArgument { size: String, error: String },
    #[error("mask size out of bounds for {family} address: {size}")]
    SizeOutOfBounds { family: &'static str, size: u64 },
    #[error("unsupported type {} {}", quoted(.ty), quoted(.input))]
    TypeUnknown { ty: String, input: String },
}

impl From<SockaddrError> for FuncError {
    fn from(error: SockaddrError) -> FuncError {
        FuncError::failed(error)
    }
}

/// Go's `%q` (go-sockaddr's `%+q` differs only for text that is not ASCII).
fn quoted(text: &str) -> String {
    strconv::quoted(text)
}

/// The name go-sockaddr parses its template under.
const NAME: &str = "sockaddr.Parse";

static FUNCTIONS: LazyLock<Functions<Host>> = LazyLock::new(funcs::functions);

/// Adds `sockaddr` to consul-template's map.
pub fn register(f: &mut Functions<GoContext>) {
    f.register(
        "sockaddr",
        Signature::new(&[], Some(Param::String)),
        |context, args| {
            let args: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
            let host = match &context.sockaddr_host {
                Some(host) => Arc::clone(host),
                None => Arc::new(Host::read().map_err(SockaddrError::from)?),
            };
            Ok(evaluate(&host, &args)?.into())
        },
    );
}

/// What `sockaddr ARGS...` gives on `host`.
pub fn evaluate(host: &Host, args: &[&str]) -> Result<String, SockaddrError> {
    let input = format!("{{{{ {} }}}}", args.join(" "));
    let template =
        Template::parse(NAME, &input, &FUNCTIONS).map_err(|error| SockaddrError::Parse {
            error: go_parse_error(&error),
            input: input.clone(),
        })?;
    if let Some(call) = template.find_calls(funcs::REFUSED).first() {
        return Err(SockaddrError::Refused(call.function.to_string()));
    }
    let mut out = Vec::new();
    let dot = funcs::list(host.addresses.clone());
    template
        .execute(host, &FUNCTIONS, &dot, &mut out)
        .map_err(|error| SockaddrError::Execute {
            error: go_exec_error(&input, &error),
            input: input.clone(),
        })?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's parse error: its position is the line alone.
fn go_parse_error(error: &ParseError) -> String {
    format!("template: {}:{}: {}", error.name, error.line, error.message)
}

/// Go's execution error, whose column is a 0-based byte offset (terad's: 1-based characters).
fn go_exec_error(input: &str, error: &ExecError) -> String {
    let line = input
        .lines()
        .nth(error.line.saturating_sub(1))
        .unwrap_or("");
    let byte = line
        .char_indices()
        .nth(error.column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    format!(
        "template: {}:{}:{}: executing {:?} at <{}>: {}",
        error.name, error.line, byte, error.template, error.context, error.kind
    )
}

/// The `sockaddr` calls of `template` whose literal arguments can never work: a go-sockaddr
/// template that does not parse, or one calling a function terad does not provide.
pub fn literal_call_errors(file: &str, template: &Template) -> Vec<ParseError> {
    template
        .find_calls(&["sockaddr"])
        .into_iter()
        .filter_map(|call| {
            let args = call.literal_args?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let input = format!("{{{{ {} }}}}", args.join(" "));
            let problem = match Template::parse(NAME, &input, &FUNCTIONS) {
                Err(error) => SockaddrError::Parse {
                    error: go_parse_error(&error),
                    input,
                },
                Ok(inner) => {
                    let refused = inner.find_calls(funcs::REFUSED).into_iter().next()?;
                    SockaddrError::Refused(refused.function.to_string())
                }
            };
            Some(ParseError {
                name: file.rsplit('/').next().unwrap_or(file).to_owned(),
                line: call.line,
                column: call.column,
                message: format!("sockaddr: {problem}"),
            })
        })
        .collect()
}
