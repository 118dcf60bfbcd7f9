//! Noticing exits: watching shims (berthd), looking when asked (daemonless), and
//! reconciling disk with the kernel when berthd starts.

use std::sync::Arc;
use std::time::Duration;

use shim::ExitStatus;

use super::{Container, ContainerError, Processes, Status};
use crate::engine::Engine;
use crate::rootfs::Overlay;
use crate::Caller;

/// How an engine learns that a container exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitNotice {
    /// berthd: a task per running container waits on its shim's pidfd and handles the
    /// exit as it happens; restart policies, auto-removal and healthchecks act then.
    Watched,
    /// Daemonless: no process outlives the command, so an exit is recorded by whoever next
    /// looks at the container ([`Engine::refresh`]), and an auto-remove container is
    /// removed then; restart policies and healthchecks need berthd.
    OnLook,
}

/// How often someone waiting for news of a container looks at it where nobody watches
/// exits (the shim's exit wakes them at once; this is for changes other processes make).
const LOOK_EVERY: Duration = Duration::from_millis(50);

impl Engine {
    /// A container's shim has started it: where exits are watched, watch this one, and
    /// probe its health if it has a healthcheck.
    pub(crate) fn supervise(&self, container: &Arc<Container>, processes: Processes) {
        match self.exits {
            ExitNotice::Watched => {
                self.watch_shim(container.clone(), processes);
                self.start_health_monitor(container.clone());
            }
            ExitNotice::OnLook => {}
        }
    }

