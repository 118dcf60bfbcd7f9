//! `state`: print a container's state in runc's JSON shape.

use std::path::{Path, PathBuf};

use anyhow::Context;
use libcontainer::container::ContainerStatus;
use serde::Serialize;

/// runc's `state` output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuncState {
    pub oci_version: String,
    pub id: String,
    /// 0 once the container has stopped, as runc prints it.
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
}

/// Prints container `id`'s state as indented JSON on stdout.
pub fn state(root: &Path, id: &str) -> anyhow::Result<()> {
    let container = crate::load_container(root, id)?;
    let state = runc_state(&container);
    let json = serde_json::to_string_pretty(&state).context("Cannot encode the state")?;
    println!("{json}");
    Ok(())
}

fn runc_state(container: &libcontainer::container::Container) -> RuncState {
    let status = status_word(container.status());
    let pid = match container.status() {
        ContainerStatus::Stopped => 0,
        _ => container.pid().map(|p| p.as_raw()).unwrap_or(0),
    };
    let bundle = container.bundle().clone();
    RuncState {
        oci_version: container.state.oci_version.clone(),
        id: container.id().to_owned(),
        pid,
        status,
        rootfs: rootfs_of(&bundle).unwrap_or_default(),
        bundle,
        created: container
            .created()
            .map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default(),
        owner: String::new(),
        annotations: container
            .state
            .annotations
            .clone()
            .filter(|a| !a.is_empty()),
    }
}

fn status_word(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

fn rootfs_of(bundle: &Path) -> Option<PathBuf> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).ok()?;
    let root = spec.root().as_ref()?;
    Some(bundle.join(root.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_in_runcs_lower_case() {
        assert_eq!(status_word(ContainerStatus::Running), "running");
        assert_eq!(status_word(ContainerStatus::Stopped), "stopped");
        assert_eq!(status_word(ContainerStatus::Created), "created");
    }
}
