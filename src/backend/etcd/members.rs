//! The members of the cluster: a client for each, connected when first used, which member is
//! in use, and which are failing since when and why. Kept apart so that the failover policy
//! (the order members are tried in, when a member's connection is dropped, what is logged once
//! per episode) is in one place that every caller (listing, watch, fleet) goes through.

use std::sync::Mutex;
use std::time::Instant;

use super::REQUEST_TIMEOUT;
use super::client::{Client, ConnectOptions, Error};

/// One cluster member: its endpoint and a client for it, connected when first used and
/// dropped when the member fails (see [`Members::failed`]).
struct Member {
    url: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

/// The members of the cluster and what terad knows of their health, in one place: which member
/// is in use, which are failing since when and why, and the logs of a member failing and
/// recovering (once per episode, not per retry).
pub(super) struct Members {
    members: Vec<Member>,
    options: ConnectOptions,
    state: Mutex<Health>,
}

struct Health {
    /// The member requests go to first.
    current: usize,
    /// The member last logged as in use.
    announced: Option<usize>,
    /// Per member: since when and why it has been failing; `None` while it answers.
    failing: Vec<Option<(Instant, String)>>,
}

impl Members {
    pub(super) fn new(endpoints: &[String], options: ConnectOptions) -> Members {
        let count = endpoints.len().max(1);
        Members {
            members: endpoints
                .iter()
                .map(|url| Member {
                    url: url.clone(),
                    client: tokio::sync::Mutex::new(None),
                })
                .collect(),
            options,
            state: Mutex::new(Health {
                // A fleet spreads over the members instead of all starting on the first.
                current: fastrand::usize(..count),
                announced: None,
                failing: vec![None; endpoints.len()],
            }),
        }
    }

    /// Member `index`'s endpoint for messages, credentials in a URL masked.
    pub(super) fn url(&self, index: usize) -> String {
        crate::redact::url(&self.members[index].url).into_owned()
    }

    pub(super) fn current(&self) -> usize {
        self.state.lock().expect("members lock").current
    }

    /// The members in the order to try them: the one in use, then the others in turn, those
    /// not known to be failing first.
    pub(super) fn order(&self) -> Vec<usize> {
        let state = self.state.lock().expect("members lock");
        let count = self.members.len();
        let mut order: Vec<usize> = (0..count).map(|n| (state.current + n) % count).collect();
        // Stable: the member in use stays first among the healthy ones.
        order.sort_by_key(|&index| state.failing[index].is_some());
        order
    }

    /// The client for member `index`, connecting it on first use (which authenticates, when
    /// credentials are given). `None` when connecting took longer than `REQUEST_TIMEOUT`.
    pub(super) async fn connect(&self, index: usize) -> Result<Client, Option<Error>> {
        let member = &self.members[index];
        // Held while connecting: concurrent callers wait for the one connection.
        let mut slot = member.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let connect = Client::connect(&member.url, &self.options);
        let client = match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => return Err(Some(error)),
            Err(_) => return Err(None),
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Member `index` failed with `fault`: requests go to another member from now on. Logged
    /// when the member starts failing, not again until it has answered in between.
    pub(super) fn failed(&self, index: usize, fault: &str) {
        // The member's next use connects afresh. The channel of a member that died holds
        // requests while it reconnects instead of failing them, and went on holding them for
        // seconds after the member was back (quorum restored, the change in the file 2.7 s
        // after the commit); a new connection is refused at once while the member is down and
        // answers at once when it is back. Skipped while someone is connecting.
        if let Ok(mut slot) = self.members[index].client.try_lock() {
            *slot = None;
        }
        let mut state = self.state.lock().expect("members lock");
        let count = self.members.len();
        let first = state.failing[index].is_none();
        if first {
            state.failing[index] = Some((Instant::now(), fault.to_owned()));
        }
        if state.current == index && count > 1 {
            // The next member that is not failing, or simply the next one.
            let next = (1..count)
                .map(|n| (index + n) % count)
                .find(|&other| state.failing[other].is_none())
                .unwrap_or((index + 1) % count);
            state.current = next;
        }
        let next = state.current;
        drop(state);
        if first {
            if count > 1 {
                tracing::warn!(
                    member = %self.url(index),
                    error = %fault,
                    next = %self.url(next),
                    "etcd member failed; trying another member"
                );
            } else {
                tracing::warn!(member = %self.url(index), error = %fault, "etcd member failed");
            }
        } else {
            tracing::debug!(member = %self.url(index), error = %fault, "etcd member still failing");
        }
    }

    /// Member `index` answered: it is the one in use from now on, and no longer failing.
    pub(super) fn answered(&self, index: usize) {
        let mut state = self.state.lock().expect("members lock");
        state.current = index;
        let recovered = state.failing[index].take();
        let announce = state.announced != Some(index);
        state.announced = Some(index);
        drop(state);
        if let Some((since, _)) = recovered {
            tracing::info!(
                member = %self.url(index),
                "etcd member answers again after {:.1}s",
                since.elapsed().as_secs_f64()
            );
        }
        if announce && self.members.len() > 1 {
            tracing::info!(member = %self.url(index), "etcd member in use");
        }
    }
}
