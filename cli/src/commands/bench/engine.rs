//! The engines measured, each reached as its user reaches it: the `berth` CLI through a
//! berthd, `berth --daemonless`, the docker CLI, podman. Every command the bench sends goes
//! through the engine's own CLI as a child process, so the numbers include what a user
//! waits for.
//!
//! An engine remembers every container it named, so clean-up removes them all even when a
//! scenario failed half-way; a private daemon's roots get a last sweep (processes still
//! recorded there, mounts, cgroups) that touches nothing outside them.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use serde::Serialize;

use super::accounting::{Accounting, CpuGroup};
use super::berthd::PrivateBerthd;
use super::command::{self, Cancel, Outcome};
use super::image;
use super::procfs;
use super::progress::Progress;

/// How long one engine command may take before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Clean-up commands remove many containers at once.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(300);
/// Containers per `rm -f` or `inspect` command.
const BATCH: usize = 50;

/// An engine the bench knows how to reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineId {
    /// berth through a private berthd (or the one at --host)
    Berthd,
    /// berth --daemonless on a private data root
    Daemonless,
    /// the docker CLI through a private berthd of its own
    DockerCliBerthd,
    /// docker through DOCKER_HOST (default unix:///var/run/docker.sock)
    Docker,
    /// podman on PATH
    Podman,
    /// berth through a private berthd, both from the build given with --other-build
    BerthdOther,
    /// berth --daemonless from the build given with --other-build
    DaemonlessOther,
}

impl EngineId {
    /// Every engine, in the report's column order.
    pub const ALL: [EngineId; 7] = [
        EngineId::Berthd,
        EngineId::Daemonless,
        EngineId::BerthdOther,
        EngineId::DaemonlessOther,
        EngineId::DockerCliBerthd,
        EngineId::Docker,
        EngineId::Podman,
    ];

    /// Whether the engine is berth from the build given with `--other-build`.
    pub fn is_other_build(self) -> bool {
        matches!(self, EngineId::BerthdOther | EngineId::DaemonlessOther)
    }

    /// The engine's column heading.
    pub fn label(self) -> &'static str {
        match self {
            EngineId::Berthd => "berth → berthd",
            EngineId::Daemonless => "berth --daemonless",
            EngineId::DockerCliBerthd => "docker CLI → berthd",
            EngineId::Docker => "docker",
            EngineId::Podman => "podman",
            EngineId::BerthdOther => "berthd (other build)",
            EngineId::DaemonlessOther => "daemonless (other build)",
        }
    }

    /// The spelling of `--engines` and of the JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            EngineId::Berthd => "berthd",
            EngineId::Daemonless => "daemonless",
            EngineId::DockerCliBerthd => "docker-cli-berthd",
            EngineId::Docker => "docker",
            EngineId::Podman => "podman",
            EngineId::BerthdOther => "berthd-other",
            EngineId::DaemonlessOther => "daemonless-other",
        }
    }
}

/// What runs between an engine's commands.
pub enum Daemon {
    /// Nothing: every command is the engine (daemonless berth, podman).
    None,
    /// A berthd the bench started: it may measure, kill and restart it.
    Private(PrivateBerthd),
    /// A daemon someone else runs: measured when its pid is known, never signalled.
    External { pid: Option<i32> },
}

/// What every engine is prepared with.
pub struct Setup<'a> {
    /// The bench's temporary directory: private roots go under it.
    pub tmp: &'a Path,
    /// The running `berth` binary (berthd is looked for next to it).
    pub berth: PathBuf,
    pub archive: &'a Path,
    pub accounting: Option<&'a Accounting>,
    /// `--host`: measure this berthd instead of starting one.
    pub host: Option<String>,
    /// `--other-build`: the `berth` binary of another build, measured beside this one.
    pub other_berth: Option<PathBuf>,
    /// Every container name the bench makes starts with it.
    pub prefix: String,
    pub progress: Progress,
    pub cancel: Cancel,
}

