//! A run's whole configuration, loaded in two steps: settings and resources
//! ([`crate::config::load`]), then the templates the resources name
//! ([`crate::template::prepare`]), checked against both. The problems of both steps are reported
//! together, so an operator fixes everything in one go.

use crate::cli::Cli;
use crate::config::{Resource, Settings, Warning};
use crate::diagnostic::ConfigErrors;
use crate::template::Templates;

/// Everything a run needs, loaded and checked.
#[derive(Debug)]
pub struct Config {
    pub settings: Settings,
    pub resources: Vec<Resource>,
    pub templates: Templates,
    /// What the resource files were accepted with; the settings' own are in
    /// [`Settings::warnings`].
    pub warnings: Vec<Warning>,
}

impl Config {
    /// Logs every warning of the load, the settings' first.
    pub fn log_warnings(&self) {
        for warning in self.settings.warnings.iter().chain(&self.warnings) {
            warning.log();
        }
    }
}

/// Loads settings, resources and templates, reporting every problem at once.
pub fn load(cli: &Cli) -> Result<Config, ConfigErrors> {
    let crate::config::Loaded {
        settings,
        mut resources,
        mut errors,
        warnings,
    } = crate::config::load(cli)?;
    let templates = crate::template::prepare(&settings, &mut resources, &mut errors);
    match templates {
        Some(templates) if errors.is_empty() => Ok(Config {
            settings,
            resources,
            templates,
            warnings,
        }),
        _ => Err(errors),
    }
}
