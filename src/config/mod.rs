//! Configuration: the command line, the environment and the configuration file layered into
//! validated [`Settings`]; the template resources of `conf.d` checked into [`Resource`]s. The
//! templates the resources name are loaded after this, by [`crate::template`]
//! ([`crate::setup`] runs both steps): a setting never drags template loading with it.
//!
//! Precedence is command line > `TERAD_*` environment variable > configuration file > other
//! tools' variables (`CONSUL_HTTP_TOKEN`) > default. clap resolves the first two into one
//! layer; [`layer`] reads the others, and [`Settings::load`] ([`validate`]) combines them once
//! and then validates the result. The file is `terad.toml` or, when there is none, an existing
//! `confd.toml`, which loads unchanged.
//!
//! - [`settings`]: the validated run-wide values.
//! - [`validate`]: layers combined and checked into [`Settings`].
//! - [`resource`]: `conf.d/**/*.toml` into [`Resource`]s.
//! - [`coordination`]: `[coordination]` and `[template.coordination]`, the fleet's settings.
//! - [`haproxy`]: `[template.haproxy]`, HAProxy's runtime API for a resource.

pub mod consul_template;
pub mod coordination;
mod duration;
mod file;
pub mod haproxy;
mod layer;
pub mod resource;
pub mod settings;
#[cfg(test)]
mod tests;
mod unknown;
mod validate;
pub mod value;
pub mod warning;

pub use crate::cli::defaults::{
    CONFD_CONFDIR, CONFD_CONFIG_FILE, ConfigFiles, DEFAULT_BACKEND_TIMEOUT, DEFAULT_CONFDIR,
    DEFAULT_CONSUL_WAIT, DEFAULT_INTERVAL, Defaults,
};
pub use crate::diagnostic::{ConfigError, ConfigErrors, line_and_column};
pub use crate::logging::LogFormat;
pub use resource::{EngineChoice, Resource, TemplateRef, TemplateText, load_resources, parse_mode};
pub use settings::*;
pub use warning::Warning;

use crate::cli::{Cli, Layout};

/// Settings and the resources that parsed, with the problems found so far: the next step (the
/// templates) adds its own, so that every problem is reported at once.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub resources: Vec<Resource>,
    pub errors: ConfigErrors,
    /// What the resource files were accepted with (the settings' own are in
    /// [`Settings::warnings`]).
    pub warnings: Vec<Warning>,
}

/// Loads settings and resources. `Err` when the settings themselves are wrong (there is nothing
/// to check the resources against); the resources' own problems come back in [`Loaded::errors`].
pub fn load(cli: &Cli) -> Result<Loaded, ConfigErrors> {
    let settings = Settings::load(cli, |name| std::env::var(name).ok())?;
    let mut warnings = Vec::new();
    let reading = resource::Reading {
        global_prefix: &settings.prefix,
        rules: settings.rules,
    };
    let (mut resources, mut errors) = match settings.rules.layout {
        Layout::Confdir => load_resources(
            &settings.conf_d(),
            &settings.templates_dir(),
            reading,
            &mut warnings,
        ),
        Layout::ConsulTemplate => consul_template::resources(&settings, &mut warnings),
    };
    for resource in &mut resources {
        resource.template.engine = resource.engine.unwrap_or(settings.template_engine);
        if resource.coordination.is_none() {
            resource.coordination = settings.coordination.clone();
        }
        if resource.coordination.is_some()
            && matches!(settings.backend, BackendKind::File | BackendKind::Env)
        {
            errors.push(
                ConfigError::in_file(
                    &resource.file,
                    "needs a shared store (etcd or consul) to take turns through".to_owned(),
                )
                .with_key("coordination"),
            );
        }
        if let Some(service) = resource
            .coordination
            .as_ref()
            .and_then(|c| c.service.as_ref())
            && settings.backend != BackendKind::Consul
        {
            errors.push(
                ConfigError::in_file(
                    &resource.file,
                    format!(
                        "service {:?} counts the health of its instances in Consul: it needs --backend consul, not {}",
                        service.name,
                        settings.backend.name()
                    ),
                )
                .with_key("coordination.service"),
            );
        }
    }
    Ok(Loaded {
        settings,
        resources,
        errors,
        warnings,
    })
}
