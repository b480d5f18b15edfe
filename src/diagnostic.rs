//! Configuration errors (diagnostics): a file, a line and column, a key and what is wrong. Low in
//! the crate because every step of loading reports them: settings and resources ([`crate::config`])
//! and templates ([`crate::template`]). Loading never stops at the first problem: every file is read and every
//! key checked, and the whole list is reported at once so an operator fixes everything in one go.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the configuration: where it is, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault; `None` for a command-line option or environment variable.
    pub file: Option<PathBuf>,
    /// 1-based line and column in `file`, when known.
    pub position: Option<(usize, usize)>,
    /// The offending key (`mode`, `--backend`, …), when the error is about one key.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: Some(file.to_owned()),
            position: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error about a command-line option (or its environment variable).
    pub fn option(option: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            position: None,
            key: Some(option.to_owned()),
            message: message.into(),
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Points the error at the byte range `span` of `source`, the text of `self.file`.
    pub fn at(mut self, source: &str, span: Range<usize>) -> Self {
        self.position = Some(line_and_column(source, span.start));
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, column)) = self.position {
                write!(f, ":{line}:{column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every configuration error found in one load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` when nothing was recorded, otherwise all recorded errors.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        let noun = if count == 1 { "error" } else { "errors" };
        write!(f, "{count} configuration {noun}:")?;
        for error in &self.0 {
            // Multi-line messages (template reports) stay readable under the bullet.
            let text = error.to_string().replace('\n', "\n    ");
            write!(f, "\n  - {text}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line and column of byte `offset` in `source`; the column counts characters.
pub fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Turns a TOML parse or type error into a [`ConfigError`] with its position.
pub fn from_toml_error(file: &Path, source: &str, error: &toml::de::Error) -> ConfigError {
    let mut converted = ConfigError::in_file(file, error.message().trim_end().to_owned());
    if let Some(span) = error.span() {
        converted = converted.at(source, span);
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nmode = \"é9\"\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        let at_nine = text.find('9').unwrap();
        assert_eq!(line_and_column(text, at_nine), (2, 10));
    }

    #[test]
    fn display_names_file_position_and_key() {
        let error = ConfigError {
            file: Some(PathBuf::from("conf.d/a.toml")),
            position: Some((3, 8)),
            key: Some("mode".into()),
            message: "invalid mode \"99\"".into(),
        };
        assert_eq!(
            error.to_string(),
            "conf.d/a.toml:3:8: \"mode\": invalid mode \"99\""
        );
        let all = ConfigErrors(vec![
            error.clone(),
            ConfigError::option("--backend", "missing"),
        ]);
        assert_eq!(
            all.to_string(),
            "2 configuration errors:\n  - conf.d/a.toml:3:8: \"mode\": invalid mode \"99\"\n  - \"--backend\": missing"
        );
    }
}
