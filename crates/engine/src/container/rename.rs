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
        let _names = self.lock_names().await?;
        let old_name = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            let old = container.name();
            if old == new_name {
                return Err(ContainerError::InvalidConfig {
                    message: "Renaming a container with the same name as its current name".into(),
                }
                .into());
            }
            let holder = if self.shared() {
                self.name_holder_on_disk(&new_name)
            } else {
                index.names.get(&new_name).cloned()
            };
            if let Some(other) = holder {
                return Err(ContainerError::Rename {
                    source: Box::new(ContainerError::NameInUse {
                        name: new_name,
                        id: other,
                    }),
                }
                .into());
            }
            index.names.remove(&old);
            index.names.insert(new_name.clone(), container.id.clone());
            old
        };
        if let Err(e) = self
            .link_name(&new_name, &container.id)
            .and_then(|()| container.update(|r| r.name = new_name.clone()))
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.names.remove(&new_name);
            index.names.insert(old_name, container.id.clone());
            self.unlink_name(&new_name, &container.id);
            return Err(e.into());
        }
        self.unlink_name(&old_name, &container.id);
        let mut attrs = container.event_attributes();
        attrs.insert("oldName".into(), old_name);
        self.events
            .emit(caller, "container", "rename", &container.id, attrs);
        Ok(())
    }
}
