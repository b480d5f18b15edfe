//! The post-reload health check of a resource: a command or an HTTP URL, with a timeout per
//! attempt, retries and a pause between them.

use std::time::Duration;

use tracing::debug;

use crate::config::coordination::{HealthCheck, HealthProbe};
use crate::process;

/// Runs `check` until one attempt passes or the retries are used up; the last failure's text.
pub async fn probe(check: &HealthCheck, resource: &str) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..=check.retries {
        if attempt > 0 {
            tokio::time::sleep(check.interval).await;
        }
        match once(&check.probe, check.timeout).await {
            Ok(()) => return Ok(()),
            Err(message) => {
                debug!(resource, attempt, error = %message, "health check failed");
                last = message;
            }
        }
    }
    Err(format!(
        "{} (after {} attempts)",
        last,
        u64::from(check.retries) + 1
    ))
}

async fn once(probe: &HealthProbe, timeout: Duration) -> Result<(), String> {
    match probe {
        HealthProbe::Command(command) => process::run_shell(command, timeout)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        HealthProbe::Url(url) => {
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(crate::backend::tls::client_config(
                    &crate::config::TlsSettings::default(),
                )?)
                .timeout(timeout)
                .build()
                .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
            let response = client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("GET {url} answered {}", response.status()))
            }
        }
    }
}
