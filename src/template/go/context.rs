//! What a Go template's functions read during one render, whichever dialect's map they belong
//! to (confd's, consul-template's): the render's input, and the per-render state of
//! consul-template's dialect. Its own file so that the dialects depend on it and not on each
//! other.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Functions, Value};
use crate::template::RenderInput;

/// What a Go template's functions read: the render's input, and what one render of
/// consul-template's dialect keeps (its `scratch`, its own template set for `executeTemplate`).
pub struct GoContext {
    pub input: RenderInput,
    /// consul-template's `scratch`: fresh for every render, as consul-template makes one per
    /// execution.
    pub scratch: Scratch,
    /// The template being rendered and its function table, for `executeTemplate`.
    pub set: Option<(Arc<super::Template>, Arc<Functions<GoContext>>)>,
    /// The interface table consul-template's `sockaddr` reads; `None`, the usual case, reads
    /// the machine's at each call. Set by tests, to evaluate against a recorded table.
    pub sockaddr_host: Option<Arc<super::ct::sockaddr::host::Host>>,
}

impl GoContext {
    /// The context of one render of `input`, without a template set.
    pub fn new(input: RenderInput) -> GoContext {
        GoContext {
            input,
            scratch: Scratch::default(),
            set: None,
            sockaddr_host: None,
        }
    }
}

/// consul-template's `scratch`: a per-render map templates write and read back. Its methods, as
/// templates call them, are the consul-template dialect's (`ct`).
#[derive(Debug, Default, Clone)]
pub struct Scratch(pub(super) Arc<Mutex<BTreeMap<String, Value>>>);
