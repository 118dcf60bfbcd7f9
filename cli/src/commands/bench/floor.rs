//! The floor under every start: the bench's busybox container started without an engine,
//! so each engine's `run --rm true` shows how far it is from the limit.
//!
//! - `berth-runtime` alone and `runc` alone start it from a prepared OCI bundle (the image's
//!   root file system unpacked once into a plain directory, and the spec berth's engine
//!   builds for this container, `engine::spec::build`), driven as a shim drives a runtime:
//!   `create`, `start`, wait for the container's process to exit (through a pidfd), `delete`.
//!   Each start gets a cgroup of its own, as with an engine.
//! - `unshare` + `chroot` is the kernel's part alone: the same namespaces and root file
//!   system, no runtime (`unshare --mount --uts --ipc --pid --net --fork chroot ROOT /bin/true`).
//!
//! Everything the floor makes lives under the bench's temporary directory (the root file
//! system, bundles, the runtimes' state directories) or under one cgroup parent of its own
//! in every hierarchy. [`Floor::cleanup`] deletes what a runtime may still hold and removes
//! those cgroups; it runs when the floor is dropped, so also after a failure or Ctrl-C.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::command::{self, Outcome};
use super::progress::Progress;

/// How long one runtime command, or the container's `true`, may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The hostname of the floor's containers.
const HOSTNAME: &str = "floor";
/// The image's `PATH`, as the engine puts it in the container's environment.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A way of starting the container without an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloorId {
    /// berth's own OCI runtime, from a prepared bundle.
    BerthRuntime,
    /// runc, from the same bundle.
    Runc,
    /// No runtime: the kernel's namespaces and a chroot.
    UnshareChroot,
}

impl FloorId {
    /// Every way, in the report's row order.
    pub const ALL: [FloorId; 3] = [FloorId::BerthRuntime, FloorId::Runc, FloorId::UnshareChroot];

    /// The row's heading.
    pub fn label(self) -> &'static str {
        match self {
            FloorId::BerthRuntime => "`berth-runtime` alone",
            FloorId::Runc => "`runc` alone",
            FloorId::UnshareChroot => "`unshare` + `chroot`",
        }
    }

    /// The JSON spelling, also used in container ids.
    pub fn key(self) -> &'static str {
        match self {
            FloorId::BerthRuntime => "berth-runtime",
            FloorId::Runc => "runc",
            FloorId::UnshareChroot => "unshare-chroot",
        }
    }
}

/// One way of starting the container, ready to be timed (or why it cannot be).
pub struct FloorPath {
    pub id: FloorId,
    /// What one sample runs, for the report.
    pub how: String,
    /// Why it cannot be measured on this machine.
    pub unavailable: Option<String>,
    kind: Kind,
}

enum Kind {
    /// An OCI runtime with its own state directory and bundle.
    Runtime {
        binary: PathBuf,
        state: PathBuf,
        bundle: PathBuf,
    },
    Unshare {
        unshare: PathBuf,
        chroot: PathBuf,
    },
    Missing,
}

/// The floor's ways of starting the container, and what they share.
pub struct Floor {
    pub paths: Vec<FloorPath>,
    /// The cgroup parent the runtimes' containers are made under, in every hierarchy.
    pub cgroup_parent: String,
    rootfs: PathBuf,
    /// The spec, with `linux.cgroupsPath` set for each start.
    spec: serde_json::Value,
    cgroups: ::engine::cgroups::Cgroups,
    /// Container ids a runtime may still hold: (index in `paths`, id).
    live: Mutex<Vec<(usize, String)>>,
    next: AtomicUsize,
    prefix: String,
    progress: Progress,
}

