//! `rm` and `container prune`.

use std::sync::Arc;
use std::time::Duration;

use api_types::filters::Filters;
use api_types::ContainersPruneResponse;
use nix::sys::signal::Signal;

use super::{Container, ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::rootfs::{self, Overlay};
use crate::Caller;

impl Engine {
    /// Removes a container (`DELETE /containers/{id}`); a running one only with `force`,
    /// which kills it first.
    pub async fn remove_container(
        &self,
        caller: &Caller,
        name: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        let container = self.find(name)?;
        let _op = self.lock_op(&container).await?;
        Ok(self.remove_locked(caller, &container, force).await?)
    }

    /// Removes a container the caller holds (see [`Engine::lock_op`]).
    pub(crate) async fn remove_locked(
        &self,
        caller: &Caller,
        container: &Arc<Container>,
        force: bool,
    ) -> Result<(), ContainerError> {
        let status = container.snapshot().state.status;
        if status.is_running() {
            if !force {
                return Err(ContainerError::RemoveRunning {
                    id: container.id.clone(),
                    status,
                });
            }
            self.signal(container, Signal::SIGKILL)?;
            if status == Status::Paused {
                let _ = self.cgroups.set_frozen(&container.id, false);
            }
            self.wait_for_exit(container, Duration::from_secs(30))
                .await?;
            if container.lifecycle.borrow().removed {
                return Ok(());
            }
        }
        // Mark it first, so a crash half-way is finished on the next start-up.
        container.update(|r| r.state.status = Status::Removing)?;
        let overlay = Overlay::in_dir(&container.dir, container.snapshot().layers);
        overlay.unmount()?;
        for m in rootfs::mounts_under(&container.dir) {
            rootfs::unmount(&m)?;
        }
        self.cgroups.remove(&container.id);
        for dir in [&container.run_dir, &container.dir] {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ContainerError::io(
                        format!("Failed to remove {}", dir.display()),
                        e,
                    ))
                }
            }
        }
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.by_id.remove(&container.id);
            index.names.retain(|_, id| *id != container.id);
        }
        {
            let _names = self.lock_names().await?;
            self.unlink_name(&container.name(), &container.id);
        }
        self.events.emit(
            caller,
            "container",
            "destroy",
            &container.id,
            container.event_attributes(),
        );
        container.lifecycle.send_modify(|l| l.removed = true);
        // Attach sessions waiting for a start that will not come end; execs go.
        container.streams.close_waiting();
        self.execs.forget(&container.id);
        Ok(())
    }

    /// Removes every stopped container matching `filters` (`label`, `until`).
    pub async fn prune_containers(
        &self,
        caller: &Caller,
        filters: &Filters,
    ) -> Result<ContainersPruneResponse, EngineError> {
        let mut deleted = Vec::new();
        let until = filters.get("until").first().and_then(|u| parse_until(u));
        for container in self.all_containers() {
            self.refresh(&container).await;
            let rec = container.snapshot();
            if rec.state.status.is_running() || !super::query::labels_match(&rec, filters) {
                continue;
            }
            if let Some(until) = until {
                let created = chrono::DateTime::parse_from_rfc3339(&rec.created)
                    .map(|t| t.timestamp())
                    .unwrap_or(0);
                if created >= until {
                    continue;
                }
            }
            if self.remove_container(caller, &rec.id, false).await.is_ok() {
                deleted.push(rec.id);
            }
        }
        self.events
            .emit(caller, "container", "prune", "", Default::default());
        Ok(ContainersPruneResponse {
            containers_deleted: if deleted.is_empty() {
                None
            } else {
                Some(deleted)
            },
            space_reclaimed: 0,
        })
    }
}

fn parse_until(text: &str) -> Option<i64> {
    text.split('.').next()?.parse().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn until_takes_unix_seconds_or_rfc3339() {
        assert_eq!(super::parse_until("1795790184.5"), Some(1795790184));
        assert_eq!(super::parse_until("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(super::parse_until("soon"), None);
    }
}
