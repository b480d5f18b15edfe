//! HAProxy's runtime API: change a running HAProxy's servers instead of reloading it.
//!
//! A reload starts new worker processes and leaves the old ones draining their connections:
//! when containers come and go every few seconds, that is a pile of old workers, their memory,
//! and health checks that start over. Most such changes are `server` lines added, removed or
//! re-pointed, which HAProxy's stats socket (at level admin) can make in the running process.
//!
//! [`plan`] compares the live file with the new render. Everything but the `server` lines of
//! `backend`/`listen` sections must be the same (comments and blank lines aside); a difference
//! anywhere else, or a server change the runtime API cannot make as the file says it, is a
//! [`Structural`] change, and the caller reloads as before. Otherwise [`RuntimeApi::apply`]
//! sends the [`Plan`] (additions first, removals drained last) and reads `show servers state`
//! back: what HAProxy lists must be what the file says. Any [`RuntimeError`] also falls back to
//! a reload, which makes HAProxy run the file whatever state the failure left it in; the new
//! file is what a later restart reads, so the two never disagree for long.
//!
//! - `config`: the file read into sections and lines, as HAProxy 2.6 splits them.
//! - `options`: `server` options, `default-server` folding, what `add server` takes.
//! - `plan`: [`plan`], [`Plan`], [`Structural`].
//! - `api`: [`RuntimeApi`], the socket client, and the verification.

mod api;
mod config;
mod options;
mod plan;

pub use api::{AddressError, Applied, LiveServer, RuntimeAddress, RuntimeApi, RuntimeError};
pub use plan::{BackendPlan, ExpectedServer, Plan, ServerChange, Structural, plan};
