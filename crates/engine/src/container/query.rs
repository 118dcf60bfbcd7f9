//! `inspect` and `ps`: the container as Docker shows it.

use std::collections::{BTreeMap, HashMap};

use api_types::duration::human_duration;
use api_types::filters::Filters;
use api_types::{
    ContainerInspect, ContainerState, ContainerSummary, GraphDriver, NetworkSettings,
    SummaryHostConfig, SummaryNetworkSettings,
};

use super::{ContainerRecord, Status};
use crate::engine::{Engine, EngineError};
use crate::rootfs::Overlay;
use crate::Caller;

/// Options of a container listing (`GET /containers/json`).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// At most this many, newest first (implies `all`).
    pub limit: Option<usize>,
    pub filters: Filters,
    /// Compute `SizeRw` and `SizeRootFs` (`ps -s`): a walk of each container's changes.
    pub size: bool,
}

impl Engine {
    /// A container as `GET /containers/{id}/json` shows it.
    pub async fn inspect_container(
        &self,
        _caller: &Caller,
        name: &str,
    ) -> Result<ContainerInspect, EngineError> {
        let container = self.find(name)?;
        self.refresh(&container).await;
        if container.lifecycle.borrow().removed {
            return Err(super::ContainerError::NotFound { id: name.into() }.into());
        }
        let rec = container.snapshot();
        let overlay = Overlay::in_dir(&container.dir, rec.layers.clone());
        let st = &rec.state;
        let mut graph = BTreeMap::new();
        graph.insert("LowerDir".to_string(), overlay.lowerdir());
        graph.insert(
            "MergedDir".to_string(),
            overlay.merged.display().to_string(),
        );
        graph.insert("UpperDir".to_string(), overlay.upper.display().to_string());
        graph.insert("WorkDir".to_string(), overlay.work.display().to_string());
        let network = rec.host_config.network_mode.clone();
        let network_name = if network == "default" {
            "bridge".to_string()
        } else {
            network
        };
        let mut networks = BTreeMap::new();
        networks.insert(network_name, empty_endpoint());
        Ok(ContainerInspect {
            id: rec.id.clone(),
            created: rec.created.clone(),
            path: rec.path.clone(),
            args: rec.args.clone(),
            state: ContainerState {
                status: st.status.as_str().into(),
                running: st.status.is_running(),
                paused: st.status == Status::Paused,
                restarting: st.status == Status::Restarting,
                oom_killed: st.oom_killed,
                dead: st.status == Status::Dead,
                pid: st.processes.as_ref().map(|p| p.pid as i64).unwrap_or(0),
                exit_code: st.exit_code,
                error: st.error.clone(),
                started_at: st.started_at.clone(),
                finished_at: st.finished_at.clone(),
                health: st.health.clone(),
            },
            image: rec.image_id.clone(),
            resolv_conf_path: container.dir.join("resolv.conf").display().to_string(),
            hostname_path: container.dir.join("hostname").display().to_string(),
            hosts_path: container.dir.join("hosts").display().to_string(),
            log_path: container.log_path().display().to_string(),
            name: rec.name.clone(),
            restart_count: rec.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            exec_ids: self.exec_ids(&container.id),
            host_config: rec.host_config.clone(),
            graph_driver: GraphDriver {
                data: graph,
                name: "overlay2".into(),
            },
            mounts: super::mounts::bind_mounts(&rec.host_config, false)
                .unwrap_or_default()
                .iter()
                .map(|b| b.inspect())
                .collect(),
            config: rec.config.clone(),
            network_settings: NetworkSettings {
                sandbox_key: String::new(),
                networks,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    /// Containers as `GET /containers/json` lists them, newest first.
    pub async fn list_containers(
        &self,
        _caller: &Caller,
        opts: &ListOptions,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let recs = self.list_records().await;
        let all = opts.all || opts.limit.is_some() || !opts.filters.get("status").is_empty();
        let now = chrono::Utc::now();
        let out = recs
            .iter()
            .filter(|r| all || r.state.status.is_running() || r.state.status == Status::Restarting)
            .filter(|r| matches(r, &opts.filters))
            .take(opts.limit.unwrap_or(usize::MAX))
            .map(|r| summary(r, now));
        if !opts.size {
            return Ok(out.collect());
        }
        let mut image_sizes = HashMap::new();
        let out = out
            .map(|mut c| {
                let (rw, root) = self.sizes(&c.id, &c.image_id, &mut image_sizes);
                c.size_rw = Some(rw);
                c.size_root_fs = Some(root);
                c
            })
            .collect();
        Ok(out)
    }

    /// `docker inspect -s`: the container as inspect shows it, with `SizeRw` and
    /// `SizeRootFs`.
    pub async fn inspect_container_with_size(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<ContainerInspect, EngineError> {
        let mut inspect = self.inspect_container(caller, name).await?;
        let (rw, root) = self.sizes(&inspect.id, &inspect.image, &mut HashMap::new());
        inspect.size_rw = Some(rw);
        inspect.size_root_fs = Some(root);
        Ok(inspect)
    }

    /// A container's `(SizeRw, SizeRootFs)`: its changes counted as dockerd's
    /// `directory.Size` does, and those plus its image's layers (`image_sizes` caches the
    /// images' sizes across calls).
    fn sizes(
        &self,
        id: &str,
        image_id: &str,
        image_sizes: &mut HashMap<String, i64>,
    ) -> (i64, i64) {
        let rw = crate::fsutil::tree_size(&self.containers.dir().join(id).join("diff"));
        let rw = i64::try_from(rw).unwrap_or(i64::MAX);
        let image = *image_sizes
            .entry(image_id.to_string())
            .or_insert_with(|| self.images.size_of(image_id).unwrap_or(0));
        (rw, image.saturating_add(rw))
    }
}

fn empty_endpoint() -> serde_json::Value {
    serde_json::json!({
        "IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": null
    })
}

fn summary(r: &ContainerRecord, now: chrono::DateTime<chrono::Utc>) -> ContainerSummary {
    let mut command = vec![r.path.clone()];
    command.extend(r.args.iter().cloned());
    let network = if r.host_config.network_mode == "default" {
        "bridge".to_string()
    } else {
        r.host_config.network_mode.clone()
    };
    let mut networks = BTreeMap::new();
    networks.insert(network, empty_endpoint());
    ContainerSummary {
        id: r.id.clone(),
        names: vec![r.name.clone()],
        image: r.image_name.clone(),
        image_id: r.image_id.clone(),
        command: command.join(" "),
        created: parse_time(&r.created).map(|t| t.timestamp()).unwrap_or(0),
        ports: Vec::new(),
        labels: r.config.labels.clone().unwrap_or_default(),
        state: r.state.status.as_str().into(),
        status: status_text(r, now),
        host_config: SummaryHostConfig {
            network_mode: r.host_config.network_mode.clone(),
        },
        network_settings: SummaryNetworkSettings { networks },
        mounts: Vec::new(),
        size_rw: None,
        size_root_fs: None,
    }
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Docker's human status: `Up 3 minutes`, `Exited (0) 5 seconds ago`, `Created`.
fn status_text(r: &ContainerRecord, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |t: &str| {
        parse_time(t)
            .map(|t| human_duration((now - t).to_std().unwrap_or_default()))
            .unwrap_or_default()
    };
    match r.state.status {
        Status::Running => {
            let health = match r.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            };
            format!("Up {}{health}", since(&r.state.started_at))
        }
        Status::Paused => format!("Up {} (Paused)", since(&r.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            since(&r.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
        Status::Exited if r.state.finished_at == super::ZERO_TIME => "Created".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            since(&r.state.finished_at)
        ),
    }
}

pub(crate) fn labels_match(r: &ContainerRecord, filters: &Filters) -> bool {
    let labels = r.config.labels.clone().unwrap_or_default();
    filters
        .get("label")
        .iter()
        .all(|want| match want.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(want.as_str()),
        })
}

fn matches(r: &ContainerRecord, f: &Filters) -> bool {
    let any = |name: &str, pred: &dyn Fn(&str) -> bool| {
        let vals = f.get(name);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    };
    any("id", &|v| r.id.starts_with(v))
        && any("name", &|v| {
            r.name
                .trim_start_matches('/')
                .contains(v.trim_start_matches('/'))
        })
        && any("status", &|v| r.state.status.as_str() == v)
        && any("ancestor", &|v| {
            r.image_name == v
                || r.image_id == v
                || r.image_id.trim_start_matches("sha256:").starts_with(v)
                || format!("{}:latest", r.image_name) == v
        })
        && any("exited", &|v| {
            r.state.status == Status::Exited && v.parse::<i64>().ok() == Some(r.state.exit_code)
        })
        && any("health", &|v| {
            let status = r
                .state
                .health
                .as_ref()
                .map(|h| h.status.as_str())
                .unwrap_or("none");
            status == v
        })
        && labels_match(r, f)
}
