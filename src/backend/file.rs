//! The file backend: keys from YAML, JSON or TOML files, as confd's `file` backend.
//!
//! Nested maps become paths (`{a: {b: 1}}` → `/a/b = "1"`), list items are numbered (`/a/0`),
//! scalars become strings and nulls are skipped. A directory stands for every `*.yaml`, `*.yml`,
//! `*.json` and `*.toml` below it; files are read in sorted order and a later file's key wins.
//! In watch mode the files' directories are watched with inotify, events are debounced, and the
//! files re-read; a change that leaves a file unparsable (an editor mid-save) is logged and the
//! last good keys stay in effect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{BackendError, KeySource, Listing, Update, within_prefixes};

/// Quiet time after a file event before the files are re-read: an editor's save or a ConfigMap
/// swap is several events in quick succession.
const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    /// Counts re-reads; serves as the listing's revision.
    generation: u64,
}

impl FileSource {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FileSource {
            paths,
            generation: 0,
        }
    }

    fn read(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        let entries = read_files(&self.paths)?;
        self.generation += 1;
        Ok(Listing {
            revision: self.generation,
            entries: within_prefixes(entries, prefixes),
        })
    }
}

impl KeySource for FileSource {
    fn name(&self) -> &'static str {
        "file"
    }

    fn supports_watch(&self) -> bool {
        true
    }

    async fn list(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        self.read(prefixes)
    }

    async fn watch(
        &mut self,
        prefixes: &[String],
        revision: &mut u64,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Only the fact that something changed matters; the files are re-read anyway.
                let _ = events_tx.send(event.is_ok());
            })
            .map_err(|e| BackendError::Other {
                backend: "file",
                message: format!("cannot start file notifications: {e}"),
            })?;
        for path in &self.paths {
            // Watch directories, not files: editors and ConfigMaps replace files by rename,
            // which a watch on the old inode would never see.
            let (target, mode) = if path.is_dir() {
                (path.clone(), RecursiveMode::Recursive)
            } else {
                (parent_dir(path), RecursiveMode::NonRecursive)
            };
            watcher
                .watch(&target, mode)
                .map_err(|e| BackendError::File {
                    path: target.clone(),
                    message: format!("cannot watch: {e}"),
                })?;
        }

        let mut last = self.read(prefixes).ok().map(|listing| listing.entries);
        loop {
            tokio::select! {
                event = events.recv() => if event.is_none() { return Ok(()) },
                _ = updates.closed() => return Ok(()),
            }
            // Debounce: wait until the events stop for a moment.
            while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, events.recv()).await {}
            match self.read(prefixes) {
                Ok(listing) => {
                    if last.as_ref() == Some(&listing.entries) {
                        continue;
                    }
                    last = Some(listing.entries.clone());
                    *revision = listing.revision;
                    let update = Update::Listing {
                        prefixes: prefixes.to_vec(),
                        listing,
                    };
                    if updates.send(update).await.is_err() {
                        return Ok(());
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "file backend: keeping the last good keys");
                }
            }
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Reads and flattens every file; later files override earlier keys.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<(String, String)>, BackendError> {
    let mut keys = BTreeMap::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| BackendError::File {
            path: path.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let files = if metadata.is_dir() {
            data_files_in(path)?
        } else {
            vec![path.clone()]
        };
        for file in files {
            let tree = parse_file(&file)?;
            flatten(&tree, &mut String::new(), &mut keys);
        }
    }
    Ok(keys.into_iter().collect())
}

fn data_files_in(dir: &Path) -> Result<Vec<PathBuf>, BackendError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| BackendError::File {
            path: dir.clone(),
            message: format!("cannot read directory: {e}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json" | "toml")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Parses one file by its extension: `.json`, `.toml`, and YAML for everything else.
fn parse_file(path: &Path) -> Result<serde_json::Value, BackendError> {
    let fail = |message: String| BackendError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON: {e}"))),
        Some("toml") => toml::from_str::<toml::Table>(&text)
            .map(|table| toml_to_json(toml::Value::Table(table)))
            .map_err(|e| fail(format!("invalid TOML: {}", e.to_string().trim_end()))),
        _ => {
            if text.trim().is_empty() {
                return Ok(serde_json::Value::Null);
            }
            serde_saphyr::from_str(&text).map_err(|e| fail(format!("invalid YAML: {e}")))
        }
    }
}

fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => J::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Flattens a document into `/a/b` keys with string values, as confd does.
pub fn flatten(value: &serde_json::Value, path: &mut String, out: &mut BTreeMap<String, String>) {
    use serde_json::Value as J;
    let scalar = match value {
        J::Null => return,
        J::Bool(b) => b.to_string(),
        // Go formats floats without an exponent and with as few digits as round-trip
        // (`strconv.FormatFloat(f, 'f', -1, 64)`); Rust's `Display` for f64 does the same.
        J::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => f.to_string(),
            _ => n.to_string(),
        },
        J::String(s) => s.clone(),
        J::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&index.to_string());
                flatten(item, path, out);
                path.truncate(len);
            }
            return;
        }
        J::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                for segment in key.split('/').filter(|s| !s.is_empty()) {
                    path.push('/');
                    path.push_str(segment);
                }
                flatten(item, path, out);
                path.truncate(len);
            }
            return;
        }
    };
    let key = if path.is_empty() {
        "/".to_owned()
    } else {
        path.clone()
    };
    out.insert(key, scalar);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        path
    }

    fn as_map(entries: Vec<(String, String)>) -> BTreeMap<String, String> {
        entries.into_iter().collect()
    }

    #[test]
    fn yaml_json_and_toml_flatten_alike() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = write(
            dir.path(),
            "a.yaml",
            "proxy:\n  frontend:\n    web1: 10.0.0.1:80\n  ports: [80, 443]\n  ratio: 1.5\n  whole: 2.0\n  on: true\n  none: null\n",
        );
        let json = write(
            dir.path(),
            "b.json",
            r#"{"proxy": {"frontend": {"web1": "10.0.0.1:80"}, "ports": [80, 443], "ratio": 1.5, "whole": 2.0, "on": true, "none": null}}"#,
        );
        let toml = write(
            dir.path(),
            "c.toml",
            "[proxy]\nports = [80, 443]\nratio = 1.5\nwhole = 2.0\non = true\n[proxy.frontend]\nweb1 = \"10.0.0.1:80\"\n",
        );
        let expected: BTreeMap<String, String> = [
            ("/proxy/frontend/web1", "10.0.0.1:80"),
            ("/proxy/ports/0", "80"),
            ("/proxy/ports/1", "443"),
            ("/proxy/ratio", "1.5"),
            ("/proxy/whole", "2"),
            ("/proxy/on", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for path in [yaml, json, toml] {
            assert_eq!(
                as_map(read_files(std::slice::from_ref(&path)).unwrap()),
                expected,
                "{path:?}"
            );
        }
    }

    #[test]
    fn directories_are_read_in_order_and_later_files_win() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "10-base.yaml", "app: {name: base, port: 1}\n");
        write(dir.path(), "20-override.yml", "app: {name: override}\n");
        write(dir.path(), "sub/30.json", r#"{"app": {"extra": "x"}}"#);
        write(dir.path(), ".hidden.yaml", "app: {name: hidden}\n");
        write(dir.path(), "notes.txt", "not: data");
        let keys = as_map(read_files(&[dir.path().to_owned()]).unwrap());
        assert_eq!(keys["/app/name"], "override");
        assert_eq!(keys["/app/port"], "1");
        assert_eq!(keys["/app/extra"], "x");
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.yaml", "a: [unclosed\n");
        let err = read_files(std::slice::from_ref(&bad)).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{bad:?}: invalid YAML")), "{err}");
        let missing = dir.path().join("missing.yaml");
        let err = read_files(std::slice::from_ref(&missing)).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{missing:?}: cannot read")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn list_keeps_only_the_requested_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "k.yaml", "app: {x: 1}\napp2: {y: 2}\n");
        let mut source = FileSource::new(vec![path]);
        let listing = source.list(&["/app".to_owned()]).await.unwrap();
        assert_eq!(listing.entries, [("/app/x".to_owned(), "1".to_owned())]);
    }

    #[tokio::test]
    async fn watch_reports_changes_and_survives_a_broken_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "k.yaml", "app: {x: 1}\n");
        let mut source = FileSource::new(vec![path.clone()]);
        let (tx, mut rx) = mpsc::channel(8);
        let prefixes = vec!["/".to_owned()];
        let task = tokio::spawn(async move { source.watch(&prefixes, &mut 0, &tx).await });
        tokio::time::sleep(Duration::from_millis(100)).await;

        std::fs::write(&path, "app: [broken\n").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Replace by rename, the way editors and ConfigMaps do.
        let temp = dir.path().join(".k.yaml.tmp");
        std::fs::write(&temp, "app: {x: 2}\n").unwrap();
        std::fs::rename(&temp, &path).unwrap();

        let update = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let Update::Listing { listing, .. } = update else {
            panic!("expected a listing")
        };
        assert_eq!(listing.entries, [("/app/x".to_owned(), "2".to_owned())]);
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
