//! The flags `run` and `create` share, and how they become the create request body (the
//! same fields, nulls and defaults docker 28 sends).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use api_types::{
    ContainerConfig, ContainerCreateRequest, HostConfig, LogConfig, RestartPolicy, Ulimit,
};
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use crate::units::{parse_nano_cpus, ram_in_bytes};

/// Flags of `run` and `create` that describe the container.
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerOptions {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "list")]
    pub attach: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string", default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Connect a container to a network (none, default, host)
    #[arg(long, alias = "net", value_name = "network", default_value = "default")]
    pub network: String,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options (max-size=, max-file=)
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<i64>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// The streams a client attaches to, from `-a` and `-i` (stdout and stderr when `-a` is
/// absent), as docker decides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl ContainerOptions {
    /// The streams to attach.
    pub fn attach_streams(&self) -> anyhow::Result<AttachStreams> {
        let mut streams = AttachStreams {
            stdin: false,
            stdout: false,
            stderr: false,
        };
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => streams.stdin = true,
                "stdout" => streams.stdout = true,
                "stderr" => streams.stderr = true,
                _ => bail!("invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"),
            }
        }
        if self.interactive {
            streams.stdin = true;
        }
        if self.attach.is_empty() {
            streams.stdout = true;
            streams.stderr = true;
        }
        Ok(streams)
    }

    /// Builds the create body for `image` and its command `args`. `lookup_env` reads the
    /// client's environment (for `-e NAME` without a value) and `console_size` is the
    /// terminal's `[height, width]` when a tty is requested on a terminal.
    pub fn to_create_request(
        &self,
        image: &str,
        args: &[String],
        lookup_env: &dyn Fn(&str) -> Option<String>,
        console_size: [u32; 2],
    ) -> anyhow::Result<ContainerCreateRequest> {
        let streams = self.attach_streams()?;
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("open {}", file.display()))?;
            env.extend(parse_env_file(&text, lookup_env));
        }
        for e in &self.env {
            env.push(expand_env(e, lookup_env));
        }
        let labels = self
            .label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect::<BTreeMap<_, _>>();
        let entrypoint = self.entrypoint.as_ref().map(|e| vec![e.clone()]);
        let memory = self
            .memory
            .as_deref()
            .map(ram_in_bytes)
            .transpose()?
            .unwrap_or(0);
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => -1,
            Some(s) => ram_in_bytes(s)?,
            None => 0,
        };
        let nano_cpus = self
            .cpus
            .as_deref()
            .map(parse_nano_cpus)
            .transpose()?
            .unwrap_or(0);
        let restart_policy = parse_restart_policy(&self.restart)?;
        if self.rm && restart_policy.name != "no" {
            bail!("conflicting options: cannot specify both --restart and --rm");
        }
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut log_config = LogConfig {
            kind: self.log_driver.clone().unwrap_or_default(),
            config: BTreeMap::new(),
        };
        for opt in &self.log_opt {
            let (k, v) = opt
                .split_once('=')
                .with_context(|| format!("invalid key/value pair format in logging opts: {opt}"))?;
            log_config.config.insert(k.to_string(), v.to_string());
        }
        let mut binds = Vec::new();
        let mut volumes = BTreeMap::new();
        for v in &self.volume {
            if v.contains(':') {
                binds.push(v.clone());
            } else {
                volumes.insert(v.clone(), json!({}));
            }
        }
        let mounts = self
            .mount
            .iter()
            .map(|m| parse_mount(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (exposed_ports, port_bindings) = parse_publish(&self.publish)?;
        let config = ContainerConfig {
            hostname: self.hostname.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            attach_stdin: streams.stdin,
            attach_stdout: streams.stdout,
            attach_stderr: streams.stderr,
            exposed_ports,
            tty: self.tty,
            open_stdin: self.interactive,
            // Closing the client's stdin ends the container's when stdin is attached.
            stdin_once: self.interactive && streams.stdin,
            env: (!env.is_empty()).then_some(env),
            cmd: (!args.is_empty()).then(|| args.to_vec()),
            image: image.to_string(),
            volumes: Some(volumes),
            working_dir: self.workdir.clone().unwrap_or_default(),
            entrypoint,
            labels: Some(labels),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            healthcheck: self.healthcheck()?,
            ..ContainerConfig::default()
        };
        // Docker leaves `Mounts` out when there are none (`omitempty`).
        let mut extra = api_types::Extra::new();
        if !mounts.is_empty() {
            extra.insert("Mounts".into(), Value::Array(mounts));
        }
        let host_config = HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            log_config,
            network_mode: self.network.clone(),
            port_bindings: Some(port_bindings),
            restart_policy,
            auto_remove: self.rm,
            cap_add: (!self.cap_add.is_empty()).then(|| normalize_capabilities(&self.cap_add)),
            cap_drop: (!self.cap_drop.is_empty()).then(|| normalize_capabilities(&self.cap_drop)),
            privileged: self.privileged,
            readonly_rootfs: self.read_only,
            console_size: Some(console_size),
            cpu_shares: self.cpu_shares.unwrap_or(0),
            memory,
            nano_cpus,
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            memory_swap,
            memory_swappiness: Some(-1),
            pids_limit: self.pids_limit,
            ulimits: (!ulimits.is_empty()).then_some(ulimits),
            init: self.init.then_some(true),
            extra,
            ..HostConfig::default()
        };
        Ok(ContainerCreateRequest {
            config,
            host_config,
            networking_config: Some(json!({"EndpointsConfig": {}})),
        })
    }
}

