//! Healthchecks: the image's `HEALTHCHECK` or `--health-*`, probed by exec inside the
//! container, reported in `State.Health` and as `health_status` events, as dockerd does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_types::{ExecCreateRequest, ExecStartRequest, Health, HealthLog};

use super::{now_rfc3339, Container, Status};
use crate::engine::Engine;
use crate::Caller;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Probes kept in `State.Health.Log`.
const KEEP_LOG: usize = 5;
/// Output kept per probe.
const MAX_OUTPUT: usize = 4096;

/// A container's healthcheck, with Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probe {
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: i64,
}

impl Probe {
    /// The probe of a `Healthcheck` value; `None` when there is none or it is `NONE`.
    pub fn from_config(hc: &serde_json::Value) -> Option<Self> {
        let test: Vec<String> = hc["Test"]
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let command = match test.first().map(String::as_str) {
            Some("CMD") if test.len() > 1 => test[1..].to_vec(),
            Some("CMD-SHELL") if test.len() > 1 => {
                vec!["/bin/sh".into(), "-c".into(), test[1].clone()]
            }
            _ => return None,
        };
        let dur = |key: &str, default: Duration| match hc[key].as_i64() {
            Some(n) if n > 0 => Duration::from_nanos(n as u64),
            _ => default,
        };
        Some(Self {
            command,
            interval: dur("Interval", DEFAULT_INTERVAL),
            timeout: dur("Timeout", DEFAULT_TIMEOUT),
            start_period: dur("StartPeriod", Duration::ZERO),
            retries: hc["Retries"]
                .as_i64()
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_RETRIES),
        })
    }
}

/// The next health after a probe that ended with `exit_code`, and whether the status changed.
pub(crate) fn record_probe(
    health: &mut Health,
    probe: &Probe,
    log: HealthLog,
    in_start_period: bool,
) -> bool {
    let before = health.status.clone();
    if log.exit_code == 0 {
        health.failing_streak = 0;
        health.status = "healthy".into();
    } else if !(in_start_period && health.status == "starting") {
        // Failures during the start period do not count, until the first success.
        health.failing_streak += 1;
        if health.failing_streak >= probe.retries {
            health.status = "unhealthy".into();
        }
    }
    health.log.push(log);
    let excess = health.log.len().saturating_sub(KEEP_LOG);
    health.log.drain(..excess);
    health.status != before
}

impl Engine {
    /// Starts probing a container that has a healthcheck (where exits are watched: probes
    /// need a process that lives as long as the container; see [`Engine::supervise`]).
    pub(crate) fn start_health_monitor(&self, container: Arc<Container>) {
        let rec = container.snapshot();
        let Some(probe) = rec.config.healthcheck.as_ref().and_then(Probe::from_config) else {
            return;
        };
        let Some(engine) = self.self_arc() else {
            return;
        };
        let _ = container.update(|r| {
            r.state.health = Some(Health {
                status: "starting".into(),
                failing_streak: 0,
                log: Vec::new(),
            })
        });
        let exits = container.lifecycle.borrow().exits;
        let started = Instant::now();
        tokio::spawn(async move {
            let mut life = container.lifecycle.subscribe();
            loop {
                let wait = tokio::time::sleep(probe.interval);
                tokio::select! {
                    _ = wait => {}
                    _ = life.wait_for(|l| l.exits != exits || l.removed) => return,
                }
                match container.snapshot().state.status {
                    Status::Running => {}
                    Status::Paused => continue,
                    _ => return,
                }
                let log = engine.probe_once(&container, &probe).await;
                if container.lifecycle.borrow().exits != exits {
                    return;
                }
                let in_start = started.elapsed() < probe.start_period;
                let mut changed = None;
                let _ = container.update(|r| {
                    let health = r.state.health.get_or_insert_with(Health::default);
                    if record_probe(health, &probe, log, in_start) {
                        changed = Some(health.status.clone());
                    }
                });
                if let Some(status) = changed {
                    engine.events.emit(
                        &Caller::engine(),
                        "container",
                        &format!("health_status: {status}"),
                        &container.id,
                        container.event_attributes(),
                    );
                }
            }
        });
    }

    /// Runs the probe's command once inside the container, with its timeout.
    async fn probe_once(&self, container: &Container, probe: &Probe) -> HealthLog {
        let start = now_rfc3339();
        let caller = Caller::engine();
        let result = tokio::time::timeout(probe.timeout, async {
            let id = self
                .create_exec(
                    &caller,
                    &container.id,
                    ExecCreateRequest {
                        attach_stdout: true,
                        attach_stderr: true,
                        cmd: Some(probe.command.clone()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            let session = self
                .start_exec(&caller, &id, ExecStartRequest::default())
                .await
                .map_err(|e| e.to_string())?;
            let mut output = Vec::new();
            if let Some(mut s) = session {
                while let Some(chunk) = s.output.recv().await {
                    let room = MAX_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&chunk.bytes[..chunk.bytes.len().min(room)]);
                }
            }
            let code = self
                .inspect_exec(&caller, &id)
                .map_err(|e| e.to_string())?
                .exit_code
                .unwrap_or(-1);
            Ok::<_, String>((code, String::from_utf8_lossy(&output).into_owned()))
        })
        .await;
        let (exit_code, output) = match result {
            Ok(Ok(r)) => r,
            Ok(Err(message)) => (-1, message),
            Err(_) => (
                -1,
                format!("Health check exceeded timeout ({:?})", probe.timeout),
            ),
        };
        HealthLog {
            start,
            end: now_rfc3339(),
            exit_code,
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_read_dockers_config() {
        let p = Probe::from_config(&json!({"Test": ["CMD-SHELL", "test -f /ok"], "Interval": 1_000_000_000i64, "Retries": 2})).unwrap();
        assert_eq!(p.command, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(p.interval, Duration::from_secs(1));
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!(p.retries, 2);
        assert_eq!(
            Probe::from_config(&json!({"Test": ["CMD", "true"]}))
                .unwrap()
                .command,
            ["true"]
        );
        assert!(Probe::from_config(&json!({"Test": ["NONE"]})).is_none());
        assert!(Probe::from_config(&json!({})).is_none());
    }

    #[test]
    fn status_follows_successes_and_failure_streaks() {
        let p = Probe::from_config(&json!({"Test": ["CMD", "x"], "Retries": 2})).unwrap();
        let mut h = Health {
            status: "starting".into(),
            ..Default::default()
        };
        let log = |code| HealthLog {
            exit_code: code,
            ..Default::default()
        };
        assert!(
            !record_probe(&mut h, &p, log(1), true),
            "start period failures do not count"
        );
        assert_eq!(h.failing_streak, 0);
        assert!(record_probe(&mut h, &p, log(0), false));
        assert_eq!(h.status, "healthy");
        assert!(!record_probe(&mut h, &p, log(1), false));
        assert!(record_probe(&mut h, &p, log(1), false));
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        for _ in 0..10 {
            record_probe(&mut h, &p, log(1), false);
        }
        assert_eq!(h.log.len(), KEEP_LOG);
    }
}
