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
        let container = self.find(name)?;
        let new_name = naming::validate(new_name)?;
        let old_name = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            let old = container.name();
            if old == new_name {
                return Err(ContainerError::InvalidConfig {
                    message: "Renaming a container with the same name as its current name".into(),
                }
                .into());
            }
            if let Some(other) = index.names.get(&new_name) {
                return Err(ContainerError::Rename {
                    source: Box::new(ContainerError::NameInUse {
                        name: new_name,
                        id: other.clone(),
                    }),
                }
                .into());
            }
            index.names.remove(&old);
            index.names.insert(new_name.clone(), container.id.clone());
            old
        };
        if let Err(e) = container.update(|r| r.name = new_name.clone()) {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.names.remove(&new_name);
            index.names.insert(old_name, container.id.clone());
            return Err(e.into());
        }
        let mut attrs = container.event_attributes();
        attrs.insert("oldName".into(), old_name);
        self.events
            .emit(caller, "container", "rename", &container.id, attrs);
        Ok(())
    }
}