/// One engine, ready to take commands.
pub struct Engine {
    pub id: EngineId,
    /// How the bench reaches it, for the report.
    pub how: String,
    pub version: Option<String>,
    pub daemon: Daemon,
    /// The image reference its containers run.
    pub image: String,
    /// The daemon's RSS right after the image was loaded, in KiB.
    pub idle_rss_kib: Option<u64>,
    program: PathBuf,
    pre_args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    env_remove: Vec<&'static str>,
    cli_cpu: Option<CpuGroup>,
    daemon_cpu: Option<CpuGroup>,
    /// Whether the image was loaded by the bench into an engine it does not own.
    remove_image: bool,
    /// Private (data root, exec root) pairs, swept at clean-up.
    private_roots: Vec<(PathBuf, PathBuf)>,
    names: Mutex<BTreeSet<String>>,
    next_name: AtomicUsize,
    prefix: String,
    progress: Progress,
    cancel: Cancel,
}

/// Prepares engine `id`: starts its private daemon if it has one, checks that it answers and
/// loads the image. An engine that cannot be used gives the reason, having cleaned up what
/// it started.
pub fn prepare(id: EngineId, setup: &Setup) -> std::result::Result<Engine, String> {
    let mut engine = Engine::new(id, setup).map_err(|e| format!("{e:#}"))?;
    match engine.start(setup.archive) {
        Ok(()) => Ok(engine),
        Err(e) => {
            for w in engine.cleanup() {
                setup.progress.println(format!("berth bench: {w}"));
            }
            Err(format!("{e:#}"))
        }
    }
}