impl Floor {
    /// Unpacks the image of `archive` (a `docker save` archive) under `tmp/floor`, builds
    /// the bundle's spec and finds the runtimes: `berth-runtime` next to `berth`, `runc`,
    /// `unshare` and `chroot` on PATH. Container ids and the cgroup parent start with
    /// `prefix`.
    pub fn prepare(
        tmp: &Path,
        archive: &Path,
        berth: &Path,
        prefix: &str,
        progress: Progress,
    ) -> Result<Self> {
        let dir = tmp.join("floor");
        let rootfs = dir.join("rootfs");
        unpack_image(archive, &dir.join("image"), &rootfs)?;
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc)
            .with_context(|| format!("Cannot create {}", etc.display()))?;
        let hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
        for (name, content) in [
            ("hostname", format!("{HOSTNAME}\n")),
            ("hosts", hosts.to_string()),
            ("resolv.conf", String::new()),
        ] {
            std::fs::write(etc.join(name), content)
                .with_context(|| format!("Cannot write {}", etc.join(name).display()))?;
        }
        let cgroup_parent = format!("{prefix}floor");
        let cgroups = ::engine::cgroups::Cgroups::new(&cgroup_parent);
        let user = ::engine::rootfs::ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home: "/root".to_string(),
        };
        let host_config = api_types::HostConfig {
            network_mode: "none".to_string(),
            auto_remove: true,
            ..Default::default()
        };
        let spec = ::engine::spec::build(&::engine::spec::SpecInput {
            hostname: HOSTNAME,
            args: vec!["true".to_string()],
            env: vec![
                PATH_ENV.to_string(),
                format!("HOSTNAME={HOSTNAME}"),
                "HOME=/root".to_string(),
            ],
            cwd: "/",
            user: &user,
            tty: false,
            rootfs: rootfs.clone(),
            hostname_file: etc.join("hostname"),
            hosts_file: etc.join("hosts"),
            resolv_conf_file: etc.join("resolv.conf"),
            cgroups_path: cgroups.spec_path("unset"),
            host_config: &host_config,
            init: None,
            binds: Vec::new(),
        })
        .context("Cannot build the bundle's spec")?;
        let spec = serde_json::to_value(&spec).context("Cannot write the bundle's spec")?;

        let mut paths = Vec::new();
        for id in FloorId::ALL {
            let runtime = |binary: Option<PathBuf>, missing: String| -> Result<FloorPath> {
                let Some(binary) = binary else {
                    return Ok(FloorPath {
                        id,
                        how: String::new(),
                        unavailable: Some(missing),
                        kind: Kind::Missing,
                    });
                };
                let bundle = dir.join(format!("bundle-{}", id.key()));
                std::fs::create_dir_all(&bundle)
                    .with_context(|| format!("Cannot create {}", bundle.display()))?;
                Ok(FloorPath {
                    id,
                    how: format!(
                        "`{} create`, `start`, wait for the exit, `delete`",
                        binary.display()
                    ),
                    unavailable: None,
                    kind: Kind::Runtime {
                        state: dir.join(format!("state-{}", id.key())),
                        binary,
                        bundle,
                    },
                })
            };
            paths.push(match id {
                FloorId::BerthRuntime => {
                    let bin = berth.with_file_name("berth-runtime");
                    let missing = format!(
                        "berth-runtime is not next to berth ({} is missing)",
                        bin.display()
                    );
                    runtime(Some(bin).filter(|b| b.is_file()), missing)?
                }
                FloorId::Runc => runtime(which("runc"), "runc is not on PATH".to_string())?,
                FloorId::UnshareChroot => match (which("unshare"), which("chroot")) {
                    (Some(unshare), Some(chroot)) => FloorPath {
                        id,
                        how: format!(
                            "`{} --mount --uts --ipc --pid --net --fork {} ROOT /bin/true`",
                            unshare.display(),
                            chroot.display()
                        ),
                        unavailable: None,
                        kind: Kind::Unshare { unshare, chroot },
                    },
                    _ => FloorPath {
                        id,
                        how: String::new(),
                        unavailable: Some("unshare or chroot is not on PATH".to_string()),
                        kind: Kind::Missing,
                    },
                },
            });
        }
        Ok(Self {
            paths,
            cgroup_parent,
            rootfs,
            spec,
            cgroups,
            live: Mutex::default(),
            next: AtomicUsize::new(0),
            prefix: prefix.to_string(),
            progress,
        })
    }

    /// Starts the container once the `i`th way and waits until it is gone; the wall time.
    pub fn sample(&self, i: usize) -> Result<Duration> {
        let path = &self.paths[i];
        let took = match &path.kind {
            Kind::Runtime {
                binary,
                state,
                bundle,
            } => self.runtime_sample(i, binary, state, bundle),
            Kind::Unshare { unshare, chroot } => self.unshare_sample(unshare, chroot),
            Kind::Missing => Err(anyhow!(path
                .unavailable
                .clone()
                .unwrap_or_else(|| "unavailable".to_string()))),
        };
        self.progress.tick();
        took
    }

    fn runtime_sample(
        &self,
        i: usize,
        binary: &Path,
        state: &Path,
        bundle: &Path,
    ) -> Result<Duration> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}floor-{}-{n}", self.prefix, self.paths[i].id.key());
        // The bundle is prepared before the clock starts: a fresh cgroup for each start.
        let mut spec = self.spec.clone();
        spec["linux"]["cgroupsPath"] = self.cgroups.spec_path(&id).into();
        let config = bundle.join("config.json");
        std::fs::write(&config, serde_json::to_vec(&spec)?)
            .with_context(|| format!("Cannot write {}", config.display()))?;
        let pid_file = bundle.join("container.pid");
        let _ = std::fs::remove_file(&pid_file);
        let stderr = bundle.join("runtime.stderr");
        let runtime = |args: &[&std::ffi::OsStr]| -> Result<()> {
            let out = run_runtime(binary, state, args, &stderr)?;
            if !out.status.success() {
                let name = binary.file_name().unwrap_or_default().to_string_lossy();
                bail!(
                    "`{name} {}` failed: {}",
                    args.first().map_or("".into(), |a| a.to_string_lossy()),
                    out.reason()
                );
            }
            Ok(())
        };
        self.live.lock().unwrap().push((i, id.clone()));
        let started = Instant::now();
        let run = || -> Result<()> {
            runtime(&[
                "create".as_ref(),
                "--bundle".as_ref(),
                bundle.as_os_str(),
                "--pid-file".as_ref(),
                pid_file.as_os_str(),
                id.as_ref(),
            ])?;
            let pid: i32 = std::fs::read_to_string(&pid_file)
                .with_context(|| format!("Cannot read {}", pid_file.display()))?
                .trim()
                .parse()
                .context("The runtime's pid file does not hold a pid")?;
            // Opened while the process waits for `start`, so it cannot be another's pid.
            let pidfd = ::engine::process::pidfd_open(pid)
                .with_context(|| format!("Cannot open a pidfd for the container's pid {pid}"))?;
            runtime(&["start".as_ref(), id.as_ref()])?;
            wait_readable(pidfd.as_fd(), TIMEOUT)
                .context("The container's process did not exit")?;
            runtime(&["delete".as_ref(), id.as_ref()])
        };
        let outcome = run();
        let took = started.elapsed();
        if outcome.is_err() {
            let _ = run_runtime(
                binary,
                state,
                &["delete".as_ref(), "--force".as_ref(), id.as_ref()],
                &stderr,
            );
        }
        // What a runtime's delete may leave of the cgroup (a hierarchy still busy).
        self.cgroups.remove(&id);
        self.live.lock().unwrap().retain(|(_, l)| *l != id);
        outcome.map(|()| took)
    }

    fn unshare_sample(&self, unshare: &Path, chroot: &Path) -> Result<Duration> {
        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--uts", "--ipc", "--pid", "--net", "--fork"])
            .arg(chroot)
            .arg(&self.rootfs)
            .arg("/bin/true");
        let out = command::run(cmd, TIMEOUT)?;
        if !out.status.success() {
            bail!("`unshare … chroot ROOT /bin/true` failed: {}", out.reason());
        }
        Ok(out.elapsed)
    }

    /// Deletes every container a runtime may still hold and removes the floor's cgroups;
    /// returns what it could not do. The files are under the bench's temporary directory,
    /// which the bench removes.
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (i, id) in std::mem::take(&mut *self.live.lock().unwrap()) {
            if let Kind::Runtime {
                binary,
                state,
                bundle,
            } = &self.paths[i].kind
            {
                let args = ["delete".as_ref(), "--force".as_ref(), id.as_ref()];
                match run_runtime(binary, state, &args, &bundle.join("runtime.stderr")) {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => warnings.push(format!("Cannot delete {id}: {}", o.reason())),
                    Err(e) => warnings.push(format!("Cannot delete {id}: {e:#}")),
                }
            }
            self.cgroups.remove(&id);
        }
        for dir in cgroup_parents(&self.cgroup_parent) {
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
}

