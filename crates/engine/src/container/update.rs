//! `update`: change the resources and restart policy of a container, live.

use api_types::{ContainerUpdateRequest, ContainerUpdateResponse, HostConfig};

use super::ContainerError;
use crate::cgroups::{Cgroups, Version};
use crate::engine::{Engine, EngineError};
use crate::Caller;

impl Engine {
    /// Updates a container (`POST /containers/{id}/update`). A running container's cgroup is
    /// changed at once; the record keeps the new values for later starts.
    pub async fn update_container(
        &self,
        caller: &Caller,
        name: &str,
        req: ContainerUpdateRequest,
    ) -> Result<ContainerUpdateResponse, EngineError> {
        let container = self.find(name)?;
        let _op = self.lock_op(&container).await?;
        let rec = container.snapshot();
        let mut hc = rec.host_config.clone();
        let set = |field: &mut i64, v: Option<i64>| {
            if let Some(v) = v.filter(|v| *v != 0) {
                *field = v;
            }
        };
        set(&mut hc.memory, req.memory);
        set(&mut hc.memory_swap, req.memory_swap);
        set(&mut hc.memory_reservation, req.memory_reservation);
        set(&mut hc.nano_cpus, req.nano_cpus);
        set(&mut hc.cpu_shares, req.cpu_shares);
        set(&mut hc.cpu_period, req.cpu_period);
        set(&mut hc.cpu_quota, req.cpu_quota);
        if let Some(c) = req.cpuset_cpus.filter(|c| !c.is_empty()) {
            hc.cpuset_cpus = c;
        }
        if let Some(m) = req.cpuset_mems.filter(|m| !m.is_empty()) {
            hc.cpuset_mems = m;
        }
        if let Some(p) = req.pids_limit.filter(|p| *p != 0) {
            hc.pids_limit = Some(p);
        }
        if let Some(policy) = req.restart_policy.filter(|p| !p.name.is_empty()) {
            if hc.auto_remove && policy.name != "no" {
                return Err(ContainerError::InvalidConfig {
                    message: "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                }
                .into());
            }
            hc.restart_policy = policy;
        }
        // The same checks as create, on the merged settings.
        let hc = self.check_host_config(hc, &mut Vec::new())?;
        if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
            return Err(ContainerError::InvalidConfig {
                message: "Minimum memoryswap limit should be larger than memory limit, see usage"
                    .into(),
            }
            .into());
        }
        if rec.state.status.is_running() {
            apply(&self.cgroups, &container.id, &hc).map_err(|e| {
                ContainerError::io(format!("Cannot update container {}", container.id), e)
            })?;
        }
        container.update(|r| r.host_config = hc)?;
        self.events.emit(
            caller,
            "container",
            "update",
            &container.id,
            container.event_attributes(),
        );
        Ok(ContainerUpdateResponse {
            warnings: Vec::new(),
        })
    }
}

/// Writes a container's resource settings into its live cgroup.
fn apply(cg: &Cgroups, id: &str, hc: &HostConfig) -> std::io::Result<()> {
    let write = |ctrl: &str, file: &str, value: String| -> std::io::Result<()> {
        let path = cg.dir(ctrl, id).join(file);
        std::fs::write(&path, &value)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    match cg.version {
        Version::V1 => {
            if hc.memory > 0 {
                let swap = if hc.memory_swap == 0 {
                    hc.memory * 2
                } else {
                    hc.memory_swap
                };
                // The kernel refuses a memory limit above memsw: order the writes.
                let memsw = cg.dir("memory", id).join("memory.memsw.limit_in_bytes");
                let current =
                    std::fs::read_to_string(cg.dir("memory", id).join("memory.limit_in_bytes"))
                        .ok()
                        .and_then(|s| s.trim().parse::<i64>().ok())
                        .unwrap_or(0);
                if memsw.exists() && hc.memory > current {
                    write("memory", "memory.memsw.limit_in_bytes", swap.to_string())?;
                    write("memory", "memory.limit_in_bytes", hc.memory.to_string())?;
                } else {
                    write("memory", "memory.limit_in_bytes", hc.memory.to_string())?;
                    if memsw.exists() {
                        write("memory", "memory.memsw.limit_in_bytes", swap.to_string())?;
                    }
                }
            }
            if hc.cpu_shares > 0 {
                write("cpu", "cpu.shares", hc.cpu_shares.to_string())?;
            }
            if hc.nano_cpus > 0 {
                write("cpu", "cpu.cfs_period_us", "100000".into())?;
                write(
                    "cpu",
                    "cpu.cfs_quota_us",
                    (hc.nano_cpus / 10_000).to_string(),
                )?;
            } else {
                if hc.cpu_period > 0 {
                    write("cpu", "cpu.cfs_period_us", hc.cpu_period.to_string())?;
                }
                if hc.cpu_quota > 0 {
                    write("cpu", "cpu.cfs_quota_us", hc.cpu_quota.to_string())?;
                }
            }
            if !hc.cpuset_cpus.is_empty() {
                write("cpuset", "cpuset.cpus", hc.cpuset_cpus.clone())?;
            }
            if let Some(p) = hc.pids_limit {
                write(
                    "pids",
                    "pids.max",
                    if p > 0 { p.to_string() } else { "max".into() },
                )?;
            }
        }
        Version::V2 => {
            if hc.memory > 0 {
                write("", "memory.max", hc.memory.to_string())?;
            }
            if hc.cpu_shares > 0 {
                // cgroup v2 weight from v1 shares, as runc converts them.
                let weight = 1 + ((hc.cpu_shares - 2) * 9999) / 262142;
                write("", "cpu.weight", weight.to_string())?;
            }
            if hc.nano_cpus > 0 {
                write("", "cpu.max", format!("{} 100000", hc.nano_cpus / 10_000))?;
            } else if hc.cpu_quota > 0 {
                let period = if hc.cpu_period > 0 {
                    hc.cpu_period
                } else {
                    100_000
                };
                write("", "cpu.max", format!("{} {period}", hc.cpu_quota))?;
            }
            if !hc.cpuset_cpus.is_empty() {
                write("", "cpuset.cpus", hc.cpuset_cpus.clone())?;
            }
            if let Some(p) = hc.pids_limit {
                write(
                    "",
                    "pids.max",
                    if p > 0 { p.to_string() } else { "max".into() },
                )?;
            }
        }
    }
    Ok(())
}
