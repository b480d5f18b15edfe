//! A run's whole configuration, loaded in two steps: settings and resources
//! ([`crate::config::load`]), then the templates the resources name
//! ([`crate::template::prepare`]), checked against both. The problems of both steps are reported
//! together, so an operator fixes everything in one go.
//!
//! Availability first: when the settings and every resource file are valid and only templates
//! are not (a syntax error, an unknown function), a daemon run goes on without the resources
//! whose templates cannot be used ([`Config::broken`]) and serves the others, as confd does,
//! which parses a template at each render and fails only that resource. A one-shot run still
//! refuses the whole configuration: it writes nothing rather than part of it.

use crate::cli::Cli;
use crate::config::{Mode, Resource, Settings, Warning};
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
    /// Resources left out because their templates cannot be used; the others run.
    pub broken: Vec<Broken>,
}

/// A resource left out of a daemon run because its template cannot be used.
#[derive(Debug, Clone)]
pub struct Broken {
    /// The resource's name (its file below `conf.d`, without `.toml`).
    pub resource: String,
    pub errors: ConfigErrors,
}

impl Broken {
    /// The resource's name and its problems on one line, for `/ready` and the metric.
    pub fn reason(&self) -> (String, String) {
        let problems: Vec<String> = self.errors.0.iter().map(ToString::to_string).collect();
        (self.resource.clone(), problems.join("; "))
    }

    /// Logs each problem of the resource at error level.
    pub fn log(&self) {
        for error in &self.errors.0 {
            tracing::error!(
                resource = %self.resource,
                error = %error,
                "resource left out: its template cannot be used; the other resources run"
            );
        }
    }
}

impl Config {
    /// Logs every warning of the load, the settings' first.
    pub fn log_warnings(&self) {
        for warning in self.settings.warnings.iter().chain(&self.warnings) {
            warning.log();
        }
    }

    /// When every resource was left out for its template: the problems, for a run that would
    /// have nothing to do (at start, an error; on a reload, the running configuration stays).
    pub fn nothing_to_run(&self) -> Option<ConfigErrors> {
        if !self.resources.is_empty() {
            return None;
        }
        let mut errors = ConfigErrors::default();
        for broken in &self.broken {
            errors.extend(broken.errors.clone());
        }
        Some(errors)
    }

    /// `/ready`'s and the metric's view of [`Config::broken`].
    pub fn broken_reasons(&self) -> Vec<(String, String)> {
        self.broken.iter().map(Broken::reason).collect()
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
    let files_valid = errors.is_empty();
    let templates = crate::template::prepare(&settings, &mut resources, &mut errors);
    match templates {
        Some(templates) if errors.is_empty() => Ok(Config {
            settings,
            resources,
            templates,
            warnings,
            broken: Vec::new(),
        }),
        _ if files_valid && settings.mode != Mode::Onetime => {
            without_broken_templates(settings, resources, warnings, errors)
        }
        _ => Err(errors),
    }
}

/// Leaves out each resource whose template cannot be used, checking them one by one, and loads
/// the others' templates (none may be left: [`Config::nothing_to_run`]).
fn without_broken_templates(
    settings: Settings,
    resources: Vec<Resource>,
    warnings: Vec<Warning>,
    errors: ConfigErrors,
) -> Result<Config, ConfigErrors> {
    let mut usable = Vec::new();
    let mut broken = Vec::new();
    for resource in resources {
        let mut alone = [resource];
        let mut problems = ConfigErrors::default();
        let loaded = crate::template::prepare(&settings, &mut alone, &mut problems);
        let [resource] = alone;
        if loaded.is_some() && problems.is_empty() {
            usable.push(resource);
        } else {
            broken.push(Broken {
                resource: resource.name,
                errors: problems,
            });
        }
    }
    let mut problems = ConfigErrors::default();
    match crate::template::prepare(&settings, &mut usable, &mut problems) {
        Some(templates) if problems.is_empty() => Ok(Config {
            settings,
            resources: usable,
            templates,
            warnings,
            broken,
        }),
        // Templates that only fail together (none known today): refuse, as before.
        _ => Err(errors),
    }
}
