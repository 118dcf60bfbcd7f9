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
            while process::is_alive(processes.shim_pid, processes.shim_start_time) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            engine.handle_exit(&container, &processes).await;
        });
    }

    /// Records a container's exit once its shim is gone: reads the exit file, unmounts the
    /// root file system, publishes `die`, and auto-removes. Idempotent.
    pub(crate) async fn handle_exit(&self, container: &Arc<Container>, processes: &Processes) {
        let rec = container.snapshot();
        if !rec.state.status.is_running() || rec.state.processes.as_ref() != Some(processes) {
            return;
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
        if status.oom_killed {
            self.events
                .emit(&engine, "container", "oom", &container.id, attrs.clone());
        }
        attrs.insert("exitCode".into(), status.exit_code.to_string());
        self.events
            .emit(&engine, "container", "die", &container.id, attrs);
        container.lifecycle.send_modify(|l| l.exits += 1);
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

    /// Brings a container's record up to date when no watcher does (daemonless mode):
    /// a running container whose shim is gone has exited.
    pub(crate) async fn refresh(&self, container: &Arc<Container>) {
        let rec = container.snapshot();
        if let Some(p) = rec
            .state
            .processes
            .as_ref()
            .filter(|_| rec.state.status.is_running())
        {
            if !process::is_alive(p.shim_pid, p.shim_start_time) {
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
                Some(p) if process::is_alive(p.shim_pid, p.shim_start_time) => {
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
                    if matches!(rec.state.status, Status::Removing | Status::Dead) {
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

    /// Waits until a container's exit has been handled, up to `timeout`.
    pub(crate) async fn wait_for_exit(
        &self,
        container: &Arc<Container>,
        timeout: std::time::Duration,
    ) -> Result<(), ContainerError> {
        let mut rx = container.lifecycle.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !rx.borrow_and_update().status.is_running() {
                return Ok(());
            }
            // Without a watcher (daemonless), look at the shim ourselves.
            if !self.watching {
                self.refresh(container).await;
                if !container.snapshot().state.status.is_running() {
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
