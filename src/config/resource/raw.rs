//! A resource file as serde reads it: every key confd knows plus terad's own, unknown keys
//! rejected, spans kept so that [`super::validate`] can point at the offending value.

use serde::Deserialize;

use crate::config::duration::DurationValue;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResourceFile {
    pub(super) template: RawTemplate,
}

/// A `[template]` table as written. Every field is optional here so that all missing and invalid
/// fields are reported together by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplate {
    pub(super) src: Option<Spanned<String>>,
    pub(super) engine: Option<Spanned<String>>,
    pub(super) dest: Option<Spanned<String>>,
    pub(super) keys: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) prefix: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) uid: Option<Spanned<i64>>,
    pub(super) gid: Option<Spanned<i64>>,
    pub(super) owner: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) check_cmd: Option<Spanned<String>>,
    pub(super) reload_cmd: Option<Spanned<String>>,
    pub(super) create_dirs: Option<bool>,
    pub(super) min_keys: Option<Spanned<i64>>,
    pub(super) allow_empty: Option<bool>,
    pub(super) strict_values: Option<bool>,
    pub(super) multiline: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) check_timeout: Option<Spanned<DurationValue>>,
    pub(super) reload_timeout: Option<Spanned<DurationValue>>,
    pub(super) render_timeout: Option<Spanned<DurationValue>>,
    pub(super) wait: Option<Spanned<String>>,
    pub(super) reload_interval: Option<Spanned<DurationValue>>,
    pub(super) coordination: Option<crate::config::coordination::RawCoordination>,
    pub(super) health_cmd: Option<Spanned<String>>,
    pub(super) health_url: Option<Spanned<String>>,
    pub(super) health_timeout: Option<Spanned<DurationValue>>,
    pub(super) health_retries: Option<Spanned<i64>>,
    pub(super) health_interval: Option<Spanned<DurationValue>>,
    pub(super) haproxy: Option<Spanned<crate::config::haproxy::RawHaproxy>>,
}