impl Engine {
    fn new(id: EngineId, setup: &Setup) -> Result<Self> {
        let cpu_group = |role: &str| -> Result<Option<CpuGroup>> {
            setup
                .accounting
                .map(|a| a.group(&format!("{}-{role}", id.key())))
                .transpose()
        };
        let mut engine = Engine {
            id,
            how: String::new(),
            version: None,
            daemon: Daemon::None,
            image: image::TAG.to_string(),
            idle_rss_kib: None,
            program: setup.berth.clone(),
            pre_args: Vec::new(),
            env: Vec::new(),
            env_remove: vec!["BERTH_DAEMONLESS"],
            cli_cpu: None,
            daemon_cpu: None,
            remove_image: false,
            private_roots: Vec::new(),
            names: Mutex::default(),
            next_name: AtomicUsize::new(0),
            prefix: format!("{}{}-", setup.prefix, id.key()),
            progress: setup.progress.clone(),
            cancel: setup.cancel.clone(),
        };
        if id.is_other_build() {
            engine.program = setup
                .other_berth
                .clone()
                .context("no other build to compare with (--other-build)")?;
        }
        let private_berthd = |engine: &mut Engine, dir: &str| -> Result<PrivateBerthd> {
            let bin = engine.program.with_file_name("berthd");
            if !bin.is_file() {
                bail!("berthd is not next to berth ({} is missing)", bin.display());
            }
            engine.daemon_cpu = cpu_group("daemon")?;
            let d = PrivateBerthd::new(bin, setup.tmp.join(dir), engine.daemon_cpu.clone())?;
            engine.private_roots.push((d.data_root(), d.exec_root()));
            Ok(d)
        };
        match id {
            EngineId::BerthdOther => {
                let d = private_berthd(&mut engine, "berthd-other")?;
                engine.env.push(("BERTH_HOST", d.host().into()));
                engine.how = format!(
                    "{} → a private berthd of its build on {}",
                    engine.program.display(),
                    d.host()
                );
                engine.daemon = Daemon::Private(d);
            }
            EngineId::Berthd => match &setup.host {
                Some(host) => {
                    let socket = host.strip_prefix("unix://").with_context(|| {
                        format!("--host {host:?}: only unix:// sockets are supported")
                    })?;
                    engine.env.push(("BERTH_HOST", host.into()));
                    engine.daemon = Daemon::External {
                        pid: procfs::socket_peer_pid(Path::new(socket)),
                    };
                    engine.how = format!("berth → the berthd at {host}");
                }
                None => {
                    let d = private_berthd(&mut engine, "berthd")?;
                    engine.env.push(("BERTH_HOST", d.host().into()));
                    engine.how = format!("berth → a private berthd on {}", d.host());
                    engine.daemon = Daemon::Private(d);
                }
            },
            EngineId::Daemonless | EngineId::DaemonlessOther => {
                let (data, exec) = (
                    setup.tmp.join(id.key()).join("data"),
                    setup.tmp.join(id.key()).join("exec"),
                );
                engine.pre_args = vec![
                    "--daemonless".into(),
                    "--data-root".into(),
                    data.clone().into(),
                    "--exec-root".into(),
                    exec.clone().into(),
                ];
                engine.env_remove.push("BERTH_HOST");
                engine.how = format!(
                    "{} --daemonless --data-root {} --exec-root {}",
                    engine.program.display(),
                    data.display(),
                    exec.display()
                );
                engine.private_roots.push((data, exec));
            }
            EngineId::DockerCliBerthd => {
                engine.program = docker_cli()?;
                let d = private_berthd(&mut engine, "docker-cli-berthd")?;
                engine.env.push(("DOCKER_HOST", d.host().into()));
                // `build` through the classic builder's API, which berthd serves.
                engine.env.push(("DOCKER_BUILDKIT", "0".into()));
                engine
                    .env
                    .push(("DOCKER_CONFIG", setup.tmp.join("docker-config").into()));
                engine.env_remove.extend([
                    "DOCKER_CONTEXT",
                    "DOCKER_TLS_VERIFY",
                    "DOCKER_CERT_PATH",
                ]);
                engine.how = format!(
                    "{} → a private berthd of its own on {}",
                    engine.program.display(),
                    d.host()
                );
                engine.daemon = Daemon::Private(d);
            }
            EngineId::Docker => {
                engine.program = docker_cli()?;
                let host = std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
                let pid = match host.strip_prefix("unix://") {
                    Some(socket) => {
                        if !Path::new(socket).exists() {
                            bail!("No docker daemon: {socket} does not exist (DOCKER_HOST names another)");
                        }
                        procfs::socket_peer_pid(Path::new(socket))
                    }
                    None if is_loopback_host(&host) => None,
                    None => bail!(
                        "DOCKER_HOST={host} is not on this machine, and the bench only talks to local engines"
                    ),
                };
                engine.env.push(("DOCKER_HOST", host.clone().into()));
                engine.env.push(("DOCKER_BUILDKIT", "0".into()));
                engine.env_remove.push("DOCKER_CONTEXT");
                engine.daemon = Daemon::External { pid };
                engine.how = format!("{} → DOCKER_HOST={host}", engine.program.display());
            }
            EngineId::Podman => {
                engine.program = which("podman").context("podman is not on PATH")?;
                // A remote podman would send the bench's traffic off this machine.
                engine
                    .env_remove
                    .extend(["CONTAINER_HOST", "CONTAINER_CONNECTION"]);
                engine.how = format!("{} (local)", engine.program.display());
            }
        }
        engine.cli_cpu = cpu_group("cli")?;
        Ok(engine)
    }

    /// Starts the private daemon, checks the engine answers, loads the image.
    fn start(&mut self, archive: &Path) -> Result<()> {
        self.cancel.check()?;
        if let Daemon::Private(d) = &mut self.daemon {
            d.start()?;
        }
        let probe = self.run(&["ps", "-a", "-q"])?;
        if !probe.status.success() {
            bail!("{}", probe.reason());
        }
        self.version = self.detect_version();
        let external =
            matches!(self.daemon, Daemon::External { .. }) || self.id == EngineId::Podman;
        let existed = external
            && self
                .run(&["image", "inspect", &self.image])?
                .status
                .success();
        self.run_ok(&["load", "-i", &archive.to_string_lossy()])
            .context("Cannot load the busybox image")?;
        self.remove_image = external && !existed;
        // The daemon's memory once it has settled with the image loaded.
        std::thread::sleep(Duration::from_millis(300));
        self.idle_rss_kib = self.daemon_pid().and_then(procfs::rss_kib);
        Ok(())
    }

