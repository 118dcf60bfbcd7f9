//! `create`: a new container record from a create request and its image.

use api_types::{ContainerConfig, ContainerCreateRequest, ContainerCreateResponse, HostConfig};

use super::{naming, now_rfc3339, ContainerError, ContainerRecord, RunState};
use crate::engine::{Engine, EngineError};
use crate::image::Image;
use crate::Caller;

/// The environment Docker gives a process whose image sets no `PATH`.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Engine {
    /// Creates a container (`POST /containers/create`).
    pub async fn create_container(
        &self,
        caller: &Caller,
        name: Option<&str>,
        request: ContainerCreateRequest,
    ) -> Result<ContainerCreateResponse, EngineError> {
        let ContainerCreateRequest {
            config: requested,
            host_config,
            ..
        } = request;
        if requested.image.trim().is_empty() {
            return Err(invalid("No image specified").into());
        }
        let wanted_name = name
            .filter(|n| !n.is_empty())
            .map(naming::validate)
            .transpose()?;
        let mut warnings = Vec::new();
        let host_config = self.check_host_config(host_config, &mut warnings)?;
        // Where processes share the root, no other one creates, renames or removes until
        // the record is written, so a free name stays free.
        let _names = self.containers.lock_names().await?;
        // No layer of the image goes away while the container is made of it.
        let _pin = self.images.pin()?;
        let image = self.images.resolve(&requested.image)?;
        let mut config = merge_config(requested, &image);
        let (path, args) = command(&config)?;

        let id = super::new_id();
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        let generated = (0..64)
            .map(|attempt| naming::generate(id.as_bytes(), attempt))
            .chain(std::iter::once(format!("/{}", &id[..12])));
        let container = self
            .containers
            .add(wanted_name, generated, |name| ContainerRecord {
                id: id.clone(),
                name,
                created: now_rfc3339(),
                image_id: image.id.clone(),
                image_name: config.image.clone(),
                config,
                host_config,
                path,
                args,
                layers: image.layer_dirs.clone(),
                state: RunState::default(),
                restart_count: 0,
                created_by_uid: caller.uid,
                manually_stopped: false,
            })?;
        drop(_pin);
        drop(_names);
        self.events.emit(
            caller,
            "container",
            "create",
            &id,
            container.event_attributes(),
        );
        Ok(ContainerCreateResponse { id, warnings })
    }

    /// Checks the host settings as dockerd does, filling in defaults.
    pub(crate) fn check_host_config(
        &self,
        mut hc: HostConfig,
        warnings: &mut Vec<String>,
    ) -> Result<HostConfig, ContainerError> {
        if hc.network_mode.is_empty() {
            hc.network_mode = "default".into();
        }
        if !matches!(hc.network_mode.as_str(), "default" | "none" | "bridge") {
            return Err(invalid(format!(
                "network {} not found (berth supports only private loopback networking: none, default, bridge)",
                hc.network_mode
            )));
        }
        if hc.log_config.kind.is_empty() {
            hc.log_config.kind = "json-file".into();
        }
        if hc.log_config.kind != "json-file" {
            return Err(invalid(format!(
                "logging driver {:?} is not supported: berth writes json-file logs",
                hc.log_config.kind
            )));
        }
        for (k, v) in &hc.log_config.config {
            match k.as_str() {
                "max-size" => {
                    parse_size(v)
                        .ok_or_else(|| invalid(format!("invalid value for max-size: {v}")))?;
                }
                "max-file" => {
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid(format!("invalid value for max-file: {v}")))?;
                }
                _ => {
                    return Err(invalid(format!(
                        "unknown log opt '{k}' for json-file log driver"
                    )))
                }
            }
        }
        if hc.runtime.is_empty() {
            hc.runtime = self.config.default_runtime.clone();
        }
        if self.config.runtime_binary(&hc.runtime).is_none() {
            return Err(invalid(format!("Unknown runtime specified {}", hc.runtime)));
        }
        if hc.restart_policy.name.is_empty() {
            hc.restart_policy.name = "no".into();
        }
        match hc.restart_policy.name.as_str() {
            "no" | "always" | "unless-stopped" | "on-failure" => {}
            other => return Err(invalid(format!("invalid restart policy '{other}'"))),
        }
        if hc.restart_policy.maximum_retry_count < 0 {
            return Err(invalid("maximum retry count cannot be negative"));
        }
        if hc.restart_policy.name != "on-failure" && hc.restart_policy.maximum_retry_count > 0 {
            return Err(invalid(format!(
                "maximum retry count cannot be used with restart policy '{}'",
                hc.restart_policy.name
            )));
        }
        if hc.auto_remove && hc.restart_policy.name != "no" {
            return Err(invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        if hc.memory != 0 && hc.memory < 6 * 1024 * 1024 {
            return Err(invalid("Minimum memory limit allowed is 6MB"));
        }
        if hc.memory < 0 {
            return Err(invalid("invalid memory limit"));
        }
        if hc.memory_swap > 0 && hc.memory > 0 && hc.memory_swap < hc.memory {
            return Err(invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if hc.nano_cpus < 0 || hc.nano_cpus > ncpu * 1_000_000_000 {
            return Err(invalid(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )));
        }
        if hc.nano_cpus > 0 && (hc.cpu_quota > 0 || hc.cpu_period > 0) {
            return Err(invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if hc.cpu_shares < 0 {
            return Err(invalid("invalid CPU shares"));
        }
        if !hc.cpuset_cpus.is_empty() && !valid_cpuset(&hc.cpuset_cpus, ncpu) {
            return Err(invalid(format!(
                "Requested CPUs are not available - requested {}, available: 0-{}",
                hc.cpuset_cpus,
                ncpu - 1
            )));
        }
        crate::spec::build(&crate::spec::SpecInput {
            hostname: "check",
            args: vec!["check".into()],
            env: vec![],
            cwd: "/",
            user: &crate::rootfs::ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: "/".into(),
            },
            tty: false,
            rootfs: "/".into(),
            hostname_file: "/".into(),
            hosts_file: "/".into(),
            resolv_conf_file: "/".into(),
            cgroups_path: String::new(),
            host_config: &hc,
            init: None,
            binds: Vec::new(),
        })
        .map_err(|e| invalid(crate::error::chain(&e)))?;
        super::mounts::bind_mounts(&hc, true)?;
        if hc
            .port_bindings
            .as_ref()
            .is_some_and(|p| p.as_object().is_some_and(|o| !o.is_empty()))
        {
            warnings.push(
                "Published ports are discarded: berth containers have only a private loopback network for now".into(),
            );
        }
        Ok(hc)
    }
}

fn invalid(message: impl Into<String>) -> ContainerError {
    ContainerError::InvalidConfig {
        message: message.into(),
    }
}

/// Merges a create request's config with the image's, exactly as Docker does.
pub(crate) fn merge_config(mut c: ContainerConfig, image: &Image) -> ContainerConfig {
    let ic = &image.config;
    if c.user.is_empty() {
        c.user = ic.user.clone();
    }
    if c.working_dir.is_empty() {
        c.working_dir = ic.working_dir.clone();
    }
    // Environment: the image's, overridden key by key by the request's.
    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    for e in c.env.take().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    c.env = if env.is_empty() { None } else { Some(env) };
    // A requested entrypoint replaces the image's and discards the image's cmd.
    if c.entrypoint.is_none() {
        c.entrypoint = ic.entrypoint.clone();
        if c.cmd.as_ref().is_none_or(|v| v.is_empty()) {
            c.cmd = ic.cmd.clone();
        }
    } else if c.entrypoint.as_deref() == Some(&[String::new()][..]) {
        c.entrypoint = None;
    }
    let mut labels = ic.labels.clone().unwrap_or_default();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels);
    if c.stop_signal.is_none() {
        c.stop_signal = ic.stop_signal.clone();
    }
    if c.exposed_ports.is_none() {
        c.exposed_ports = ic.exposed_ports.clone();
    }
    if c.volumes.is_none() {
        c.volumes = ic.volumes.clone();
    }
    if c.healthcheck.is_none() {
        c.healthcheck = ic.healthcheck.clone();
    }
    c
}

/// The first word and the arguments of the command a container runs.
pub(crate) fn command(c: &ContainerConfig) -> Result<(String, Vec<String>), ContainerError> {
    let mut words: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    words.extend(c.cmd.clone().unwrap_or_default());
    if words.is_empty() {
        return Err(invalid("No command specified"));
    }
    let path = words.remove(0);
    Ok((path, words))
}

/// Parses a size as Docker's `max-size` does: `10m`, `1g`, `512k`, plain bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n > 0.0).then_some((n * mult as f64) as u64)
}

