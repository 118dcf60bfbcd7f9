//! `rename`.

use super::{naming, ContainerError};
use crate::engine::{Engine, EngineError};
use crate::Caller;

impl Engine {
    /// Gives a container a new name (`POST /containers/{id}/rename?name=`).
    pub async fn rename_container(
        &self,
        caller: &Caller,
        name: &str,
        new_name: &str,
    ) -> Result<(), EngineError> {
        if new_name.is_empty() {
            return Err(ContainerError::EmptyName.into());
        }
        let container = self.find(name)?;
        let new_name = naming::validate(new_name)?;
        // The record changes (its lock), and so does the set of names (theirs).
        let _op = self.lock_op(&container).await?;
        let _names = self.containers.lock_names().await?;
        let old_name = self.containers.rename(&container, &new_name)?;
        let mut attrs = container.event_attributes();
        attrs.insert("oldName".into(), old_name);
        self.events
            .emit(caller, "container", "rename", &container.id, attrs);
        Ok(())
    }
}