impl ContainerOptions {
    /// `Healthcheck` from the `--health-*` flags, as the docker CLI builds it (durations in
    /// nanoseconds, `CMD-SHELL` for the command, `NONE` for `--no-healthcheck`).
    fn healthcheck(&self) -> anyhow::Result<Option<Value>> {
        let any = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_start_period.is_some()
            || self.health_retries.is_some();
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any {
            return Ok(None);
        }
        let duration = |flag: &str, v: &Option<String>| -> anyhow::Result<i64> {
            match v {
                None => Ok(0),
                Some(text) => {
                    let d = crate::units::parse_go_duration(text).with_context(|| {
                        format!("invalid argument {text:?} for \"--{flag}\" flag")
                    })?;
                    Ok(d.as_nanos() as i64)
                }
            }
        };
        let retries = self.health_retries.unwrap_or(0);
        if retries < 0 {
            bail!("--health-retries cannot be negative");
        }
        let mut hc = json!({
            "Interval": duration("health-interval", &self.health_interval)?,
            "Timeout": duration("health-timeout", &self.health_timeout)?,
            "StartPeriod": duration("health-start-period", &self.health_start_period)?,
            "Retries": retries,
        });
        if let Some(cmd) = &self.health_cmd {
            hc["Test"] = json!(["CMD-SHELL", cmd]);
        }
        Ok(Some(hc))
    }
}

/// Capabilities as docker sends them: upper case with the `CAP_` prefix (`ALL` stays `ALL`),
/// without duplicates.
fn normalize_capabilities(caps: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in caps {
        let upper = c.trim().to_ascii_uppercase();
        let name = if upper == "ALL" || upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `-e NAME=value` as is; `-e NAME` takes the client's value when it has one.
pub(crate) fn expand_env(entry: &str, lookup_env: &dyn Fn(&str) -> Option<String>) -> String {
    if entry.contains('=') {
        return entry.to_string();
    }
    match lookup_env(entry) {
        Some(v) => format!("{entry}={v}"),
        None => entry.to_string(),
    }
}

/// Lines of an `--env-file`: comments and blanks skipped, `NAME` alone taken from the client's
/// environment (and dropped when unset).
pub(crate) fn parse_env_file(
    text: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            if l.contains('=') {
                Some(l.to_string())
            } else {
                let name = l.trim_end();
                lookup_env(name).map(|v| format!("{name}={v}"))
            }
        })
        .collect()
}