fn valid_cpuset(set: &str, ncpu: i64) -> bool {
    set.split(',').all(|part| {
        let mut bounds = part.splitn(2, '-').map(|n| n.trim().parse::<i64>());
        match (bounds.next(), bounds.next()) {
            (Some(Ok(a)), None) => a >= 0 && a < ncpu,
            (Some(Ok(a)), Some(Ok(b))) => a >= 0 && a <= b && b < ncpu,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(cfg: ContainerConfig) -> Image {
        Image {
            id: "sha256:1".into(),
            config: cfg,
            layer_dirs: vec![],
            created: String::new(),
        }
    }

    #[test]
    fn merge_follows_docker_rules() {
        let img = image(ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=img".into()]),
            cmd: Some(vec!["sh".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            working_dir: "/srv".into(),
            user: "daemon".into(),
            ..Default::default()
        });
        // No cmd, no entrypoint: both from the image.
        let c = merge_config(ContainerConfig::default(), &img);
        assert_eq!(
            command(&c).unwrap(),
            ("/entry".to_string(), vec!["sh".to_string()])
        );
        assert_eq!(c.user, "daemon");
        assert_eq!(c.working_dir, "/srv");
        // A cmd replaces the image's cmd only.
        let c = merge_config(
            ContainerConfig {
                cmd: Some(vec!["echo".into(), "hi".into()]),
                env: Some(vec!["A=mine".into()]),
                ..Default::default()
            },
            &img,
        );
        assert_eq!(command(&c).unwrap().1, vec!["echo", "hi"]);
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "A=mine"]);
        // An entrypoint drops the image's cmd.
        let c = merge_config(
            ContainerConfig {
                entrypoint: Some(vec!["/bin/true".into()]),
                ..Default::default()
            },
            &img,
        );
        assert_eq!(command(&c).unwrap(), ("/bin/true".to_string(), vec![]));
        // An empty entrypoint clears it.
        let c = merge_config(
            ContainerConfig {
                entrypoint: Some(vec![String::new()]),
                cmd: Some(vec!["ls".into()]),
                ..Default::default()
            },
            &img,
        );
        assert_eq!(command(&c).unwrap(), ("ls".to_string(), vec![]));
        let none = merge_config(
            ContainerConfig::default(),
            &image(ContainerConfig::default()),
        );
        assert!(command(&none).is_err());
    }

    #[test]
    fn sizes_and_cpusets_parse() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert!(valid_cpuset("0", 2));
        assert!(valid_cpuset("0-1", 2));
        assert!(!valid_cpuset("2", 2));
        assert!(!valid_cpuset("a", 2));
    }
}
