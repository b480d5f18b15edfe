//! The file backend: keys from YAML, JSON or TOML files, as confd's `file` backend.
//!
//! Nested maps become paths (`{a: {b: 1}}` → `/a/b = "1"`), list items are numbered (`/a/0`),
//! scalars become strings and nulls are skipped. A directory stands for every `*.yaml`, `*.yml`,
//! `*.json` and `*.toml` below it; files are read in sorted order and a later file's key wins.
//! In watch mode the files' directories are watched with inotify, events are debounced, and the
//! files re-read; a change that leaves a file unparsable (an editor mid-save) is logged and the
//! last good keys stay in effect.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::de::DeserializeSeed;
use tokio::sync::mpsc;

use super::{BackendError, KeySource, Listing, Update, WatchCursor, within_prefixes};

mod yaml;

/// Quiet time after a file event before the files are re-read: an editor's save or a ConfigMap
/// swap is several events in quick succession.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// The longest a stream of events can put off a re-read: a log written next to the keys file
/// must not hold back its changes for ever.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

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

    fn endpoints(&self) -> String {
        self.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
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
        cursor: &mut WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Only the fact that something changed matters; the files are re-read anyway.
                // Reads change nothing: a process polling a file in a watched directory would
                // otherwise keep the debounce below from ever settling.
                let is_read = event
                    .as_ref()
                    .is_ok_and(|event| matches!(event.kind, notify::EventKind::Access(_)));
                if !is_read {
                    let _ = events_tx.send(event.is_ok());
                }
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

        // A write between the runner's first listing and the watch above raised no event:
        // hand over what the files say now. The runner diffs listings, so an unchanged one
        // renders nothing.
        let mut last = None;
        if let Ok(listing) = self.read(prefixes) {
            last = Some(listing.entries.clone());
            cursor.advance(listing.revision);
            let update = Update::Listing {
                prefixes: prefixes.to_vec(),
                listing,
            };
            if updates.send(update).await.is_err() {
                return Ok(());
            }
        }
        loop {
            tokio::select! {
                event = events.recv() => if event.is_none() { return Ok(()) },
                _ = updates.closed() => return Ok(()),
            }
            // Debounce: wait until the events stop for a moment, at most DEBOUNCE_MAX.
            let settle_by = tokio::time::Instant::now() + DEBOUNCE_MAX;
            loop {
                let quiet_until = (tokio::time::Instant::now() + DEBOUNCE).min(settle_by);
                match tokio::time::timeout_at(quiet_until, events.recv()).await {
                    Ok(Some(_)) if tokio::time::Instant::now() < settle_by => {}
                    _ => break,
                }
            }
            match self.read(prefixes) {
                Ok(listing) => {
                    if last.as_ref() == Some(&listing.entries) {
                        continue;
                    }
                    last = Some(listing.entries.clone());
                    cursor.advance(listing.revision);
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
    let mut entries = Vec::new();
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
            parse_file(&file, &mut entries)?;
        }
    }
    // A stable sort keeps each key's occurrences in file order, so keeping the last of each
    // run lets later files win. One file's keys arrive mostly sorted, which the sort exploits.
    entries.sort_by(|a: &(String, String), b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for entry in entries {
        match merged.last_mut() {
            Some(last) if last.0 == entry.0 => *last = entry,
            _ => merged.push(entry),
        }
    }
    Ok(merged)
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

/// Parses one file by its extension (`.json`, `.toml`, YAML for everything else) straight into
/// flattened entries, without building a document tree first.
fn parse_file(path: &Path, out: &mut Vec<(String, String)>) -> Result<(), BackendError> {
    let fail = |message: String| BackendError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("toml") => Format::Toml,
        _ => Format::Yaml,
    };
    flatten_text(format, &text, out).map_err(|e| fail(e.to_string()))
}

/// The formats of the file backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Toml,
}

/// Why a document cannot be read into keys.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// TOML's message ends with a line break, which a log line must not.
    #[error("invalid TOML: {}", .0.to_string().trim_end())]
    Toml(#[source] toml::de::Error),
    #[error("invalid YAML: {0}")]
    Yaml(#[source] yaml::YamlError),
}

/// Flattens one document's text into `out`. Public for the fuzz targets.
pub fn flatten_text(
    format: Format,
    text: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), DocumentError> {
    let mut key = String::new();
    let seed = Flatten {
        path: &mut key,
        out,
    };
    match format {
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            seed.deserialize(&mut deserializer)
                .and_then(|()| deserializer.end())
                .map_err(DocumentError::Json)
        }
        Format::Toml => {
            let deserializer = toml::Deserializer::parse(text).map_err(DocumentError::Toml)?;
            seed.deserialize(deserializer).map_err(DocumentError::Toml)
        }
        Format::Yaml => yaml::flatten(text, seed.out).map_err(DocumentError::Yaml),
    }
}

/// A serde seed that flattens any document into `/a/b` keys with string values, as confd does:
/// maps nest by key, list items by index, scalars become strings, nulls are skipped.
struct Flatten<'a> {
    path: &'a mut String,
    out: &'a mut Vec<(String, String)>,
}

