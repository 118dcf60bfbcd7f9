//! `stop`, `kill` and `restart`: signals, then SIGKILL after the timeout.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Container, ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::{process, Caller};

/// Docker's default stop timeout, in seconds.
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

impl Engine {
    /// Stops a container (`POST /containers/{id}/stop`): its stop signal (SIGTERM unless the
    /// image or container says otherwise), then SIGKILL after `timeout` seconds (the
    /// container's `StopTimeout`, else 10; negative waits for ever). A stopped container is
    /// `NotModified` (304).
    pub async fn stop_container(
        &self,
        caller: &Caller,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        let container = self.find(name)?;
        let result = {
            let _op = self.lock_op(&container).await?;
            self.stop_locked(caller, &container, timeout, signal).await
        };
        // An auto-remove container that stopped is removed now, if nobody watching its exit
        // has done it already.
        self.refresh(&container).await;
        result
    }

    pub(crate) async fn stop_locked(
        &self,
        caller: &Caller,
        container: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        self.refresh_locked(container).await;
        let rec = container.snapshot();
        if rec.state.status == Status::Restarting {
            // Waiting to be restarted by its policy: stopping cancels that.
            container.update(|r| {
                r.manually_stopped = true;
                r.state.status = Status::Exited;
            })?;
            return Ok(());
        }
        if !rec.state.status.is_running() {
            return Err(ContainerError::NotModified {
                id: container.id.clone(),
                status: Status::Exited,
            }
            .into());
        }
        let signal_name = signal
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let sig = process::parse_signal(&signal_name).ok_or(ContainerError::InvalidSignal {
            signal: signal_name,
        })?;
        container.update(|r| r.manually_stopped = true)?;
        let timeout = timeout
            .or(rec.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        if rec.state.status == Status::Paused {
            // A frozen process cannot act on SIGTERM: kill it and thaw the cgroup.
            self.signal(container, Signal::SIGKILL)?;
            let _ = self.kernel.set_frozen(&self.cgroups, &container.id, false);
        } else {
            self.signal(container, sig)?;
        }
        let grace = if timeout < 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(timeout as u64)
        };
        if self.wait_for_exit(container, grace).await.is_err() {
            tracing::info!(id = %container.id, timeout, "container did not stop in time; sending SIGKILL");
            self.signal(container, Signal::SIGKILL)?;
            self.wait_for_exit(container, Duration::from_secs(30))
                .await?;
        }
        self.events.emit(
            caller,
            "container",
            "stop",
            &container.id,
            container.event_attributes(),
        );
        Ok(())
    }

    /// Sends a signal (`POST /containers/{id}/kill`); SIGKILL when none is named. A failure
    /// that is not the request's fault says "Cannot kill container: NAME", as dockerd's does.
    pub async fn kill_container(
        &self,
        caller: &Caller,
        name: &str,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        self.kill(caller, name, signal).await.map_err(|e| {
            if e.kind() == crate::ErrorKind::InvalidArgument {
                e.into()
            } else {
                ContainerError::Kill {
                    name: name.to_string(),
                    source: Box::new(e),
                }
                .into()
            }
        })
    }

    async fn kill(
        &self,
        caller: &Caller,
        name: &str,
        signal: Option<&str>,
    ) -> Result<(), ContainerError> {
        let container = self.find(name)?;
        let signal_name = signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL");
        let sig =
            process::parse_signal(signal_name).ok_or_else(|| ContainerError::InvalidSignal {
                signal: signal_name.to_string(),
            })?;
        self.refresh(&container).await;
        if !container.snapshot().state.status.is_running() {
            return Err(ContainerError::NotRunning {
                id: container.id.clone(),
            });
        }
        self.signal(&container, sig)?;
        let mut attrs = container.event_attributes();
        attrs.insert("signal".into(), (sig as i32).to_string());
        self.events
            .emit(caller, "container", "kill", &container.id, attrs);
        if sig == Signal::SIGKILL {
            // As Docker: a killed container is reported stopped when kill returns.
            let _ = self
                .wait_for_exit_unheld(&container, Duration::from_secs(10))
                .await;
        }
        Ok(())
    }

    /// Restarts a container (`POST /containers/{id}/restart`): stop if running, then start.
    pub async fn restart_container(
        &self,
        caller: &Caller,
        name: &str,
        timeout: Option<i64>,
    ) -> Result<(), EngineError> {
        let container = self.find(name)?;
        {
            let _op = self.lock_op(&container).await?;
            match self.stop_locked(caller, &container, timeout, None).await {
                Ok(()) => {}
                Err(EngineError::Container(ContainerError::NotModified { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        self.start_container(caller, &container.id).await?;
        self.events.emit(
            caller,
            "container",
            "restart",
            &container.id,
            container.event_attributes(),
        );
        Ok(())
    }

    /// Signals a running container's first process through a pidfd.
    pub(crate) fn signal(&self, container: &Container, sig: Signal) -> Result<(), ContainerError> {
        let rec = container.snapshot();
        let Some(p) = rec
            .state
            .processes
            .filter(|_| rec.state.status.is_running())
        else {
            return Err(ContainerError::NotRunning {
                id: container.id.clone(),
            });
        };
        self.kernel
            .signal(&p, sig)
            .map_err(|e| ContainerError::io(format!("Cannot kill container {}", container.id), e))
    }
}
