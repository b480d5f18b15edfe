//! HAProxy's runtime API on the apply path, for resources with `[template.haproxy]`
//! ([`crate::haproxy`]). Between the check and the commit, the live file is compared with the
//! checked render: when only `server` lines of backends differ, the running HAProxy is changed
//! through its stats socket and verified, the file is committed, and nothing reloads. Anything
//! else takes the reload, as without the option:
//!
//! ```text
//!  check ──► plan(live, new) ──► apply + verify ──► commit            (no reload)
//!               │                     │
//!               │ structural,         │ unreachable, timeout, refused,
//!               │ no live file        │ unexpected answer, mismatch
//!               ▼                     ▼
//!             commit ──► reload     commit ──► reload                 (the fallback)
//! ```
//!
//! The commit comes after the runtime change so that a check or a refusal leaves both as they
//! were; when the commit then fails, HAProxy is ahead of the file, and the caller requests the
//! reload anyway: it makes HAProxy run the file on disk again, and the retry applies the change
//! once more.

use std::fmt::Write as _;

use crate::config::haproxy::HaproxyRuntime;
use crate::haproxy::{self, Applied, Plan, RuntimeError, Structural};

/// Why a change of a resource with `[template.haproxy]` reloads HAProxy rather than being made
/// through its runtime API.
#[derive(Debug, thiserror::Error)]
pub enum ReloadReason {
    /// The first render: nothing to compare it with.
    #[error("there is no live file to compare the render with")]
    NoLiveFile,
    /// The planner reads text; a byte that is not UTF-8 could hide a difference.
    #[error("the live file or the render is not utf-8 text")]
    NotText,
    /// A reload of the resource is wanted, running or retried: HAProxy may be reading an older
    /// file right now, or run one already (a failed reload), so a change made in the running
    /// process could be lost to it. The change goes with the reload instead.
    #[error("a reload of the resource is already wanted, running or being retried")]
    ReloadOutstanding,
    /// A change the runtime API does not make; names the section and the line.
    #[error("{0}")]
    Structural(Structural),
    /// The runtime API failed, with HAProxy's answer where there is one. The reload makes
    /// HAProxy run the file whatever state the failure left it in.
    #[error("{0}")]
    Fallback(RuntimeError),
}

/// What the runtime API made of a checked change, before its commit.
#[derive(Debug)]
pub(super) enum Runtime {
    /// HAProxy runs the new file's servers: no reload.
    Applied(Applied),
    /// Nothing HAProxy runs changed (comments, blank lines, the order of `server` lines).
    Unneeded,
    /// The change reloads HAProxy.
    Reload(ReloadReason),
}

/// Plans the change from `live` (the destination's content, `None` without one) to `new`, and
/// applies it unless a reload is needed anyway. `reload_outstanding`: one of the resource's
/// reloads is wanted, running or retried ([`super::reload::Member::reload_outstanding`]).
pub(super) async fn apply(
    haproxy: &HaproxyRuntime,
    live: Option<&[u8]>,
    new: &[u8],
    reload_outstanding: bool,
) -> Runtime {
    let plan = match cpu(|| plan(live, new)) {
        Ok(plan) => plan,
        Err(reason) => return Runtime::Reload(reason),
    };
    if plan.is_empty() {
        return Runtime::Unneeded;
    }
    if reload_outstanding {
        return Runtime::Reload(ReloadReason::ReloadOutstanding);
    }
    match haproxy.api().apply(&plan).await {
        Ok(applied) => Runtime::Applied(applied),
        Err(error) => Runtime::Reload(ReloadReason::Fallback(error)),
    }
}

/// `--noop`: what the runtime API would do with the change, printed under its diff. It says
/// what would be sent, not whether HAProxy would take it.
pub(super) fn describe(haproxy: &HaproxyRuntime, live: Option<&[u8]>, new: &[u8]) -> String {
    match plan(live, new) {
        Ok(plan) if plan.is_empty() => {
            "# haproxy: nothing haproxy runs changes; no reload\n".to_owned()
        }
        Ok(plan) => {
            let mut text = format!(
                "# haproxy: no reload; through the runtime api at {}:\n",
                haproxy.runtime_api
            );
            for command in plan.commands() {
                let _ = writeln!(text, "{command}");
            }
            text
        }
        Err(reason) => format!("# haproxy: a reload would be needed: {reason}\n"),
    }
}