    fn detect_version(&self) -> Option<String> {
        let args: &[&str] = match self.id {
            EngineId::Podman => &["--version"],
            EngineId::Daemonless | EngineId::DaemonlessOther => &["--version"],
            _ => &["version", "--format", "{{.Server.Version}}"],
        };
        let out = self.run(args).ok().filter(|o| o.status.success())?;
        let v = out.stdout().trim().to_string();
        let v = v.rsplit(' ').next().unwrap_or(&v).to_string();
        (!v.is_empty()).then_some(v)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.pre_args).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for k in &self.env_remove {
            c.env_remove(k);
        }
        if let Some(g) = &self.cli_cpu {
            g.place(&mut c);
        }
        c
    }

    /// Runs one engine command (unless the bench was interrupted).
    pub fn run(&self, args: &[&str]) -> Result<Outcome> {
        self.cancel.check()?;
        let out = command::run(self.command(args), COMMAND_TIMEOUT);
        self.progress.tick();
        out
    }

    /// Runs one engine command that must succeed.
    pub fn run_ok(&self, args: &[&str]) -> Result<Outcome> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!("`{}` failed: {}", self.describe(args), out.reason());
        }
        Ok(out)
    }

    /// The command line a user would type for `args`, for error messages.
    pub fn describe(&self, args: &[&str]) -> String {
        let program = self
            .program
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let shown: Vec<&str> = args.iter().take(4).copied().collect();
        let more = if args.len() > 4 { " …" } else { "" };
        match self.id {
            EngineId::Daemonless | EngineId::DaemonlessOther => {
                format!("{program} --daemonless {}{more}", shown.join(" "))
            }
            _ => format!("{program} {}{more}", shown.join(" ")),
        }
    }

    /// A fresh container name, remembered for clean-up.
    pub fn new_name(&self) -> String {
        let n = self.next_name.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{n}", self.prefix);
        self.names.lock().unwrap().insert(name.clone());
        name
    }

    /// Forgets containers that are gone.
    pub fn forget(&self, names: &[String]) {
        let mut set = self.names.lock().unwrap();
        for n in names {
            set.remove(n);
        }
    }

    /// `run --rm --network none IMAGE true`; returns the wall time.
    pub fn run_true(&self) -> Result<Duration> {
        let name = self.new_name();
        let out = self.run_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            &name,
            &self.image,
            "true",
        ])?;
        self.forget(&[name]);
        Ok(out.elapsed)
    }

    /// `create --network none IMAGE true`; returns the container's name.
    pub fn create(&self) -> Result<String> {
        let name = self.new_name();
        self.run_ok(&[
            "create",
            "--network",
            "none",
            "--name",
            &name,
            &self.image,
            "true",
        ])?;
        Ok(name)
    }

    /// `run -d --network none IMAGE sleep 3600`; returns the container's name.
    pub fn start_sleeper(&self) -> Result<String> {
        let name = self.new_name();
        self.run_ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            &self.image,
            "sleep",
            "3600",
        ])?;
        Ok(name)
    }

    /// `rm -f` of `names`, a batch at a time.
    pub fn remove(&self, names: &[String]) -> Result<()> {
        for batch in names.chunks(BATCH) {
            let mut args = vec!["rm", "-f"];
            args.extend(batch.iter().map(String::as_str));
            self.run_ok(&args)?;
            self.forget(batch);
        }
        Ok(())
    }

    /// `inspect -f TEMPLATE` of `names`: one line each, in order.
    pub fn inspect_each(&self, names: &[String], template: &str) -> Result<Vec<String>> {
        let mut lines = Vec::with_capacity(names.len());
        for batch in names.chunks(BATCH) {
            let mut args = vec!["inspect", "-f", template];
            args.extend(batch.iter().map(String::as_str));
            let out = self.run_ok(&args)?;
            let got: Vec<String> = out.stdout().lines().map(|l| l.trim().to_string()).collect();
            if got.len() != batch.len() {
                bail!(
                    "`{}` printed {} lines for {} containers",
                    self.describe(&args),
                    got.len(),
                    batch.len()
                );
            }
            lines.extend(got);
        }
        Ok(lines)
    }

    /// The pids of the containers' first processes.
    pub fn container_pids(&self, names: &[String]) -> Result<Vec<i32>> {
        self.inspect_each(names, "{{.State.Pid}}")?
            .iter()
            .map(|l| {
                l.parse()
                    .with_context(|| format!("A pid that is not a number: {l:?}"))
            })
            .collect()
    }

    /// The daemon's pid, when there is one and it is known.
    pub fn daemon_pid(&self) -> Option<i32> {
        match &self.daemon {
            Daemon::None => None,
            Daemon::Private(d) => d.pid(),
            Daemon::External { pid } => *pid,
        }
    }

    /// The private daemon, for the crash scenario.
    pub fn private_daemon(&mut self) -> Option<&mut PrivateBerthd> {
        match &mut self.daemon {
            Daemon::Private(d) => Some(d),
            _ => None,
        }
    }

    /// The CPU time of every CLI process this engine's commands ran (and what they forked).
    pub fn cli_cpu(&self) -> std::result::Result<Duration, String> {
        let g = self
            .cli_cpu
            .as_ref()
            .ok_or_else(|| "no cgroup CPU accounting on this machine".to_string())?;
        g.usage()
            .ok_or_else(|| "cannot read the CLI's cgroup".to_string())
    }

    /// The CPU time of the daemon side: a private berthd's cgroup (it, its shims and runtime
    /// invocations), or an external daemon's own process and the children it reaped.
    pub fn daemon_cpu(&self) -> std::result::Result<Duration, String> {
        match &self.daemon {
            Daemon::None => Err("no daemon".to_string()),
            Daemon::Private(_) => self
                .daemon_cpu
                .as_ref()
                .and_then(CpuGroup::usage)
                .ok_or_else(|| "no cgroup CPU accounting on this machine".to_string()),
            Daemon::External { pid: Some(pid) } => {
                procfs::cpu_time(*pid).ok_or_else(|| format!("cannot read /proc/{pid}/stat"))
            }
            Daemon::External { pid: None } => Err("the daemon's pid is unknown".to_string()),
        }
    }

    /// The daemon's log, when the bench started the daemon.
    pub fn daemon_log(&self) -> Option<PathBuf> {
        match &self.daemon {
            Daemon::Private(d) => Some(d.log_path()),
            _ => None,
        }
    }

    /// Removes every container the bench made, stops a private daemon, sweeps private roots
    /// and removes an image the bench loaded into an engine it does not own. Runs even when
    /// the bench was interrupted; returns what it could not do.
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        let names: Vec<String> = self.names.lock().unwrap().iter().cloned().collect();
        let daemon_up = match &self.daemon {
            Daemon::Private(d) => d.pid().is_some(),
            _ => true,
        };
        if !names.is_empty() && daemon_up {
            for batch in names.chunks(BATCH) {
                let mut args = vec!["rm", "-f"];
                args.extend(batch.iter().map(String::as_str));
                let _ = self.run_cleanup(&args);
            }
            // Whatever is left (a name never created is not an error).
            match self.run_cleanup(&["ps", "-a", "--format", "{{.Names}}"]) {
                Ok(out) if out.status.success() => {
                    let left: Vec<String> = out
                        .stdout()
                        .lines()
                        .map(|l| l.trim().trim_start_matches('/').to_string())
                        .filter(|n| n.starts_with(&self.prefix))
                        .collect();
                    for name in &left {
                        match self.run_cleanup(&["rm", "-f", name]) {
                            Ok(o) if o.status.success() => {}
                            Ok(o) => warnings.push(format!("Cannot remove {name}: {}", o.reason())),
                            Err(e) => warnings.push(format!("Cannot remove {name}: {e:#}")),
                        }
                    }
                }
                Ok(out) => warnings.push(format!(
                    "Cannot list {}'s containers: {}",
                    self.id.label(),
                    out.reason()
                )),
                Err(e) => warnings.push(format!(
                    "Cannot list {}'s containers: {e:#}",
                    self.id.label()
                )),
            }
        }
        self.names.lock().unwrap().clear();
        if self.remove_image {
            let _ = self.run_cleanup(&["rmi", &self.image]);
            self.remove_image = false;
        }
        if let Daemon::Private(d) = &mut self.daemon {
            d.stop();
        }
        for (data, exec) in std::mem::take(&mut self.private_roots) {
            warnings.extend(sweep_root(&data, &exec));
        }
        warnings
    }

    fn run_cleanup(&self, args: &[&str]) -> Result<Outcome> {
        command::run(self.command(args), CLEANUP_TIMEOUT)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for w in self.cleanup() {
            eprintln!("berth bench: {w}");
        }
    }
}

