//! `start`: mount the root file system, write the bundle and hand the container to a shim.

use std::path::Path;
use std::sync::Arc;

use shim::{Ready, ShimConfig};

use super::create::{parse_size, DEFAULT_PATH};
use super::{now_rfc3339, Container, ContainerError, Processes, Status};
use crate::engine::{Engine, EngineError};
use crate::rootfs::{self, Overlay};
use crate::Caller;

impl Engine {
    /// Starts a container (`POST /containers/{id}/start`). A running container is
    /// `NotModified` (304), as with Docker.
    pub async fn start_container(&self, caller: &Caller, name: &str) -> Result<(), EngineError> {
        let container = self.find(name)?;
        let _op = self.lock_op(&container).await?;
        match container.snapshot().state.status {
            Status::Running => {
                return Err(ContainerError::NotModified {
                    id: container.id.clone(),
                    status: Status::Running,
                }
                .into())
            }
            Status::Paused => return Err(ContainerError::StartPaused.into()),
            Status::Removing | Status::Dead => {
                return Err(ContainerError::RemovalInProgress {
                    id: container.id.clone(),
                }
                .into())
            }
            _ => {}
        }
        match self.launch(&container).await {
            Ok(processes) => {
                container.update(|r| {
                    r.state.status = Status::Running;
                    r.manually_stopped = false;
                    r.state.processes = Some(processes.clone());
                    r.state.exit_code = 0;
                    r.state.oom_killed = false;
                    r.state.error.clear();
                    r.state.started_at = now_rfc3339();
                })?;
                self.events.emit(
                    caller,
                    "container",
                    "start",
                    &container.id,
                    container.event_attributes(),
                );
                self.supervise(&container, processes);
                Ok(())
            }
            Err(e) => {
                let overlay = Overlay::in_dir(&container.dir, container.snapshot().layers);
                let _ = self.kernel.unmount(&overlay.merged);
                // Sessions attached for this start end with it, as the client's do.
                container.streams.close_waiting();
                if let ContainerError::StartFailed { message, .. } = &e {
                    let code = start_failure_exit_code(message);
                    container.update(|r| {
                        r.state.error = message.clone();
                        r.state.exit_code = code;
                    })?;
                    if container.snapshot().host_config.auto_remove {
                        drop(_op);
                        let _ = self
                            .remove_container(&Caller::engine(), &container.id, true)
                            .await;
                    }
                }
                Err(e.into())
            }
        }
    }

    /// Prepares the bundle and starts the shim; returns the container's processes.
    async fn launch(&self, container: &Arc<Container>) -> Result<Processes, ContainerError> {
        let rec = container.snapshot();
        let overlay = Overlay::in_dir(&container.dir, rec.layers.clone());
        self.kernel.mount_overlay(&overlay)?;
        let root = overlay.merged.clone();

        let passwd = rootfs::read_in_root(&root, Path::new("/etc/passwd"))
            .ok()
            .flatten();
        let group = rootfs::read_in_root(&root, Path::new("/etc/group"))
            .ok()
            .flatten();
        let user = rootfs::resolve_user(&rec.config.user, passwd.as_deref(), group.as_deref())
            .map_err(|e| ContainerError::StartFailed {
                message: e.to_string(),
                invalid: true,
            })?;
        let cwd = if rec.config.working_dir.is_empty() {
            "/".to_string()
        } else {
            rec.config.working_dir.clone()
        };
        rootfs::mkdir_all_in_root(&root, Path::new(&cwd), 0, 0).map_err(|e| {
            ContainerError::io(format!("Failed to create the working directory {cwd}"), e)
        })?;

        let mut env = rec.config.env.clone().unwrap_or_default();
        let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
        if !has(&env, "PATH") {
            env.insert(0, DEFAULT_PATH.into());
        }
        if !has(&env, "HOSTNAME") {
            env.insert(
                1.min(env.len()),
                format!("HOSTNAME={}", rec.config.hostname),
            );
        }
        if !has(&env, "HOME") {
            env.push(format!("HOME={}", user.home));
        }
        if rec.config.tty && !has(&env, "TERM") {
            env.push("TERM=xterm".into());
        }

        let files = write_etc_files(&container.dir, &rec.config.hostname)?;
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.iter().cloned());
        let spec = crate::spec::build(&crate::spec::SpecInput {
            hostname: &rec.config.hostname,
            args,
            env,
            cwd: &cwd,
            user: &user,
            tty: rec.config.tty,
            rootfs: root.clone(),
            hostname_file: files.0,
            hosts_file: files.1,
            resolv_conf_file: files.2,
            cgroups_path: self.cgroups.spec_path(&container.id),
            host_config: &rec.host_config,
            init: if rec.host_config.init == Some(true) {
                Some(self.config.init_binary.clone().ok_or_else(|| {
                    ContainerError::StartFailed {
                        message:
                            "--init needs docker-init or tini-static (Debian package tini) on PATH"
                                .into(),
                        invalid: true,
                    }
                })?)
            } else {
                None
            },
            binds: super::mounts::bind_mounts(&rec.host_config, true)?,
        })
        .map_err(|e| ContainerError::StartFailed {
            message: crate::error::chain(&e),
            invalid: true,
        })?;
        let run_dir = &container.run_dir;
        std::fs::create_dir_all(run_dir).map_err(|e| {
            ContainerError::io(format!("Failed to create {}", run_dir.display()), e)
        })?;
        spec.save(run_dir.join("config.json")).map_err(|e| {
            ContainerError::io(
                "Failed to write the runtime spec",
                std::io::Error::other(e.to_string()),
            )
        })?;

