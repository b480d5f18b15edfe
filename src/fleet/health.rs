//! The post-reload health check of a resource: a command or an HTTP URL, with a timeout per
//! attempt, retries and a pause between them.

use std::time::Duration;

use tracing::debug;

use crate::config::coordination::{HealthCheck, HealthProbe};
use crate::process;

/// Runs `check` until one attempt passes or the retries are used up; the last failure's text.
pub async fn probe(check: &HealthCheck, resource: &str) -> Result<(), String> {
    // One HTTP client for all attempts: building one loads the system's trust store.
    let probe = match &check.probe {
        HealthProbe::Command(command) => Probe::Command(command),
        HealthProbe::Url(url) => Probe::Get(url, http_client(check.timeout)?),
    };
    let mut last = String::new();
    for attempt in 0..=check.retries {
        if attempt > 0 {
            tokio::time::sleep(check.interval).await;
        }
        match once(&probe, check.timeout).await {
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

fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::backend::tls::client_config(
            &crate::config::TlsSettings::default(),
        )?)
        .timeout(timeout)
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {e}"))
}

/// A health probe ready to run.
enum Probe<'a> {
    Command(&'a str),
    Get(&'a str, reqwest::Client),
}

async fn once(probe: &Probe<'_>, timeout: Duration) -> Result<(), String> {
    match probe {
        Probe::Command(command) => process::run_shell(command, timeout)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Probe::Get(url, http) => {
            let response = http
                .get(*url)
                .send()
                .await
                .map_err(|e| format!("GET {}: {e}", crate::redact::url(url)))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!(
                    "GET {} answered {}",
                    crate::redact::url(url),
                    response.status()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Answers each connection with the next status of `statuses` (then the last one).
    fn server(statuses: Vec<u16>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let status = statuses[i.min(statuses.len() - 1)];
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        format!("http://{address}/health")
    }

    fn url_check(url: String, retries: u32) -> HealthCheck {
        HealthCheck {
            probe: HealthProbe::Url(url),
            timeout: Duration::from_secs(2),
            retries,
            interval: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn a_url_passes_once_it_answers_2xx_within_the_retries() {
        let url = server(vec![503, 503, 200]);
        assert_eq!(probe(&url_check(url, 2), "r").await, Ok(()));
    }

    #[tokio::test]
    async fn a_url_that_keeps_failing_reports_the_last_answer_and_the_attempts() {
        let url = server(vec![503]);
        let error = probe(&url_check(url.clone(), 1), "r").await.unwrap_err();
        assert_eq!(
            error,
            format!("GET {url} answered 503 Service Unavailable (after 2 attempts)")
        );
    }

    #[tokio::test]
    async fn a_command_fails_with_its_stderr() {
        let check = HealthCheck {
            probe: HealthProbe::Command("echo down >&2; exit 1".into()),
            timeout: Duration::from_secs(2),
            retries: 0,
            interval: Duration::from_millis(10),
        };
        let error = probe(&check, "r").await.unwrap_err();
        assert!(
            error.contains("down") && error.ends_with("(after 1 attempts)"),
            "{error}"
        );
    }
}