/// The key TOML's deserializer uses to pass a datetime through serde.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

impl Flatten<'_> {
    fn leaf(self, value: String) {
        let key = if self.path.is_empty() {
            "/".to_owned()
        } else {
            self.path.clone()
        };
        self.out.push((key, value));
    }

    /// Appends `/segment` (one per non-empty part of a key containing `/`), returning the
    /// length to truncate back to.
    fn push_segments(path: &mut String, key: &str) -> usize {
        let len = path.len();
        for segment in key.split('/').filter(|s| !s.is_empty()) {
            path.push('/');
            path.push_str(segment);
        }
        len
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map, list or scalar")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(v.to_string());
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(v.to_string());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.leaf(v.to_string());
        Ok(())
    }

    fn visit_i128<E>(self, v: i128) -> Result<(), E> {
        self.leaf(v.to_string());
        Ok(())
    }

    fn visit_u128<E>(self, v: u128) -> Result<(), E> {
        self.leaf(v.to_string());
        Ok(())
    }

    /// Go formats floats without an exponent and with the fewest digits that round-trip
    /// (`strconv.FormatFloat(f, 'f', -1, 64)`); Rust's `Display` for f64 does the same.
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.leaf(v.to_string());
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.leaf(v.to_owned());
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.leaf(v);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let len = self.path.len();
            self.path.push('/');
            self.path.push_str(&index.to_string());
            let more = seq.next_element_seed(Flatten {
                path: self.path,
                out: self.out,
            })?;
            self.path.truncate(len);
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<MapKey>()? {
            if key.0 == TOML_DATETIME_KEY {
                // A TOML datetime: the value is its text.
                let text: String = map.next_value()?;
                self.leaf(text);
                return Ok(());
            }
            let len = Flatten::push_segments(self.path, &key.0);
            map.next_value_seed(Flatten {
                path: self.path,
                out: self.out,
            })?;
            self.path.truncate(len);
        }
        Ok(())
    }
}

/// A map key of any scalar type, as text (YAML allows `8080: web`).
struct MapKey(String);

impl<'de> serde::Deserialize<'de> for MapKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = MapKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean key")
            }
            fn visit_str<E>(self, v: &str) -> Result<MapKey, E> {
                Ok(MapKey(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<MapKey, E> {
                Ok(MapKey(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<MapKey, E> {
                Ok(MapKey(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<MapKey, E> {
                Ok(MapKey(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<MapKey, E> {
                Ok(MapKey(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<MapKey, E> {
                Ok(MapKey(v.to_string()))
            }
        }
        // Ask for text: YAML would otherwise read a key like `on` as a boolean.
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
    fn odd_shapes_flatten_sensibly() {
        let dir = tempfile::tempdir().unwrap();
        let toml = write(
            dir.path(),
            "d.toml",
            "when = 1979-05-27T07:32:00Z\n[a]\nlist = [{x = 1}, {x = 2}]\n",
        );
        let keys = as_map(read_files(&[toml]).unwrap());
        assert_eq!(keys["/when"], "1979-05-27T07:32:00Z");
        assert_eq!(keys["/a/list/0/x"], "1");
        assert_eq!(keys["/a/list/1/x"], "2");
        let yaml = write(
            dir.path(),
            "e.yaml",
            "ports:\n  8080: web\n  true: yes-key\n\"a/b\": nested\n",
        );
        let keys = as_map(read_files(&[yaml]).unwrap());
        assert_eq!(keys["/ports/8080"], "web");
        assert_eq!(keys["/ports/true"], "yes-key");
        assert_eq!(keys["/a/b"], "nested", "a key with / nests");
        let scalar = write(dir.path(), "s.json", "\"just text\"");
        assert_eq!(
            read_files(&[scalar]).unwrap(),
            [("/".to_owned(), "just text".to_owned())]
        );
        let empty = write(dir.path(), "empty.yaml", "");
        assert!(read_files(&[empty]).unwrap().is_empty());
        let trailing = write(dir.path(), "t.json", "{} {}");
        assert!(read_files(&[trailing]).is_err());
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
        let err = read_files(std::slice::from_ref(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("{bad:?}: invalid YAML")), "{err}");
        let missing = dir.path().join("missing.yaml");
        let err = read_files(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
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
        let task = tokio::spawn(async move {
            source
                .watch(&prefixes, &mut WatchCursor::default(), &tx)
                .await
        });
        // First what the files hold once the watch is in place (a write before it raised no
        // event).
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let Update::Listing { listing, .. } = first else {
            panic!("expected a listing")
        };
        assert_eq!(listing.entries, [("/app/x".to_owned(), "1".to_owned())]);
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
