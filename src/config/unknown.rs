//! Keys nothing reads, under [`UnknownKeys`]. terad's own rule is serde's `deny_unknown_fields`
//! on the raw types: a key they do not know is an error with its position. confd's rule is to
//! ignore such a key; then the document is parsed first, the keys the raw types do not know are
//! taken out (each becomes a [`Warning`] naming it and the valid ones), and the raw types read
//! what is left, from the same parse, so every other value keeps its position for errors.

use std::path::Path;

use serde::de::{self, DeserializeOwned, Visitor};
use toml::de::{DeTable, DeValue};

use super::warning::Warning;
use crate::cli::UnknownKeys;
use crate::diagnostic::line_and_column;

/// One table whose unknown keys are looked for: `None` for the document's top level, or the
/// name of a table at the top level (`template`).
pub(super) struct Table {
    pub name: Option<&'static str>,
    pub valid: &'static [&'static str],
}

/// Parses `text` into `T` under `rule`, returning the keys ignored as warnings (none under
/// [`UnknownKeys::Refused`], where an unknown key is `T`'s own error).
pub(super) fn parse<T: DeserializeOwned>(
    file: &Path,
    text: &str,
    rule: UnknownKeys,
    tables: &[Table],
) -> Result<(T, Vec<Warning>), toml::de::Error> {
    if rule == UnknownKeys::Refused {
        return Ok((toml::from_str(text)?, Vec::new()));
    }
    let mut document = DeTable::parse(text)?;
    let mut warnings = Vec::new();
    for table in tables {
        let entries = match table.name {
            None => Some(document.get_mut()),
            Some(name) => match document.get_mut().get_mut(name).map(|v| v.get_mut()) {
                Some(DeValue::Table(entries)) => Some(entries),
                _ => None,
            },
        };
        let Some(entries) = entries else { continue };
        let unknown: Vec<(String, usize)> = entries
            .iter()
            .filter(|(key, _)| !table.valid.contains(&key.get_ref().as_ref()))
            .map(|(key, _)| (key.get_ref().to_string(), key.span().start))
            .collect();
        for (key, offset) in unknown {
            entries.remove(key.as_str());
            warnings.push(Warning::UnknownKey {
                file: file.to_owned(),
                line: line_and_column(text, offset).0,
                table: table.name,
                suggestion: nearest(&key, table.valid),
                key,
                valid: table.valid.to_vec(),
            });
        }
    }
    warnings.sort_by_key(|warning| match warning {
        Warning::UnknownKey { line, .. } => *line,
        _ => 0,
    });
    let value = T::deserialize(toml::de::Deserializer::from(document))?;
    Ok((value, warnings))
}

/// The valid key a misspelt one most likely meant: `reload-cmd` → `reload_cmd`.
fn nearest(key: &str, valid: &[&str]) -> Option<String> {
    let normalized = key.to_ascii_lowercase().replace('-', "_");
    valid
        .iter()
        .map(|candidate| {
            let distance = crate::cli::confd_args::edit_distance(
                &normalized,
                &candidate.to_ascii_lowercase().replace('-', "_"),
            );
            (distance, *candidate)
        })
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate.to_owned())
}

/// The keys a serde struct reads (its field names and their aliases), as its derived
/// `Deserialize` declares them: the list stays right when a field is added.
pub(super) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Captured(Some(fields))) => fields,
        _ => &[],
    }
}

/// A deserializer that only asks a struct for its field names.
struct FieldNames;

#[derive(Debug)]
struct Captured(Option<&'static [&'static str]>);

impl std::fmt::Display for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names captured")
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Captured(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldNames {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
        Err(Captured(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Captured> {
        Err(Captured(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        template: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        src: toml::Spanned<String>,
        #[serde(rename = "reload_cmd", alias = "reload-command")]
        reload: Option<String>,
    }

    fn tables() -> [Table; 2] {
        [
            Table {
                name: None,
                valid: fields_of::<Doc>(),
            },
            Table {
                name: Some("template"),
                valid: fields_of::<Inner>(),
            },
        ]
    }

    #[test]
    fn the_field_names_include_renames_and_aliases() {
        assert_eq!(fields_of::<Doc>(), ["template"]);
        assert_eq!(
            fields_of::<Inner>(),
            ["src", "reload-command", "reload_cmd"]
        );
    }

    #[test]
    fn under_confds_rule_unknown_keys_are_warned_and_the_rest_keeps_its_positions() {
        let text = "top = 1\n[template]\nsrc = \"a\"\nreload-cmd = \"x\"\nreload_cmd = \"y\"\n";
        let (doc, warnings): (Doc, _) =
            parse(Path::new("a.toml"), text, UnknownKeys::Warned, &tables()).unwrap();
        assert_eq!(doc.template.src.get_ref(), "a");
        assert_eq!(&text[doc.template.src.span()], "\"a\"");
        assert_eq!(doc.template.reload.as_deref(), Some("y"));
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "a.toml:1: unknown key \"top\" ignored, as confd ignores it; valid keys: template",
                "a.toml:4: unknown key \"reload-cmd\" in [template] ignored, as confd ignores it; \
                 did you mean \"reload_cmd\"?; valid keys: src, reload-command, reload_cmd",
            ]
        );
    }

    #[test]
    fn under_terads_rule_an_unknown_key_is_the_parsers_error() {
        let text = "[template]\nsrc = \"a\"\nreload-cmd = \"x\"\n";
        let error =
            parse::<Doc>(Path::new("a.toml"), text, UnknownKeys::Refused, &tables()).unwrap_err();
        assert!(
            error.message().contains("unknown field `reload-cmd`"),
            "{error}"
        );
        // The same error from the lenient path's second step keeps its position.
        let text = "[template]\nsrc = 3\n";
        let error =
            parse::<Doc>(Path::new("a.toml"), text, UnknownKeys::Warned, &tables()).unwrap_err();
        assert_eq!(error.span().map(|span| &text[span]), Some("3"));
    }
}
