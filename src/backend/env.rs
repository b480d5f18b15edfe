//! The env backend: keys from environment variables, with confd's mapping.
//!
//! A key maps to a variable by dropping the leading `/`, turning `/` into `_` and upper-casing:
//! `/app/db_host` ↔ `APP_DB_HOST`. Listing a prefix gives every variable under it, and each
//! variable appears under confd's reverse mapping (`APP_DB_HOST` → `/app/db/host`). A variable
//! that is exactly the mapping of a watched key also appears under that key, so
//! `getv(key="/app/db_host")` works for `keys = ["/app/db_host"]` as well.
//! The environment of a running process does not change, so there is nothing to watch.

use tokio::sync::mpsc;

use super::{BackendError, KeySource, Listing, Update};

#[derive(Debug, Clone, Default)]
pub struct EnvSource;

/// The variable name for a key: `/app/db_host` → `APP_DB_HOST`.
pub fn variable_for_key(key: &str) -> String {
    key.trim_start_matches('/').replace('/', "_").to_uppercase()
}

/// confd's key for a variable: `APP_DB_HOST` → `/app/db/host`.
pub fn key_for_variable(variable: &str) -> String {
    format!("/{}", variable.to_lowercase().replace('_', "/"))
}

/// Entries for `prefixes` from the given environment.
pub fn entries_from(
    environment: impl IntoIterator<Item = (String, String)>,
    prefixes: &[String],
) -> Vec<(String, String)> {
    let environment: Vec<(String, String)> = environment.into_iter().collect();
    let mut entries = std::collections::BTreeMap::new();
    for prefix in prefixes {
        let wanted = variable_for_key(prefix);
        for (name, value) in &environment {
            // `/app` covers APP and APP_*, never APPLE (the `/` boundary, as for every backend).
            let under = wanted.is_empty()
                || *name == wanted
                || name
                    .strip_prefix(&wanted)
                    .is_some_and(|rest| rest.starts_with('_'));
            if !under {
                continue;
            }
            if *name == wanted {
                entries.insert(prefix.trim_end_matches('/').to_owned(), value.clone());
            }
            entries.insert(key_for_variable(name), value.clone());
        }
    }
    entries.into_iter().collect()
}

impl KeySource for EnvSource {
    fn name(&self) -> &'static str {
        "env"
    }

    fn endpoints(&self) -> String {
        "the environment".to_owned()
    }

    fn supports_watch(&self) -> bool {
        false
    }

    async fn list(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        Ok(Listing {
            revision: 0,
            entries: entries_from(std::env::vars(), prefixes),
        })
    }

    async fn watch(
        &mut self,
        _prefixes: &[String],
        _cursor: &mut super::WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        updates.closed().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn maps_keys_and_variables_like_confd() {
        assert_eq!(variable_for_key("/app/db_host"), "APP_DB_HOST");
        assert_eq!(key_for_variable("APP_DB_HOST"), "/app/db/host");
    }

    #[test]
    fn lists_variables_under_a_prefix_with_both_spellings_of_an_exact_key() {
        let environment = env(&[
            ("APP_DB_HOST", "db1"),
            ("APP_PORT", "80"),
            ("APPLE", "no"),
            ("OTHER", "no"),
        ]);
        let entries = entries_from(environment.clone(), &["/app".to_owned()]);
        assert_eq!(
            entries,
            env(&[("/app/db/host", "db1"), ("/app/port", "80")])
        );
        let entries = entries_from(environment, &["/app/db_host".to_owned()]);
        assert_eq!(
            entries,
            env(&[("/app/db/host", "db1"), ("/app/db_host", "db1")])
        );
    }
}
