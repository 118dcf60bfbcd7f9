//! Container types: the create body, inspect, list entries and small responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Extra JSON fields a client sent that berth does not interpret; kept so inspect echoes them.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The container configuration (`Config` in inspect, the top level of the create body).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    #[serde(deserialize_with = "null_default::deserialize")]
    pub hostname: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub domainname: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub user: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub attach_stdin: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub attach_stdout: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub tty: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub open_stdin: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "crate::strslice::deserialize")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub image: String,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub working_dir: String,
    #[serde(deserialize_with = "crate::strslice::deserialize")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// Restart policy (`HostConfig.RestartPolicy`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "null_default::deserialize")]
    pub name: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub maximum_retry_count: i64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            name: "no".into(),
            maximum_retry_count: 0,
        }
    }
}

/// Log driver settings (`HostConfig.LogConfig`). berth writes `json-file` logs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type", deserialize_with = "null_default::deserialize")]
    pub kind: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            kind: "json-file".into(),
            config: BTreeMap::new(),
        }
    }
}

/// One `--ulimit` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Host-side settings of a container (`HostConfig`). Fields berth does not act on are kept in
/// `extra` and echoed back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub log_config: LogConfig,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub network_mode: String,
    pub port_bindings: Option<serde_json::Value>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub restart_policy: RestartPolicy,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub auto_remove: bool,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub privileged: bool,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub shm_size: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub runtime: String,
    pub console_size: Option<[u32; 2]>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub cpu_shares: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub memory: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub nano_cpus: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub cgroup_parent: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub cpu_period: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub cpu_quota: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub cpuset_cpus: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub cpuset_mems: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub memory_reservation: i64,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub memory_swap: i64,
    pub memory_swappiness: Option<i64>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub oom_kill_disable: bool,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            binds: None,
            log_config: LogConfig::default(),
            network_mode: String::new(),
            port_bindings: None,
            restart_policy: RestartPolicy::default(),
            auto_remove: false,
            cap_add: None,
            cap_drop: None,
            dns: None,
            extra_hosts: None,
            privileged: false,
            readonly_rootfs: false,
            security_opt: None,
            shm_size: 0,
            runtime: String::new(),
            console_size: None,
            cpu_shares: 0,
            memory: 0,
            nano_cpus: 0,
            cgroup_parent: String::new(),
            cpu_period: 0,
            cpu_quota: 0,
            cpuset_cpus: String::new(),
            cpuset_mems: String::new(),
            memory_reservation: 0,
            memory_swap: 0,
            memory_swappiness: None,
            oom_kill_disable: false,
            pids_limit: None,
            ulimits: None,
            masked_paths: None,
            readonly_paths: None,
            init: None,
            extra: Extra::new(),
        }
    }
}

/// The body of `POST /containers/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub host_config: HostConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<serde_json::Value>,
}

/// The answer to `POST /containers/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

/// `State` in container inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// `State.Health` of a container with a healthcheck.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    /// The last five probes.
    pub log: Vec<HealthLog>,
}

/// One probe of a healthcheck.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// `GraphDriver` in inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct GraphDriver {
    pub data: BTreeMap<String, String>,
    pub name: String,
}

/// `NetworkSettings` in inspect (berth has only private loopback networking for now).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub ports: BTreeMap<String, serde_json::Value>,
    pub sandbox_key: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    pub mac_address: String,
    pub networks: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    pub hairpin_mode: bool,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<serde_json::Value>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<serde_json::Value>>,
}

/// The answer to `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<serde_json::Value>,
    pub config: ContainerConfig,
    pub network_settings: NetworkSettings,
    /// With `size=1` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    /// With `size=1` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: Vec<serde_json::Value>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: SummaryHostConfig,
    pub network_settings: SummaryNetworkSettings,
    pub mounts: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
}

/// `HostConfig` in a container list entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

/// `NetworkSettings` in a container list entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryNetworkSettings {
    pub networks: BTreeMap<String, serde_json::Value>,
}

/// The answer to `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WaitResponse {
    pub error: Option<WaitError>,
    pub status_code: i64,
}

/// The error of a wait that could not complete.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WaitError {
    pub message: String,
}

/// The body of `POST /containers/{id}/update`: resources and the restart policy of a live
/// container. Absent (or zero) fields are left as they are, as with Docker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerUpdateRequest {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to `POST /containers/{id}/update`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerUpdateResponse {
    pub warnings: Vec<String>,
}

/// The answer to `POST /containers/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainersPruneResponse {
    pub containers_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

/// Deserializes `null` as the type's default, as dockerd does for every field.
pub mod null_default {
    use serde::{Deserialize, Deserializer};

    /// See the module documentation.
    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_cli_create_body_parses() {
        let body = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,
            "AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,
            "Cmd":["echo","hi"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,
            "OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"",
            "LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},
            "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,
            "ConsoleSize":[0,0],"Memory":0,"NanoCpus":0,"MemorySwappiness":-1,"PidsLimit":null,
            "KernelMemory":0},"NetworkingConfig":{"EndpointsConfig":{}}}"#;
        let req: ContainerCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(
            req.config.cmd.as_deref(),
            Some(&["echo".to_string(), "hi".to_string()][..])
        );
        assert!(req.host_config.auto_remove);
        assert_eq!(
            req.host_config.extra.get("KernelMemory"),
            Some(&serde_json::json!(0))
        );
        assert_eq!(req.host_config.memory_swappiness, Some(-1));
    }

    #[test]
    fn docker_py_minimal_body_and_string_cmd_parse() {
        let req: ContainerCreateRequest = serde_json::from_str(
            r#"{"Image":"busybox","Cmd":"echo hi","NetworkDisabled":false,"HostConfig":null}"#,
        )
        .unwrap();
        assert_eq!(req.config.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(req.host_config.restart_policy.name, "no");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_an_error() {
        assert!(serde_json::from_str::<ContainerCreateRequest>(
            r#"{"Image":"busybox","Tty":"yes"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ContainerCreateRequest>(
            r#"{"HostConfig":{"Memory":"lots"}}"#
        )
        .is_err());
    }
}