/// `no`, `always`, `unless-stopped` or `on-failure[:N]`.
pub fn parse_restart_policy(text: &str) -> anyhow::Result<RestartPolicy> {
    let (name, count) = match text.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (text, None),
    };
    let maximum_retry_count = match count {
        Some(c) => c.parse::<i64>().map_err(|_| {
            anyhow::anyhow!("invalid restart policy format: maximum retry count must be an integer")
        })?,
        None => 0,
    };
    match name {
        "" | "no" if count.is_none() => Ok(RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        }),
        "always" | "unless-stopped" if count.is_none() => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: 0,
        }),
        "on-failure" => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count,
        }),
        "always" | "unless-stopped" | "no" => {
            bail!("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
        }
        _ => bail!("invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    }
}

/// `nofile=1024[:2048]`.
fn parse_ulimit(text: &str) -> anyhow::Result<Ulimit> {
    let invalid = || anyhow::anyhow!("invalid ulimit argument: {text}");
    let (name, limits) = text.split_once('=').ok_or_else(invalid)?;
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (s, h),
        None => (limits, limits),
    };
    let soft: i64 = soft.parse().map_err(|_| invalid())?;
    let hard: i64 = hard.parse().map_err(|_| invalid())?;
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--mount type=bind,src=/a,dst=/b,readonly` into the API's mount object.
fn parse_mount(text: &str) -> anyhow::Result<Value> {
    let mut mount = serde_json::Map::new();
    mount.insert("Type".into(), json!("volume"));
    for field in text.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        match (key.as_str(), value) {
            ("type", Some(v)) => {
                mount.insert("Type".into(), json!(v));
            }
            ("source" | "src", Some(v)) => {
                mount.insert("Source".into(), json!(v));
            }
            ("target" | "dst" | "destination", Some(v)) => {
                mount.insert("Target".into(), json!(v));
            }
            ("readonly" | "ro", None | Some("true" | "1")) => {
                mount.insert("ReadOnly".into(), json!(true));
            }
            ("readonly" | "ro", Some("false" | "0")) => {}
            _ => bail!("invalid argument \"{text}\" for \"--mount\" flag: unexpected key '{key}' in '{field}'"),
        }
    }
    if !mount.contains_key("Target") {
        bail!("invalid argument \"{text}\" for \"--mount\" flag: target is required");
    }
    Ok(Value::Object(mount))
}

/// `-p [ip:][hostPort:]containerPort[/proto]` into `ExposedPorts` and `PortBindings`.
fn parse_publish(specs: &[String]) -> anyhow::Result<(Option<BTreeMap<String, Value>>, Value)> {
    if specs.is_empty() {
        return Ok((None, json!({})));
    }
    let mut exposed = BTreeMap::new();
    let mut bindings = serde_json::Map::new();
    for spec in specs {
        let invalid = || {
            anyhow::anyhow!("invalid argument \"{spec}\" for \"-p, --publish\" flag: invalid port")
        };
        let (addr, proto) = match spec.rsplit_once('/') {
            Some((a, p)) => (a, p.to_string()),
            None => (spec.as_str(), "tcp".to_string()),
        };
        // An IPv6 host IP comes in brackets: [::1]:80:80.
        let (ip, rest) = match addr.strip_prefix('[') {
            Some(r) => {
                let (ip, rest) = r.split_once("]:").ok_or_else(invalid)?;
                (ip.to_string(), rest.to_string())
            }
            None => match addr.matches(':').count() {
                2 => {
                    let (ip, rest) = addr.split_once(':').ok_or_else(invalid)?;
                    (ip.to_string(), rest.to_string())
                }
                0 | 1 => (String::new(), addr.to_string()),
                _ => return Err(invalid()),
            },
        };
        let (host_port, container_port) = match rest.split_once(':') {
            Some((h, c)) => (h.to_string(), c.to_string()),
            None => (String::new(), rest.clone()),
        };
        if container_port.parse::<u16>().is_err()
            || (!host_port.is_empty() && host_port.parse::<u16>().is_err())
        {
            return Err(invalid());
        }
        let key = format!("{container_port}/{proto}");
        exposed.insert(key.clone(), json!({}));
        let entry = bindings.entry(key).or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(json!({"HostIp": ip, "HostPort": host_port}));
        }
    }
    Ok((Some(exposed), Value::Object(bindings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_normalized() {
        let caps = [
            "net_admin".to_string(),
            "CAP_SYS_ADMIN".into(),
            "ALL".into(),
            "NET_ADMIN".into(),
        ];
        assert_eq!(
            normalize_capabilities(&caps),
            ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "ALL"]
        );
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart_policy("no").unwrap().name, "no");
        assert_eq!(parse_restart_policy("always").unwrap().name, "always");
        assert_eq!(
            parse_restart_policy("unless-stopped").unwrap().name,
            "unless-stopped"
        );
        let p = parse_restart_policy("on-failure:3").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 3));
        assert_eq!(
            parse_restart_policy("on-failure")
                .unwrap()
                .maximum_retry_count,
            0
        );
        assert!(parse_restart_policy("always:3").is_err());
        assert!(parse_restart_policy("sometimes").is_err());
        assert!(parse_restart_policy("on-failure:x").is_err());
    }

    #[test]
    fn ulimits_and_mounts() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        assert_eq!(parse_ulimit("nproc=10").unwrap().hard, 10);
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=5:1").is_err());
        assert_eq!(
            parse_mount("type=bind,src=/srv/data,dst=/b,readonly").unwrap(),
            json!({"Type":"bind","Source":"/srv/data","Target":"/b","ReadOnly":true})
        );
        assert_eq!(
            parse_mount("type=volume,src=ck-vol2,dst=/d2").unwrap(),
            json!({"Type":"volume","Source":"ck-vol2","Target":"/d2"})
        );
        assert!(parse_mount("src=/a").is_err());
    }

    #[test]
    fn published_ports_match_the_checklist() {
        let (exposed, bindings) =
            parse_publish(&["18080:80".into(), "127.0.0.1:18081:81/udp".into()]).unwrap();
        assert_eq!(
            serde_json::to_value(exposed).unwrap(),
            json!({"80/tcp":{},"81/udp":{}})
        );
        assert_eq!(
            bindings,
            json!({"80/tcp":[{"HostIp":"","HostPort":"18080"}],"81/udp":[{"HostIp":"127.0.0.1","HostPort":"18081"}]})
        );
        assert!(parse_publish(&["x:80".into()]).is_err());
    }

    #[test]
    fn env_files_and_pass_through_variables() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(expand_env("A=1", &lookup), "A=1");
        assert_eq!(expand_env("HOME", &lookup), "HOME=/root");
        assert_eq!(expand_env("UNSET", &lookup), "UNSET");
        assert_eq!(
            parse_env_file("# c\n\nA=1\nHOME\nUNSET\n  B=x y\n", &lookup),
            ["A=1", "HOME=/root", "B=x y"]
        );
    }
}
