//! `rm` and `container prune`.

use std::sync::Arc;
use std::time::Duration;

use api_types::filters::Filters;
use api_types::ContainersPruneResponse;
use nix::sys::signal::Signal;

use super::{Container, ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::rootfs::Overlay;
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
        let half_removed = matches!(
            container.snapshot().state.status,
            Status::Removing | Status::Dead
        );
        let _op = match self.lock_op(&container).await {
            Ok(op) => op,
            // A removal left half-done, finished as the container was taken: done.
            Err(ContainerError::NotFound { .. }) if half_removed => return Ok(()),
            Err(e) => return Err(e.into()),
        };
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
                let _ = self.kernel.set_frozen(&self.cgroups, &container.id, false);
            }
            self.wait_for_exit(container, Duration::from_secs(30))
                .await?;
            if container.lifecycle.borrow().removed {
                return Ok(());
            }
        }
        // Mark it first, so a removal that stops half-way is finished by whoever next takes
        // the container (or by berthd's next start).
        container.update(|r| r.state.status = Status::Removing)?;
        let overlay = Overlay::in_dir(&container.dir, container.snapshot().layers);
        self.kernel.unmount(&overlay.merged)?;
        for m in self.kernel.mounts_under(&container.dir) {
            self.kernel.unmount(&m)?;
        }
        self.kernel.remove_cgroups(&self.cgroups, &container.id);
        // Nothing is mounted below any more (or the unmount above failed and we stopped):
        // and should anything be, the removal stops there rather than enter it.
        for dir in [&container.run_dir, &container.dir] {
            crate::fsutil::remove_tree(dir).map_err(|e| {
                ContainerError::io(format!("Failed to remove {}", dir.display()), e)
            })?;
        }
        self.containers.remove(container).await?;
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