/// The last resort for a private data root after its engine removed what it could: kills
/// the processes of containers still recorded there (only while the monitor recorded with
/// them is alive, so never a reused pid), unmounts what is mounted under the roots, and
/// removes the containers' cgroups and their parent.
fn sweep_root(data: &Path, exec: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut killed = 0;
    if let Ok(rd) = std::fs::read_dir(data.join("containers")) {
        for e in rd.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path().join("container.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let p = &v["state"]["processes"];
            if let (Some(shim), Some(start), Some(pid)) = (
                p["shim_pid"].as_i64(),
                p["shim_start_time"].as_u64(),
                p["pid"].as_i64(),
            ) {
                if procfs::is_alive(shim as i32, start) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    killed += 1;
                }
            }
        }
    }
    if killed > 0 {
        warnings.push(format!(
            "Killed {killed} container(s) left running under {}",
            data.display()
        ));
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut mounts = mounts_under(data);
    mounts.extend(mounts_under(exec));
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in mounts {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            warnings.push(format!("Cannot unmount {}: {e}", m.display()));
        }
    }
    let parent = ::engine::cgroups::parent_for(data);
    let parents: Vec<PathBuf> = match ::engine::cgroups::Version::detect() {
        ::engine::cgroups::Version::V2 => vec![Path::new("/sys/fs/cgroup").join(&parent)],
        ::engine::cgroups::Version::V1 => std::fs::read_dir("/sys/fs/cgroup")
            .map(|rd| rd.flatten().map(|e| e.path().join(&parent)).collect())
            .unwrap_or_default(),
    };
    for dir in parents.into_iter().filter(|d| d.is_dir()) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for child in rd.flatten().filter(|c| c.path().is_dir()) {
                let _ = std::fs::remove_dir(child.path());
            }
        }
        if let Err(e) = std::fs::remove_dir(&dir) {
            warnings.push(format!("Cannot remove the cgroup {}: {e}", dir.display()));
        }
    }
    warnings
}

