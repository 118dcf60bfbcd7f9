//! Noticing exits: watching shims (berthd), looking when asked (daemonless), and
//! reconciling disk with the kernel at start-up.

use std::sync::Arc;

use shim::ExitStatus;

use super::{Container, ContainerError, ContainerRecord, Processes, Status, RECORD_FILE};
use crate::engine::{Engine, EngineError};
use crate::rootfs::{self, Overlay};
use crate::{process, Caller};

impl Engine {
    /// Watches a container's shim and handles the container's exit when the shim exits.
    pub(crate) fn watch_shim(&self, container: Arc<Container>, processes: Processes) {
        let Some(engine) = self.self_arc() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = process::pidfd_exited(processes.shim_pid).await {
                tracing::debug!(id = %container.id, error = %e, "cannot watch the shim with a pidfd");
            }
            // Without a pidfd (or if it failed), fall back to polling.
            while processes.shim_alive() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            engine.handle_exit(&container, &processes).await;
        });
    }

    /// Records a container's exit once its shim is gone: reads the exit file, unmounts the
    /// root file system, publishes `die`, and (berthd) restarts by policy or auto-removes.
    /// Idempotent. In daemonless mode the caller holds the container's lock, and an
    /// auto-remove container is removed when it is next looked at (see [`Engine::refresh`]).
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
        if let Err(e) = Overlay::in_dir(&container.dir, rec.layers.clone()).unmount() {
            tracing::warn!(id = %container.id, error = %e, "cannot unmount the root file system");
        }
        let _ = std::fs::remove_dir_all(&container.run_dir);
        let result = container.update(|r| {
            r.state.status = Status::Exited;
            r.state.processes = None;
            r.state.exit_code = status.exit_code as i64;
            r.state.oom_killed = status.oom_killed;
            r.state.finished_at = status.finished_at.clone();
        });
        if let Err(e) = result {
            tracing::error!(id = %container.id, error = %e, "cannot record the exit");
        }
        let engine = Caller::engine();
        let mut attrs = container.event_attributes();
        // Daemonless commands notice an exit late: date the events when it happened (not
        // before the start, though, should the clocks disagree).
        let when = if self.watching {
            crate::events::now_nanos()
        } else {
            let nanos = |t: &str| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .ok()
                    .and_then(|t| t.timestamp_nanos_opt())
            };
            nanos(&status.finished_at)
                .map(|exit| exit.max(nanos(&rec.state.started_at).unwrap_or(0)))
                .unwrap_or_else(crate::events::now_nanos)
        };
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
        if !self.watching {
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
            if let Err(e) = self.remove_container(&engine, &container.id, true).await {
                tracing::warn!(id = %container.id, error = %e, "auto-remove failed");
            }
        }
    }

    /// Brings a container up to date when no watcher does (daemonless mode): re-reads its
    /// record if another process changed it; a running container whose shim is gone has
    /// exited, which is recorded under the container's lock; an exited auto-remove container
    /// is removed. For callers that do not hold the container (see [`Engine::lock_op`]).
    pub(crate) async fn refresh(&self, container: &Arc<Container>) {
        if !self.shared() {
            return self.refresh_locked(container).await;
        }
        if !matches!(self.sync_container(container), Ok(true)) {
            return;
        }
        let rec = container.snapshot();
        let exited = rec
            .state
            .processes
            .as_ref()
            .filter(|_| rec.state.status.is_running())
            .is_some_and(|p| !p.shim_alive());
        let half_removed = matches!(rec.state.status, Status::Removing | Status::Dead);
        if !exited && !half_removed && !super::disk::is_garbage(&rec) {
            return;
        }
        // Taking the lock records the exit, or finishes a removal whose process died. If
        // anyone holds the container, leave it to them (it may be our caller).
        let Some(Ok(_op)) = Box::pin(self.try_lock_op(container)).await else {
            return;
        };
        if super::disk::is_garbage(&container.snapshot()) {
            if let Err(e) = Box::pin(self.remove_locked(&Caller::engine(), container, true)).await {
                tracing::warn!(id = %container.id, error = %e, "auto-remove failed");
            }
        }
    }

    /// [`Engine::refresh`] for callers that hold the container's lock.
    pub(crate) async fn refresh_locked(&self, container: &Arc<Container>) {
        let rec = container.snapshot();
        if let Some(p) = rec
            .state
            .processes
            .as_ref()
            .filter(|_| rec.state.status.is_running())
        {
            if !p.shim_alive() {
                let p = p.clone();
                Box::pin(self.handle_exit(container, &p)).await;
            }
        }
    }

    /// Loads every container record under the data root into the index.
    pub(crate) fn load_containers(&self) -> Result<(), EngineError> {
        let dir = self.config.data_root.join("containers");
        let entries = std::fs::read_dir(&dir).map_err(|source| EngineError::Open {
            path: dir.clone(),
            source,
        })?;
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries.flatten() {
            let path = entry.path().join(RECORD_FILE);
            match crate::fsutil::read_json::<ContainerRecord>(&path) {
                Ok(record) => {
                    index.names.insert(record.name.clone(), record.id.clone());
                    let c = Arc::new(Container::new(
                        record,
                        &self.config.data_root,
                        &self.config.exec_root,
                    ));
                    index.by_id.insert(c.id.clone(), c);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // A directory without a record: a create that never finished.
                    tracing::warn!(dir = %entry.path().display(), "removing a container directory without state");
                    for m in rootfs::mounts_under(&entry.path()) {
                        let _ = rootfs::unmount(&m);
                    }
                    let _ = std::fs::remove_dir_all(entry.path());
                }
                Err(e) => {
                    // Keep the directory for inspection; never delete what might be data.
                    tracing::error!(path = %path.display(), error = %e, "skipping a container whose state cannot be read");
                }
            }
        }
        drop(index);
        // Daemonless commands find containers by these links.
        self.repair_names();
        Ok(())
    }

    /// Matches the records with the kernel: re-watches live shims, records exits that
    /// happened while nobody watched, and removes what nothing owns (mounts, bundles,
    /// cgroups of containers that are gone).
    pub(crate) async fn reconcile(&self) {
        for container in self.all_containers() {
            let rec = container.snapshot();
            match rec
                .state
                .processes
                .clone()
                .filter(|_| rec.state.status.is_running())
            {
                Some(p) if p.shim_alive() => {
                    if self.watching {
                        self.watch_shim(container.clone(), p);
                    }
                }
                Some(p) => self.handle_exit(&container, &p).await,
                None => {
                    let overlay = Overlay::in_dir(&container.dir, rec.layers.clone());
                    if let Err(e) = overlay.unmount() {
                        tracing::warn!(id = %container.id, error = %e, "cannot unmount a stopped container's root");
                    }
                    // Half-removed, or (left by daemonless commands) exited and waiting to be
                    // auto-removed.
                    if matches!(rec.state.status, Status::Removing | Status::Dead)
                        || super::disk::is_garbage(&rec)
                    {
                        let _ = self
                            .remove_container(&Caller::engine(), &container.id, true)
                            .await;
                    }
                }
            }
        }
        if !self.watching {
            return;
        }
        for container in self.all_containers() {
            if super::restart::start_with_daemon(&container.snapshot()) {
                let _ = container.update(|r| r.state.status = Status::Restarting);
                self.spawn_start_after(container, std::time::Duration::ZERO);
            }
        }
        let known = |id: &str| {
            self.index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .by_id
                .contains_key(id)
        };
        if let Ok(rd) = std::fs::read_dir(self.config.exec_root.join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !known(&id) {
                    tracing::info!(id, "removing an orphaned bundle");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        self.cgroups.remove_orphans(&|id| {
            self.index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .by_id
                .get(id)
                .is_some_and(|c| c.snapshot().state.status.is_running())
        });
    }

    /// Waits until a container's exit has been handled, up to `timeout`. The caller holds
    /// the container (see [`Engine::lock_op`]).
    pub(crate) async fn wait_for_exit(
        &self,
        container: &Arc<Container>,
        timeout: std::time::Duration,
    ) -> Result<(), ContainerError> {
        self.wait_for_exit_as(container, timeout, true).await
    }

    /// [`Engine::wait_for_exit`] for callers that do not hold the container.
    pub(crate) async fn wait_for_exit_unheld(
        &self,
        container: &Arc<Container>,
        timeout: std::time::Duration,
    ) -> Result<(), ContainerError> {
        self.wait_for_exit_as(container, timeout, false).await
    }

    async fn wait_for_exit_as(
        &self,
        container: &Arc<Container>,
        timeout: std::time::Duration,
        held: bool,
    ) -> Result<(), ContainerError> {
        let mut rx = container.lifecycle.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !rx.borrow_and_update().status.is_running() {
                return Ok(());
            }
            // Without a watcher (daemonless), look at the shim ourselves.
            if !self.watching {
                if held {
                    Box::pin(self.refresh_locked(container)).await;
                } else {
                    Box::pin(self.refresh(container)).await;
                }
                if !container.snapshot().state.status.is_running()
                    || container.lifecycle.borrow().removed
                {
                    return Ok(());
                }
            }
            let step = if self.watching {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                std::time::Duration::from_millis(10)
            };
            match tokio::time::timeout(step, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Ok(()),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(ContainerError::io(
                        format!("Container {} did not exit in time", container.id),
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ))
                }
                Err(_) => continue,
            }
        }
    }
}
