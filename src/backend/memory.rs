//! An in-memory backend for unit tests of the runner: the test sets the listing and injects
//! watch updates. Never a proof that a real backend works; those are tested against real servers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{BackendError, KeySource, Listing, Update, within_prefixes};

#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub listing: Arc<Mutex<Listing>>,
    /// Updates a test wants the watch to deliver, in order.
    pub injected: Arc<tokio::sync::Mutex<Option<mpsc::Receiver<Update>>>>,
    /// When each `list` call started (tokio's clock, so paused time works).
    pub list_calls: Arc<Mutex<Vec<tokio::time::Instant>>>,
    /// Scripted outcomes of the next `list` calls (`false`: unreachable); empty means success.
    pub list_script: Arc<Mutex<VecDeque<bool>>>,
    /// Scripted outcomes of the next `watch` calls; empty means the injected updates.
    pub watch_script: Arc<Mutex<VecDeque<WatchStep>>>,
    /// When each `watch` call started (tokio's clock, so paused time works).
    pub watch_calls: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

/// What one scripted `watch` call does.
#[derive(Debug, Clone)]
pub enum WatchStep {
    /// Breaks at once.
    Fails,
    /// Delivers the update (advancing the cursor to its revision), then breaks.
    DeliversThenFails(Update),
}

fn unreachable() -> BackendError {
    BackendError::Unreachable {
        backend: "memory",
        endpoints: "memory".to_owned(),
        message: "scripted outage".to_owned(),
    }
}

impl KeySource for MemorySource {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn endpoints(&self) -> String {
        "memory".to_owned()
    }

    fn supports_watch(&self) -> bool {
        true
    }

    async fn list(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        self.list_calls
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        if self.list_script.lock().unwrap().pop_front() == Some(false) {
            return Err(unreachable());
        }
        let listing = self.listing.lock().unwrap().clone();
        Ok(Listing {
            revision: listing.revision,
            entries: within_prefixes(listing.entries, prefixes),
        })
    }

    async fn watch(
        &mut self,
        _prefixes: &[String],
        cursor: &mut super::WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        self.watch_calls
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        let step = self.watch_script.lock().unwrap().pop_front();
        match step {
            Some(WatchStep::Fails) => return Err(unreachable()),
            Some(WatchStep::DeliversThenFails(update)) => {
                if let Update::Changes { revision, .. } = &update {
                    cursor.advance(*revision);
                }
                let _ = updates.send(update).await;
                return Err(unreachable());
            }
            None => {}
        }
        let Some(mut injected) = self.injected.lock().await.take() else {
            updates.closed().await;
            return Ok(());
        };
        while let Some(update) = injected.recv().await {
            if updates.send(update).await.is_err() {
                return Ok(());
            }
        }
        updates.closed().await;
        Ok(())
    }
}