impl Drop for Floor {
    fn drop(&mut self) {
        for w in self.cleanup() {
            eprintln!("berth bench: {w}");
        }
    }
}

/// Runs one runtime command with its own state directory; its standard error (and the
/// container's, which inherits it) goes to `stderr` and is read back into the outcome.
fn run_runtime(
    binary: &Path,
    state: &Path,
    args: &[&std::ffi::OsStr],
    stderr: &Path,
) -> Result<Outcome> {
    let file = std::fs::File::create(stderr)
        .with_context(|| format!("Cannot create {}", stderr.display()))?;
    let mut cmd = Command::new(binary);
    cmd.arg("--root")
        .arg(state)
        .args(args)
        .stdout(Stdio::null())
        .stderr(file);
    let mut out = command::run_with_stdio(cmd, TIMEOUT)?;
    out.stderr = std::fs::read(stderr).unwrap_or_default();
    Ok(out)
}

/// Waits until `fd` (a pidfd) is readable: its process has exited.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("still running after {} s", timeout.as_secs());
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(e).context("Cannot poll the pidfd"),
        }
    }
}

/// Unpacks the layers of the `docker save` archive `archive` in order into `rootfs`, with
/// their owners (GNU tar as root), through `scratch` (removed afterwards).
fn unpack_image(archive: &Path, scratch: &Path, rootfs: &Path) -> Result<()> {
    for d in [scratch, rootfs] {
        std::fs::create_dir_all(d).with_context(|| format!("Cannot create {}", d.display()))?;
    }
    let tar = |args: &[&std::ffi::OsStr]| -> Result<()> {
        let mut cmd = Command::new("tar");
        cmd.args(args);
        let out = command::run(cmd, TIMEOUT)?;
        if !out.status.success() {
            bail!("Cannot unpack the busybox image: tar: {}", out.reason());
        }
        Ok(())
    };
    tar(&[
        "-xf".as_ref(),
        archive.as_os_str(),
        "-C".as_ref(),
        scratch.as_os_str(),
    ])?;
    let manifest: Vec<BTreeMap<String, serde_json::Value>> = serde_json::from_slice(
        &std::fs::read(scratch.join("manifest.json")).context("The image has no manifest.json")?,
    )
    .context("The image's manifest.json is not a docker save manifest")?;
    let layers: Vec<&str> = manifest
        .first()
        .and_then(|m| m.get("Layers"))
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if layers.is_empty() {
        bail!("The image's manifest.json lists no layers");
    }
    for layer in layers {
        let layer = scratch.join(layer);
        if !layer.starts_with(scratch) || layer.components().any(|c| c.as_os_str() == "..") {
            bail!("The image's manifest.json names a layer outside the archive");
        }
        tar(&[
            "--numeric-owner".as_ref(),
            "-xpf".as_ref(),
            layer.as_os_str(),
            "-C".as_ref(),
            rootfs.as_os_str(),
        ])?;
    }
    std::fs::remove_dir_all(scratch).with_context(|| format!("Cannot remove {}", scratch.display()))
}