fn plan(live: Option<&[u8]>, new: &[u8]) -> Result<Plan, ReloadReason> {
    let live = live.ok_or(ReloadReason::NoLiveFile)?;
    let (Ok(live), Ok(new)) = (std::str::from_utf8(live), std::str::from_utf8(new)) else {
        return Err(ReloadReason::NotText);
    };
    haproxy::plan(live, new).map_err(ReloadReason::Structural)
}

/// Planning reads both files line by line: milliseconds for a large one, which must not stall
/// the other tasks of this worker thread. (The current-thread runtime of unit tests cannot hand
/// them off; there it runs in place.)
fn cpu<T>(work: impl FnOnce() -> T) -> T {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::haproxy::RuntimeAddress;

    fn haproxy(socket: &std::path::Path) -> HaproxyRuntime {
        HaproxyRuntime {
            runtime_api: RuntimeAddress::Unix(socket.to_owned()),
            timeout: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(1),
        }
    }

    const LIVE: &str = "defaults\n    mode http\n\nbackend nodes\n    balance roundrobin\n    server a 10.0.0.1:80 check\n";

    #[tokio::test]
    async fn what_does_not_reach_the_socket_decides_without_it() {
        let dir = tempfile::tempdir().unwrap();
        // Nobody listens: a plan that reached the socket would fail as unreachable.
        let haproxy = haproxy(&dir.path().join("admin.sock"));
        let added = LIVE.replace("check\n", "check\n    server b 10.0.0.2:80 check\n");
        let structural = LIVE.replace("roundrobin", "leastconn");
        let reordered = "defaults\n    mode http\n\n# servers\nbackend nodes\n    balance roundrobin\n    server a 10.0.0.1:80 check\n";
        // (live file, render, a reload outstanding, what the runtime path makes of it)
        let cases = [
            (None, LIVE, false, "no live file"),
            (Some(&b"\xff\n"[..]), LIVE, false, "not text"),
            (Some(LIVE.as_bytes()), &structural, false, "structural"),
            (Some(LIVE.as_bytes()), reordered, true, "unneeded"),
            (Some(LIVE.as_bytes()), &added, true, "outstanding"),
        ];
        for (live, new, outstanding, want) in cases {
            let got = match apply(&haproxy, live, new.as_bytes(), outstanding).await {
                Runtime::Reload(ReloadReason::NoLiveFile) => "no live file",
                Runtime::Reload(ReloadReason::NotText) => "not text",
                Runtime::Reload(ReloadReason::Structural(_)) => "structural",
                Runtime::Reload(ReloadReason::ReloadOutstanding) => "outstanding",
                Runtime::Unneeded => "unneeded",
                other => panic!("{want}: {other:?}"),
            };
            assert_eq!(got, want);
        }
        match apply(&haproxy, Some(LIVE.as_bytes()), added.as_bytes(), false).await {
            Runtime::Reload(ReloadReason::Fallback(error)) => {
                assert_eq!(error.reason(), "unreachable")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn noop_says_what_it_would_send_or_why_it_would_reload() {
        let haproxy = haproxy(std::path::Path::new("/run/haproxy/admin.sock"));
        let added = LIVE.replace("check\n", "check\n    server b 10.0.0.2:80 check\n");
        assert_eq!(
            describe(&haproxy, Some(LIVE.as_bytes()), added.as_bytes()),
            "# haproxy: no reload; through the runtime api at /run/haproxy/admin.sock:\n\
             add server nodes/b 10.0.0.2:80 check\n\
             enable health nodes/b\n\
             enable server nodes/b\n"
        );
        assert_eq!(
            describe(
                &haproxy,
                Some(LIVE.as_bytes()),
                LIVE.replace("roundrobin", "leastconn").as_bytes()
            ),
            "# haproxy: a reload would be needed: backend \"nodes\": \"balance roundrobin\" changed to \"balance leastconn\"\n"
        );
        assert_eq!(
            describe(&haproxy, None, LIVE.as_bytes()),
            "# haproxy: a reload would be needed: there is no live file to compare the render with\n"
        );
        assert_eq!(
            describe(
                &haproxy,
                Some(LIVE.as_bytes()),
                format!("# hi\n{LIVE}").as_bytes()
            ),
            "# haproxy: nothing haproxy runs changes; no reload\n"
        );
    }
}
