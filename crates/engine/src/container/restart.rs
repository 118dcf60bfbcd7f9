//! Restart policies: `no`, `on-failure[:N]`, `always`, `unless-stopped`, with Docker's
//! back-off (100 ms, doubling up to a minute, reset after ten seconds of running).

use std::sync::Arc;
use std::time::Duration;

use super::{Container, ContainerRecord, Status};
use crate::engine::Engine;
use crate::Caller;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A container that ran this long before exiting starts its back-off afresh.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// Whether the policy restarts a container that just exited with `exit_code`.
pub(crate) fn should_restart(rec: &ContainerRecord, exit_code: i64) -> bool {
    let policy = &rec.host_config.restart_policy;
    if rec.manually_stopped || rec.host_config.auto_remove {
        return false;
    }
    match policy.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            exit_code != 0
                && (policy.maximum_retry_count == 0
                    || rec.restart_count < policy.maximum_retry_count)
        }
        _ => false,
    }
}

/// Whether berthd starts this container when it starts (Docker starts `always` containers,
/// and `unless-stopped` ones nobody stopped).
pub(crate) fn start_with_daemon(rec: &ContainerRecord) -> bool {
    let started_before = rec.state.started_at != super::ZERO_TIME;
    let wanted = match rec.host_config.restart_policy.name.as_str() {
        "always" => true,
        "unless-stopped" => !rec.manually_stopped,
        "on-failure" => rec.state.status == Status::Restarting,
        _ => false,
    };
    wanted && started_before && matches!(rec.state.status, Status::Exited | Status::Restarting)
}

/// The next back-off delay, given the previous one and how long the container ran.
pub(crate) fn next_delay(previous: Duration, ran_for: Duration) -> Duration {
    if ran_for >= RESET_AFTER || previous.is_zero() {
        FIRST_DELAY
    } else {
        (previous * 2).min(MAX_DELAY)
    }
}

impl Engine {
    /// After an exit: if the restart policy says so, marks the container `restarting` and
    /// starts it again after the back-off. Returns whether a restart was scheduled.
    pub(crate) fn schedule_restart(
        &self,
        container: &Arc<Container>,
        exit_code: i64,
        ran_for: Duration,
    ) -> bool {
        let rec = container.snapshot();
        if !should_restart(&rec, exit_code) {
            *container.backoff.lock().unwrap_or_else(|e| e.into_inner()) = Duration::ZERO;
            return false;
        }
        let delay = {
            let mut b = container.backoff.lock().unwrap_or_else(|e| e.into_inner());
            *b = next_delay(*b, ran_for);
            *b
        };
        if let Err(e) = container.update(|r| {
            r.state.status = Status::Restarting;
            r.restart_count += 1;
        }) {
            tracing::error!(id = %container.id, error = %crate::error::Chain(&e), "cannot record the restart");
            return false;
        }
        self.spawn_start_after(container.clone(), delay);
        true
    }

    /// Starts a `restarting` container after `delay`, unless someone stopped or removed it.
    pub(crate) fn spawn_start_after(&self, container: Arc<Container>, delay: Duration) {
        let Some(engine) = self.self_arc() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let rec = container.snapshot();
            if rec.state.status != Status::Restarting
                || rec.manually_stopped
                || container.lifecycle.borrow().removed
            {
                return;
            }
            tracing::info!(id = %container.id, restart_count = rec.restart_count, "restarting by policy");
            if let Err(e) = engine
                .start_container(&Caller::engine(), &container.id)
                .await
            {
                tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "restart by policy failed");
                let _ = container.update(|r| {
                    if r.state.status == Status::Restarting {
                        r.state.status = Status::Exited;
                    }
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(policy: &str, max: i64, count: i64) -> ContainerRecord {
        let mut hc = api_types::HostConfig::default();
        hc.restart_policy.name = policy.into();
        hc.restart_policy.maximum_retry_count = max;
        ContainerRecord {
            id: "x".into(),
            name: "/x".into(),
            created: String::new(),
            image_id: String::new(),
            image_name: String::new(),
            config: Default::default(),
            host_config: hc,
            path: "true".into(),
            args: vec![],
            layers: vec![],
            state: Default::default(),
            restart_count: count,
            created_by_uid: 0,
            manually_stopped: false,
        }
    }

    #[test]
    fn policies_decide_as_docker() {
        assert!(!should_restart(&record("no", 0, 0), 1));
        assert!(should_restart(&record("always", 0, 0), 0));
        assert!(should_restart(&record("unless-stopped", 0, 5), 0));
        assert!(!should_restart(&record("on-failure", 0, 0), 0));
        assert!(should_restart(&record("on-failure", 0, 9), 1));
        assert!(should_restart(&record("on-failure", 3, 2), 1));
        assert!(!should_restart(&record("on-failure", 3, 3), 1));
        let mut stopped = record("always", 0, 0);
        stopped.manually_stopped = true;
        assert!(!should_restart(&stopped, 1));
    }

    #[test]
    fn back_off_doubles_and_resets() {
        let short = Duration::from_millis(50);
        let mut d = next_delay(Duration::ZERO, short);
        assert_eq!(d, Duration::from_millis(100));
        d = next_delay(d, short);
        assert_eq!(d, Duration::from_millis(200));
        for _ in 0..20 {
            d = next_delay(d, short);
        }
        assert_eq!(d, MAX_DELAY);
        assert_eq!(next_delay(d, Duration::from_secs(11)), FIRST_DELAY);
    }
}