    /// Watches a container's shim and handles the container's exit when the shim exits.
    fn watch_shim(&self, container: Arc<Container>, processes: Processes) {
        let Some(engine) = self.self_arc() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = engine.kernel.shim_exited(&processes).await {
                tracing::debug!(id = %container.id, error = %crate::error::Chain(&e), "cannot watch the shim with a pidfd");
            }
            // Without a pidfd (or if it failed), fall back to polling.
            while engine.kernel.shim_alive(&processes) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            engine.handle_exit(&container, &processes).await;
        });
    }

    /// Records a container's exit once its shim is gone: reads the exit file, unmounts the
    /// root file system, publishes `die`, and (where exits are watched) restarts by policy
    /// or auto-removes. Idempotent. When exits are noticed on look, the caller holds the
    /// container, and an auto-remove container is removed by [`Engine::refresh`].
    pub(crate) async fn handle_exit(&self, container: &Arc<Container>, processes: &Processes) {
        let rec = container.snapshot();
        if !rec.state.status.is_running() || rec.state.processes.as_ref() != Some(processes) {
            return;
        }
        {
            let shim = Some((processes.shim_pid, processes.shim_start_time));
            let mut claimed = container
                .exit_claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *claimed == shim {
                return;
            }
            *claimed = shim;
        }
        let status = match ExitStatus::read(&container.exit_file()) {
            Ok(Some(s)) => s,
            Ok(None) | Err(_) => ExitStatus {
                exit_code: 255,
                oom_killed: false,
                finished_at: super::now_rfc3339(),
            },
        };
        let overlay = Overlay::in_dir(&container.dir, rec.layers.clone());
        if let Err(e) = self.kernel.unmount(&overlay.merged) {
            tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "cannot unmount the root file system");
        }
        if let Err(e) = crate::fsutil::remove_tree(&container.run_dir) {
            tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "cannot remove the bundle");
        }
        let result = container.update(|r| {
            r.state.status = Status::Exited;
            r.state.processes = None;
            r.state.exit_code = status.exit_code as i64;
            r.state.oom_killed = status.oom_killed;
            r.state.finished_at = status.finished_at.clone();
        });
        if let Err(e) = result {
            tracing::error!(id = %container.id, error = %crate::error::Chain(&e), "cannot record the exit");
        }
        let engine = Caller::engine();
        let mut attrs = container.event_attributes();
        // Date the events when the shim saw the exit (an exit noticed on look comes late),
        // not before the start, though, should the clocks disagree.
        let nanos = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
        };
        let when = nanos(&status.finished_at)
            .map(|exit| exit.max(nanos(&rec.state.started_at).unwrap_or(0)))
            .unwrap_or_else(crate::events::now_nanos);
        if status.oom_killed {
            self.events.emit_at(
                &engine,
                "container",
                "oom",
                &container.id,
                attrs.clone(),
                when,
            );
        }
        attrs.insert("exitCode".into(), status.exit_code.to_string());
        self.events
            .emit_at(&engine, "container", "die", &container.id, attrs, when);
        container.lifecycle.send_modify(|l| l.exits += 1);
        if self.exits == ExitNotice::OnLook {
            return;
        }
        let ran_for = chrono::DateTime::parse_from_rfc3339(&rec.state.started_at)
            .ok()
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .unwrap_or_default();
        if self.schedule_restart(container, status.exit_code as i64, ran_for) {
            return;
        }
        if rec.host_config.auto_remove {
            match self.remove_container(&engine, &container.id, true).await {
                // Removed meanwhile by someone who noticed the exit too.
                Ok(()) | Err(crate::EngineError::Container(ContainerError::NotFound { .. })) => {}
                Err(e) => {
                    tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "auto-remove failed")
                }
            }
        }
    }

    /// When berthd opens its store: matches the records with the kernel. Re-watches live
    /// shims, records exits that happened while nobody watched, finishes removals left
    /// half-done, starts what restart policies say must run with the daemon, and removes
    /// what nothing owns (mounts, bundles, cgroups of containers that are gone).
    pub(crate) async fn reconcile(&self) {
        for container in self.all_containers() {
            let rec = container.snapshot();
            match rec
                .state
                .processes
                .clone()
                .filter(|_| rec.state.status.is_running())
            {
                Some(p) if self.kernel.shim_alive(&p) => self.supervise_restored(&container, p),
                Some(p) => self.handle_exit(&container, &p).await,
                None => {
                    let overlay = Overlay::in_dir(&container.dir, rec.layers.clone());
                    if let Err(e) = self.kernel.unmount(&overlay.merged) {
                        tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "cannot unmount a stopped container's root");
                    }
                    // Half-removed, or (left by daemonless commands) exited and waiting to be
                    // auto-removed.
                    if matches!(rec.state.status, Status::Removing | Status::Dead)
                        || super::store::is_garbage(&rec)
                    {
                        let _ = self
                            .remove_container(&Caller::engine(), &container.id, true)
                            .await;
                    }
                }
            }
        }
        for container in self.all_containers() {
            if super::restart::start_with_daemon(&container.snapshot()) {
                let _ = container.update(|r| r.state.status = Status::Restarting);
                self.spawn_start_after(container, Duration::ZERO);
            }
        }
        let running: std::collections::HashSet<String> = self
            .all_containers()
            .iter()
            .filter(|c| c.snapshot().state.status.is_running())
            .map(|c| c.id.clone())
            .collect();
        let known: std::collections::HashSet<String> =
            self.all_containers().iter().map(|c| c.id.clone()).collect();
        if let Ok(rd) = std::fs::read_dir(self.config.exec_root.join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&id) {
                    tracing::info!(id, "removing an orphaned bundle");
                    if let Err(e) = crate::fsutil::remove_tree(&e.path()) {
                        tracing::warn!(id, error = %crate::error::Chain(&e), "cannot remove an orphaned bundle");
                    }
                }
            }
        }
        self.kernel
            .remove_orphan_cgroups(&self.cgroups, &|id| running.contains(id));
    }

    /// A container found running when berthd starts: its shim is watched again.
    fn supervise_restored(&self, container: &Arc<Container>, processes: Processes) {
        match self.exits {
            ExitNotice::Watched => self.watch_shim(container.clone(), processes),
            ExitNotice::OnLook => {}
        }
    }

    /// Waits until a container's exit has been handled, up to `timeout`. The caller holds
    /// the container (see [`Engine::lock_op`]).
    pub(crate) async fn wait_for_exit(
        &self,
        container: &Arc<Container>,
        timeout: Duration,
    ) -> Result<(), ContainerError> {
        self.wait_for_exit_as(container, timeout, true).await
    }

    /// [`Engine::wait_for_exit`] for callers that do not hold the container.
    pub(crate) async fn wait_for_exit_unheld(
        &self,
        container: &Arc<Container>,
        timeout: Duration,
    ) -> Result<(), ContainerError> {
        self.wait_for_exit_as(container, timeout, false).await
    }

    async fn wait_for_exit_as(
        &self,
        container: &Arc<Container>,
        timeout: Duration,
        held: bool,
    ) -> Result<(), ContainerError> {
        let mut rx = container.lifecycle.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = *rx.borrow_and_update();
            if !now.status.is_running() || now.removed {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, self.news(container, &mut rx, held)).await {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                Err(_) => {
                    return Err(ContainerError::io(
                        format!("Container {} did not exit in time", container.id),
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ))
                }
            }
        }
    }

    /// Waits until there may be news of a container: a change this process made or saw
    /// (on `rx`) or, where nobody watches exits, its shim's exit or a short while (another
    /// process may have changed it), after which the container is looked at (`held`: the
    /// caller holds it). False if no more news can come.
    pub(crate) async fn news(
        &self,
        container: &Arc<Container>,
        rx: &mut tokio::sync::watch::Receiver<super::Lifecycle>,
        held: bool,
    ) -> bool {
        let look_every = match self.exits {
            ExitNotice::Watched => return rx.changed().await.is_ok(),
            ExitNotice::OnLook => LOOK_EVERY,
        };
        let rec = container.snapshot();
        let shim_exit = rec
            .state
            .processes
            .filter(|_| rec.state.status.is_running())
            .map(|p| self.kernel.shim_exited(&p));
        let shim_exit = async {
            match shim_exit {
                Some(exited) => {
                    let _ = exited.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            _ = shim_exit => {}
            _ = tokio::time::sleep(look_every) => {}
        }
        if held {
            Box::pin(self.refresh_locked(container)).await;
        } else {
            Box::pin(self.refresh(container)).await;
        }
        true
    }
}