/// The floor's cgroup parent in every hierarchy that has it.
fn cgroup_parents(parent: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(parent)];
    if let Ok(rd) = std::fs::read_dir(root) {
        dirs.extend(rd.flatten().map(|e| e.path().join(parent)));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The first executable `name` on PATH, or in /usr/sbin or /sbin (runc and chroot live
/// there, and a user's PATH may not have them).
fn which(name: &str) -> Option<PathBuf> {
    super::engine::which(name).or_else(|| {
        ["/usr/sbin", "/sbin"]
            .into_iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_json_spelling() {
        for id in FloorId::ALL {
            assert_eq!(
                serde_json::to_value(id).unwrap(),
                serde_json::Value::String(id.key().to_string())
            );
        }
    }

    #[test]
    fn a_pidfd_is_readable_once_its_process_exits() {
        let mut child = Command::new("sleep").arg("0.05").spawn().unwrap();
        let pidfd = ::engine::process::pidfd_open(child.id() as i32).unwrap();
        wait_readable(pidfd.as_fd(), Duration::from_secs(10)).unwrap();
        assert!(child.try_wait().unwrap().is_some());
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let pidfd = ::engine::process::pidfd_open(child.id() as i32).unwrap();
        let err = wait_readable(pidfd.as_fd(), Duration::from_millis(100)).unwrap_err();
        assert!(err.to_string().contains("still running"), "{err}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