        let runtime = self
            .config
            .runtime_binary(&rec.host_config.runtime)
            .ok_or_else(|| ContainerError::InvalidConfig {
                message: format!("Unknown runtime specified {}", rec.host_config.runtime),
            })?;
        let log_opts = &rec.host_config.log_config.config;
        let shim_config = ShimConfig {
            id: container.id.clone(),
            bundle: run_dir.clone(),
            runtime,
            runtime_root: self.config.exec_root.join("runtime"),
            log_path: container.log_path(),
            log_max_size: log_opts.get("max-size").and_then(|s| parse_size(s)),
            log_max_files: log_opts
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
            exit_file: container.exit_file(),
            shim_log: run_dir.join("shim.log"),
            tty: rec.config.tty,
            stdin: rec.config.open_stdin,
            console_size: rec
                .host_config
                .console_size
                .filter(|&[h, w]| h > 0 && w > 0)
                .map(|[h, w]| [h.min(65535) as u16, w.min(65535) as u16]),
        };
        let _ = std::fs::remove_file(container.exit_file());
        let config_path = run_dir.join("shim.json");
        crate::fsutil::write_json_atomic(&config_path, &shim_config)
            .map_err(|e| ContainerError::io("Failed to write the shim config", e))?;
        // The shim's first control channel: attach sessions waiting for this start are
        // on it before the container can write a byte.
        let control = super::link::prepare_start(container)
            .map_err(|e| ContainerError::io("Failed to create the shim's control channel", e))?;
        let shim_binary = self.config.shim_binary.clone();
        let kernel = self.kernel.clone();
        let ready = tokio::task::spawn_blocking(move || {
            kernel.spawn_shim(&shim_binary, &config_path, Some(control))
        })
        .await
        .map_err(|e| ContainerError::io("The shim start-up task failed", std::io::Error::other(e)))?
        .map_err(|e| ContainerError::io("Failed to start berth-shim", e))?;
        match ready {
            Ready::Started {
                shim_pid,
                container_pid,
            } => Ok(self.kernel.processes(shim_pid, container_pid)),
            Ready::Failed { message } => {
                let invalid = start_failure_exit_code(&message) != 128;
                Err(ContainerError::StartFailed {
                    message: format!("failed to create task for container: OCI runtime create failed: {message}: unknown"),
                    invalid,
                })
            }
        }
    }
}

/// The exit code Docker records when a container cannot start: 127 for a missing command,
/// 126 for one that cannot be run, 128 otherwise.
fn start_failure_exit_code(message: &str) -> i64 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}

/// Writes the container's `hostname`, `hosts` and `resolv.conf` into its directory.
fn write_etc_files(
    dir: &Path,
    hostname: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf), ContainerError> {
    let hostname_file = dir.join("hostname");
    let hosts_file = dir.join("hosts");
    let resolv_file = dir.join("resolv.conf");
    let hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
                 ff02::2\tip6-allrouters\n";
    let resolv = resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    for (path, content) in [
        (&hostname_file, format!("{hostname}\n")),
        (&hosts_file, hosts.to_string()),
        (&resolv_file, resolv),
    ] {
        crate::fsutil::write_atomic(path, content.as_bytes())
            .map_err(|e| ContainerError::io(format!("Failed to write {}", path.display()), e))?;
    }
    Ok((hostname_file, hosts_file, resolv_file))
}

/// The host's resolv.conf without loopback name servers (unreachable from a container's own
/// network namespace), as Docker filters it.
fn resolv_conf(host: &str) -> String {
    host.lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            !(words.next() == Some("nameserver")
                && words
                    .next()
                    .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_name_servers_are_dropped() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver ::1\n";
        assert_eq!(resolv_conf(host), "search lan\nnameserver 10.0.0.1\n");
    }

    #[test]
    fn start_failures_get_docker_exit_codes() {
        assert_eq!(
            start_failure_exit_code("exec: \"x\": executable file not found in $PATH"),
            127
        );
        assert_eq!(
            start_failure_exit_code("exec: \"/x\": permission denied"),
            126
        );
        assert_eq!(start_failure_exit_code("cgroup trouble"), 128);
    }
}
