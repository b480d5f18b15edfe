//! Configuration reloads (SIGHUP, `--watch-config`): the new configuration is validated, then
//! applied in place where the backend stays the same.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::runtime::{Reconfigured, Runtime};
use super::schedule::Slot;
use super::sync_options;
use crate::cli::Cli;
use crate::config::{Resource, Settings};
use crate::fleet::Fleet;
use crate::setup::{self, Config};
use crate::telemetry::notify_systemd_reloading;

impl Runtime {
    /// Re-reads the configuration. Errors leave everything as it is; a new backend restarts the
    /// run; otherwise resources are updated in place (unchanged ones keep their worker, their
    /// memory of failed checks and their pending `wait`).
    pub(super) async fn reload_configuration(&mut self, cli: &Cli) -> Reconfigured {
        notify_systemd_reloading();
        info!("reloading the configuration");
        let config = match setup::load(cli) {
            Ok(config) => {
                config.log_warnings();
                for broken in &config.broken {
                    broken.log();
                }
                self.telemetry.set_broken(&config.broken_reasons());
                config
            }
            Err(errors) => {
                for error in &errors.0 {
                    error!(error = %error, "configuration error");
                }
                error!(
                    errors = errors.len(),
                    "new configuration rejected; the running one stays"
                );
                return Reconfigured::Kept;
            }
        };
        // A running resource whose template broke keeps rendering with its last good template
        // (its slot, with the template set it started with, stays as it is) while the rest of
        // the reload applies: one broken edit must not hold back every other change. A new
        // resource with a broken template is only left out.
        let running_broken: Vec<String> = config
            .broken
            .iter()
            .map(|broken| broken.resource.clone())
            .filter(|name| {
                self.scheduler
                    .slots
                    .iter()
                    .any(|slot| slot.resource.name == *name)
            })
            .collect();
        if config.resources.is_empty() && running_broken.is_empty() {
            error!(
                "no resource of the new configuration can be used; the configuration reload is not applied and the running configuration stays"
            );
            return Reconfigured::Kept;
        }
        if !config.settings.same_backend(&self.settings) {
            // A new backend starts the run again from the new configuration, which has no
            // last good template to keep.
            if !running_broken.is_empty() {
                error!(
                    resources = crate::logging::json(&running_broken),
                    "the template of a running resource cannot be used and the backend changes; the configuration reload is not applied and the running configuration stays"
                );
                return Reconfigured::Kept;
            }
            return match crate::backend::Backend::connect(&config.settings) {
                Ok(backend) => Reconfigured::NewBackend(Box::new(config), backend),
                Err(errors) => {
                    error!(error = %errors, "new backend settings rejected; the running configuration stays");
                    Reconfigured::Kept
                }
            };
        }
        for ignored in ["listen", "exec"] {
            let changed = match ignored {
                "listen" => config.settings.listen != self.settings.listen,
                _ => config.settings.exec != self.settings.exec,
            };
            if changed {
                warn!(
                    setting = ignored,
                    "this setting only changes with a restart of terad"
                );
            }
        }
        let Config {
            settings,
            resources,
            templates,
            ..
        } = config;
        let diff = Diff::new(self, &settings, &resources);
        // New workers start with the new options and instance name.
        self.workers.options = sync_options(&settings);
        if settings.instance != self.workers.fleet.instance {
            self.workers.fleet = Arc::new(Fleet {
                coordinator: self.workers.fleet.coordinator.clone(),
                instance: settings.instance.clone(),
            });
        }
        self.settings = settings;
        self.scheduler.templates = Arc::new(templates);

        let mut old: Vec<Option<Slot>> = std::mem::take(&mut self.scheduler.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut slots = Vec::with_capacity(resources.len());
        for (resource, keep) in resources.into_iter().zip(&diff.keep) {
            match keep.and_then(|index| old[index].take()) {
                Some(mut slot) => {
                    slot.wait = slot.resource.wait.or(self.settings.wait);
                    slot.use_templates(&self.scheduler.templates);
                    slots.push(slot);
                }
                None => slots.push(self.new_slot(resource)),
            }
        }
        let mut last_good = 0;
        for slot in old.into_iter().flatten() {
            if running_broken.contains(&slot.resource.name) {
                warn!(
                    resource = %slot.resource.name,
                    dest = %slot.resource.dest.display(),
                    "its edited template cannot be used; it renders with its last good template until the template is fixed"
                );
                last_good += 1;
                slots.push(slot);
                continue;
            }
            // Its worker finishes what it is writing, then ends; its reload groups stop
            // counting it, and a group left without members goes.
            self.workers.stop(&slot.member);
        }
        self.scheduler.slots = slots;
        let prefixes_changed = self.update_prefixes();
        info!(
            kept = diff.kept(),
            started = diff.keep.len() - diff.kept(),
            stopped = diff.stopped - last_good,
            last_good_template = last_good,
            "configuration reloaded"
        );
        Reconfigured::InPlace { prefixes_changed }
    }
}

/// What a configuration reload changes, decided before anything is touched.
struct Diff {
    /// For each new resource, the running slot it keeps (its worker, its memory of rejected
    /// renders and its pending `wait`), when nothing about it changed.
    keep: Vec<Option<usize>>,
    /// Running slots no new resource keeps.
    stopped: usize,
}

impl Diff {
    fn new(runtime: &Runtime, settings: &Settings, resources: &[Resource]) -> Diff {
        // Workers were started with the sync options and the instance name: when either
        // changes, every resource restarts.
        let restart_all = sync_options(settings) != runtime.workers.options
            || settings.instance != runtime.workers.fleet.instance
            // The spacing of reloads is fixed when a resource joins its groups.
            || settings.reload_interval != runtime.settings.reload_interval
            || settings.wait.is_some() != runtime.settings.wait.is_some();
        let slots = &runtime.scheduler.slots;
        let mut taken = vec![false; slots.len()];
        let keep: Vec<Option<usize>> = resources
            .iter()
            .map(|resource| {
                if restart_all {
                    return None;
                }
                let index = slots
                    .iter()
                    .enumerate()
                    .position(|(index, slot)| !taken[index] && *slot.resource == *resource)?;
                taken[index] = true;
                Some(index)
            })
            .collect();
        Diff {
            stopped: taken.iter().filter(|kept| !**kept).count(),
            keep,
        }
    }

    fn kept(&self) -> usize {
        self.keep.iter().flatten().count()
    }
}
