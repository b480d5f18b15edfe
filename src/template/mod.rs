//! Templates: every engine behind one [`Templates`] that loads what the resources reference and
//! renders any [`TemplateRef`] against a [`RenderInput`].
//!
//! - [`confd`]: confd's functions, written once over the store view, engine-neutral.
//! - [`tera`]: the Tera engine, a thin adapter exposing them as functions and filters.
//! - [`vet`]: checks of store data before it is interpolated (`host_port`, `safe_name`).
//!
//! A template is parsed once, at load; every syntax error of every template is reported at once
//! with file, line and column, and nothing is written when there is one.

pub mod confd;
pub mod go;
pub mod tera;
pub mod vet;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConfigError, ConfigErrors};
use crate::store::{KeyStore, ValuePolicy, View};

/// The template languages terad renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    Tera,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Tera => "tera",
        }
    }
}

/// A resource's template: its name below `templates/` and the language it is written in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateRef {
    /// The path below `templates/`, with `/` separators.
    pub name: String,
    pub engine: EngineKind,
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// What one resource's template may see: its absolute prefix and keys, and what it accepts
/// from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    pub prefix: String,
    pub keys: Vec<String>,
    pub values: ValuePolicy,
}

/// Everything one render reads: the key store at one state, and the resource's window on it.
#[derive(Debug, Clone)]
pub struct RenderInput {
    pub store: Arc<KeyStore>,
    pub scope: Arc<KeyScope>,
}

impl RenderInput {
    pub fn view(&self) -> View<'_> {
        View::new(&self.store, &self.scope.prefix, &self.scope.keys).with_policy(&self.scope.values)
    }
}

/// A rendering failure: the template report (file:line:column and the message).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RenderError {
    pub message: String,
}

/// The loaded templates of every engine, ready to render.
#[derive(Debug)]
pub struct Templates {
    tera: tera::TeraEngine,
    templates_dir: PathBuf,
}

impl Templates {
    /// Loads and checks every referenced template (and what each includes), reporting every
    /// problem in every template at once.
    pub fn load<'a>(
        templates_dir: &Path,
        refs: impl IntoIterator<Item = &'a TemplateRef>,
    ) -> Result<Templates, ConfigErrors> {
        let mut tera_roots = Vec::new();
        for template in refs {
            match template.engine {
                EngineKind::Tera => tera_roots.push(template.name.as_str()),
            }
        }
        let tera = tera::TeraEngine::load(templates_dir, tera_roots)?;
        Ok(Templates {
            tera,
            templates_dir: templates_dir.to_owned(),
        })
    }

    /// Renders `template` against `input`, appending to `out`.
    pub fn render(
        &self,
        template: &TemplateRef,
        input: &RenderInput,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        match template.engine {
            EngineKind::Tera => self.tera.render(&template.name, input, out),
        }
    }

    pub fn templates_dir(&self) -> &Path {
        &self.templates_dir
    }
}

/// Reads one template file as UTF-8; a missing file is `None` (the engine that asked reports it
/// where it is referenced).
pub(crate) fn read_source(path: &Path, errors: &mut ConfigErrors) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                errors.push(ConfigError::in_file(path, "template is not valid UTF-8"));
                None
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            errors.push(ConfigError::in_file(path, format!("cannot read: {error}")));
            None
        }
    }
}

/// Whether a template name stays inside the templates directory.
pub(crate) fn stays_inside(name: &str) -> bool {
    let mut depth = 0usize;
    for component in Path::new(name).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Renders `template` of `templates` with the whole store `pairs` in scope.
    pub(crate) fn render_with(
        templates: &Templates,
        template: &TemplateRef,
        pairs: &[(&str, &str)],
    ) -> Result<String, RenderError> {
        let store: KeyStore = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let input = RenderInput {
            store: Arc::new(store),
            scope: Arc::new(KeyScope {
                prefix: "/".into(),
                keys: vec!["/".into()],
                values: ValuePolicy::default(),
            }),
        };
        let mut out = Vec::new();
        templates.render(template, &input, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn names_must_stay_inside_the_templates_directory() {
        assert!(stays_inside("a/../b"));
        assert!(!stays_inside("../b"));
        assert!(!stays_inside("/etc/passwd"));
    }
}
