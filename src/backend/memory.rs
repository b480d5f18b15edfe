//! An in-memory backend for unit tests of the runner: the test sets the listing and injects
//! watch updates. Never a proof that a real backend works; those are tested against real servers.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{BackendError, KeySource, Listing, Update, within_prefixes};

#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub listing: Arc<Mutex<Listing>>,
    /// Updates a test wants the watch to deliver, in order.
    pub injected: Arc<tokio::sync::Mutex<Option<mpsc::Receiver<Update>>>>,
    /// How many times `list` was called.
    pub lists: Arc<Mutex<usize>>,
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
        *self.lists.lock().unwrap() += 1;
        let listing = self.listing.lock().unwrap().clone();
        Ok(Listing {
            revision: listing.revision,
            entries: within_prefixes(listing.entries, prefixes),
        })
    }

    async fn watch(
        &mut self,
        _prefixes: &[String],
        _revision: &mut u64,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
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