/// Mount points at or under `root`.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(root))
        .collect()
}

/// The docker CLI: `docker` on PATH, else /usr/local/bin/docker.
fn docker_cli() -> Result<PathBuf> {
    which("docker")
        .or_else(|| Some(PathBuf::from("/usr/local/bin/docker")).filter(|p| p.is_file()))
        .context("No docker CLI on PATH")
}

/// The first executable `name` on PATH.
pub(super) fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether a `tcp://` or `http://` docker host is on the loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let rest = host
        .split_once("://")
        .map_or(host, |(_, rest)| rest)
        .trim_end_matches('/');
    let hostname = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.rsplit_once(':').map_or(rest, |(h, _)| h)
    };
    hostname == "localhost"
        || hostname
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_docker_hosts_are_local() {
        assert!(is_loopback_host("tcp://127.0.0.1:2375"));
        assert!(is_loopback_host("tcp://localhost:2375"));
        assert!(is_loopback_host("tcp://[::1]:2375"));
        assert!(is_loopback_host("tcp://127.8.9.10:2376/"));
        assert!(!is_loopback_host("tcp://10.0.0.5:2375"));
        assert!(!is_loopback_host("tcp://docker.example:2375"));
        assert!(!is_loopback_host("ssh://user@host"));
    }

    #[test]
    fn keys_and_value_names_agree() {
        for id in EngineId::ALL {
            let v = id.to_possible_value().unwrap();
            assert_eq!(v.get_name(), id.key());
            assert_eq!(
                serde_json::to_value(id).unwrap(),
                serde_json::Value::String(id.key().to_string())
            );
        }
    }
}
