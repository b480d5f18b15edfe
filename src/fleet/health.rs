//! The post-reload health check of a resource: a command or an HTTP URL, with a timeout per
//! attempt, retries and a pause between them.

use std::time::Duration;

use tracing::debug;

use crate::config::coordination::{HealthCheck, HealthProbe};
use crate::process;

/// Why a resource is unhealthy after its change.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("{last} (after {attempts} attempts)")]
    Attempts {
        #[source]
        last: ProbeError,
        attempts: u64,
    },
    /// The HTTP client for a URL check cannot be built (its TLS set-up failed).
    #[error("cannot set up an HTTP client: {0}")]
    Client(String),
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Command(#[from] process::CommandError),
    #[error("GET {url}: {source}")]
    Request {
        /// With any password masked.
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// Runs `check` until one attempt passes or the retries are used up; the last failure.
pub async fn probe(check: &HealthCheck, resource: &str) -> Result<(), Unhealthy> {
    // One HTTP client for all attempts: building one loads the system's trust store.
    let probe = match &check.probe {
        HealthProbe::Command(command) => Probe::Command(command),
        HealthProbe::Url(url) => Probe::Get(url, http_client(check.timeout)?),
    };
    let mut attempt = 0;
    loop {
        let error = match once(&probe, check.timeout).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        debug!(resource, attempt, error = %error, "health check failed");
        if attempt == check.retries {
            return Err(Unhealthy::Attempts {
                last: error,
                attempts: u64::from(check.retries) + 1,
            });
        }
        attempt += 1;
        tokio::time::sleep(check.interval).await;
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, Unhealthy> {
    let tls = crate::backend::tls::client_config(&crate::config::TlsSettings::default())
        .map_err(|e| Unhealthy::Client(e.to_string()))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| Unhealthy::Client(e.to_string()))
}

/// A health probe ready to run.
enum Probe<'a> {
    Command(&'a str),
    Get(&'a str, reqwest::Client),
}

async fn once(probe: &Probe<'_>, timeout: Duration) -> Result<(), ProbeError> {
    match probe {
        Probe::Command(command) => Ok(process::run_shell(command, timeout).await.map(|_| ())?),
        Probe::Get(url, http) => {
            let shown = || crate::redact::url(url).into_owned();
            let response = http
                .get(*url)
                .send()
                .await
                .map_err(|source| ProbeError::Request {
                    url: shown(),
                    source,
                })?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(ProbeError::Status {
                    url: shown(),
                    status: response.status(),
                })
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
        assert!(probe(&url_check(url, 2), "r").await.is_ok());
    }

    #[tokio::test]
    async fn a_url_that_keeps_failing_reports_the_last_answer_and_the_attempts() {
        let url = server(vec![503]);
        let error = probe(&url_check(url.clone(), 1), "r")
            .await
            .unwrap_err()
            .to_string();
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
        let error = probe(&check, "r").await.unwrap_err().to_string();
        assert!(
            error.contains("down") && error.ends_with("(after 1 attempts)"),
            "{error}"
        );
    }
}
