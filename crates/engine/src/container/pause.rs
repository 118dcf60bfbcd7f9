//! `pause` and `unpause`, with the cgroup freezer.

use super::{ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::Caller;

impl Engine {
    /// Freezes every process of a running container.
    pub async fn pause_container(&self, caller: &Caller, name: &str) -> Result<(), EngineError> {
        let container = self.find(name)?;
        let _op = self.lock_op(&container).await?;
        match container.snapshot().state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(ContainerError::AlreadyPaused {
                    id: container.id.clone(),
                }
                .into())
            }
            _ => {
                return Err(ContainerError::NotRunning {
                    id: container.id.clone(),
                }
                .into())
            }
        }
        self.kernel
            .set_frozen(&self.cgroups, &container.id, true)
            .map_err(|e| {
                ContainerError::io(format!("Cannot pause container {}", container.id), e)
            })?;
        container.update(|r| r.state.status = Status::Paused)?;
        self.events.emit(
            caller,
            "container",
            "pause",
            &container.id,
            container.event_attributes(),
        );
        Ok(())
    }

    /// Thaws a paused container.
    pub async fn unpause_container(&self, caller: &Caller, name: &str) -> Result<(), EngineError> {
        let container = self.find(name)?;
        let _op = self.lock_op(&container).await?;
        if container.snapshot().state.status != Status::Paused {
            return Err(ContainerError::NotPaused {
                id: container.id.clone(),
            }
            .into());
        }
        self.kernel
            .set_frozen(&self.cgroups, &container.id, false)
            .map_err(|e| {
                ContainerError::io(format!("Cannot unpause container {}", container.id), e)
            })?;
        container.update(|r| r.state.status = Status::Running)?;
        self.events.emit(
            caller,
            "container",
            "unpause",
            &container.id,
            container.event_attributes(),
        );
        Ok(())
    }
}
