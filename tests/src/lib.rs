//! The end-to-end harness: a real `berthd` on a temporary socket and root, real containers,
//! the real `docker` CLI, and clean-up that runs even when a test fails.
//!
//! # Every test here needs root, so every test here is ignored by default
//!
//! Namespaces, mounts and cgroups need root, and the tests need the packages
//! `scripts/install-deps.sh` installs (busybox-static, runc, the docker CLI, docker-py). A
//! test is never skipped silently: each one carries the reason it may not run, and
//! `scripts/test.sh` (CI's command, run as root) runs them all with `--run-ignored all`.
//! Write a test as
//!
//! ```ignore
//! #[test]
//! #[ignore = "needs root (run scripts/test.sh as root)"]
//! fn docker_ps_lists_a_created_container() {
//!     let d = Daemon::start();
//!     // ...
//! }
//! ```
//!
//! and a test of both modes inside [`both_modes!`], which adds that attribute itself. Never
//! return early because something is missing: [`Daemon::start`] (and [`require_root`] for a
//! test without a daemon) panics with "needs root (run scripts/test.sh as root)", and a
//! missing package fails with the name of what to install. A unit test of this crate checks
//! that every `#[test]` in `tests/` carries the attribute and that none tests `is_root()`.
//!
//! Run them as root, a file or a test at a time:
//!
//! ```sh
//! cargo nextest run --run-ignored all -p berth-tests --test exec
//! cargo nextest run --run-ignored all -p berth-tests -E 'test(docker_run)'
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod pty;
pub mod registry;

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_BIN_DIR") {
        return dir.into();
    }
    // Test binaries live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for bin in ["berthd", "berth", "berth-shim", "berth-runtime"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
            dir.join(bin).display()
        );
    }
    dir
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A `docker save` archive of a busybox image built from Debian's busybox-static, made once
/// per test process.
pub fn busybox_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        // Shared by every test process of the run; made once, published by rename.
        let dir = bin_dir().join("berth-e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("busybox.tar");
        if out.is_file() {
            return out;
        }
        let tmp = dir.join(format!("busybox.tar.{}", std::process::id()));
        let st = Command::new("bash")
            .arg(repo_root().join("scripts/make-busybox-image.sh"))
            .arg(&tmp)
            .args(["--tag", "busybox:latest"])
            .status()
            .expect("run make-busybox-image.sh");
        assert!(st.success(), "make-busybox-image.sh failed");
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// Where berthd and daemonless commands of the tests pull `docker.io` names from: the discard
/// port on loopback, where nothing listens.
pub const HUB_STANDIN: &str = "http://127.0.0.1:9";

/// How a test reaches the engine: through berthd, or in-process with `berth --daemonless`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Daemon,
    Daemonless,
}

/// Runs each test body once through berthd and once daemonless: every
/// `fn name(mode: Mode) { ... }` inside becomes the tests `name::daemon` and
/// `name::daemonless`, both ignored by default as needing root (see the crate's doc).
#[macro_export]
macro_rules! both_modes {
    ($( $(#[$meta:meta])* fn $name:ident($mode:ident: Mode) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                fn run($mode: $crate::Mode) $body
                #[test]
                #[ignore = "needs root (run scripts/test.sh as root)"]
                fn daemon() {
                    run($crate::Mode::Daemon)
                }
                #[test]
                #[ignore = "needs root (run scripts/test.sh as root)"]
                fn daemonless() {
                    run($crate::Mode::Daemonless)
                }
            }
        )*
    };
}

/// A data root and exec root for a test, with a running berthd on its own socket (or, in
/// [`Mode::Daemonless`], no daemon: `berth` runs `--daemonless` on the roots). Dropping it
/// removes every container made, stops berthd, and removes mounts, cgroups and directories.
pub struct Daemon {
    pub root: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
    pub runtime: String,
    pub mode: Mode,
    /// Environment given to berthd and to daemonless commands.
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts a daemon and loads the busybox image into it.
    pub fn start() -> Self {
        Self::start_with_runtime("berth")
    }

    /// Starts a daemon whose containers use `runtime` by default.
    pub fn start_with_runtime(runtime: &str) -> Self {
        Self::start_as(Mode::Daemon, runtime)
    }

    /// Roots with busybox loaded, reached as `mode` says (a berthd started for
    /// [`Mode::Daemon`]).
    pub fn start_in(mode: Mode) -> Self {
        Self::start_as(mode, "berth")
    }

    /// [`Daemon::start_in`] with environment variables for berthd and daemonless commands
    /// (`BERTH_REGISTRY_TIMEOUT=2`, say).
    pub fn start_in_env(mode: Mode, env: &[(&str, &str)]) -> Self {
        Self::start_full(mode, "berth", env)
    }

    fn start_as(mode: Mode, runtime: &str) -> Self {
        Self::start_full(mode, runtime, &[])
    }

    fn start_full(mode: Mode, runtime: &str, env: &[(&str, &str)]) -> Self {
        require_root();
        let root = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap();
        let socket = root.path().join("berth.sock");
        let mut d = Self {
            root,
            socket,
            child: None,
            runtime: runtime.to_string(),
            mode,
            // Docker Hub names go to a loopback port that refuses: no test reaches off
            // the machine, and an image that is not there fails at once.
            env: std::iter::once(&("BERTH_REGISTRY_HUB", HUB_STANDIN))
                .chain(env)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        if mode == Mode::Daemon {
            d.spawn();
        }
        let out = d.berth(&["load", "-i", busybox_archive().to_str().unwrap()]);
        assert!(
            out.status.success(),
            "load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    pub fn data_root(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.root.path().join("exec")
    }

    /// Starts the berthd process and waits for its socket to answer.
    pub fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// Starts the berthd process; its log if it does not come up (or exits).
    pub fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("berthd.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new(bin_dir().join("berthd"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("--pidfile")
            .arg(self.root.path().join("berthd.pid"))
            .args(["--default-runtime", &self.runtime, "--log-level", "debug"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start berthd: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.request("GET", "/_ping", &[], b"") {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("berthd exited with {st}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("berthd did not answer within 20 s: {}", self.log()))
    }

    /// The running berthd's pid.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops berthd with SIGTERM and waits for it (containers keep running).
    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills berthd with SIGKILL (as a crash would).
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The pid of the running berthd.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("berthd is not running").id() as i32
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("berthd.log")).unwrap_or_default()
    }

    /// The `DOCKER_HOST`/`BERTH_HOST` value for this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A `berth` command pointed at this daemon (daemonless on the roots in
    /// [`Mode::Daemonless`]).
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        if self.mode == Mode::Daemonless {
            return self.daemonless_cmd(args);
        }
        let mut c = Command::new(bin_dir().join("berth"));
        c.env("BERTH_HOST", self.host())
            .env_remove("BERTH_DAEMONLESS")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// A `berth --daemonless` command on this data root and exec root, whatever the mode.
    pub fn daemonless_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin_dir().join("berth"));
        c.env_remove("BERTH_HOST")
            .env_remove("BERTH_DAEMONLESS")
            .arg("--daemonless")
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Runs `berth --daemonless` with `args` on this data root, whatever the mode.
    pub fn daemonless(&self, args: &[&str]) -> Output {
        run_with_timeout(self.daemonless_cmd(args), Duration::from_secs(120))
    }

    /// Runs `berth` with `args`.
    pub fn berth(&self, args: &[&str]) -> Output {
        run_with_timeout(self.berth_cmd(args), Duration::from_secs(120))
    }

    /// A real `docker` CLI command pointed at this daemon.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        assert_eq!(self.mode, Mode::Daemon, "the docker CLI needs berthd");
        let mut c = Command::new(docker_binary());
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs the real `docker` CLI with `args`.
    pub fn docker(&self, args: &[&str]) -> Output {
        run_with_timeout(self.docker_cmd(args), Duration::from_secs(120))
    }

    /// `berth inspect -f FORMAT NAME` in this daemon's mode (through berthd or
    /// daemonless), trimmed; panics if it fails.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        ok(&self.berth(&["inspect", "-f", format, name]))
            .trim()
            .to_string()
    }

    /// `docker inspect -f FORMAT NAME` through berthd, trimmed; panics if it fails.
    pub fn docker_inspect(&self, name: &str, format: &str) -> String {
        ok(&self.docker(&["inspect", "-f", format, name]))
            .trim()
            .to_string()
    }

    /// One HTTP/1.1 request on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        http(&self.socket, method, path, headers, body)
    }

    /// The ids of every container (`ps -aq --no-trunc` through the API, or daemonless).
    pub fn container_ids(&self) -> Vec<String> {
        if self.mode == Mode::Daemonless {
            let out = self.berth(&["ps", "-aq", "--no-trunc"]);
            return text(&out.stdout).lines().map(String::from).collect();
        }
        let r = self.request("GET", "/containers/json?all=1", &[], b"");
        match r {
            Ok(r) if r.status == 200 => serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c["Id"].as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Removes every container by force, through the API (or daemonless).
    pub fn remove_all_containers(&self) {
        if self.mode == Mode::Daemonless {
            let ids = self.container_ids();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.berth(&args);
            }
            return;
        }
        for id in self.container_ids() {
            let _ = self.request("DELETE", &format!("/containers/{id}?force=1"), &[], b"");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A test that stopped the daemon: bring it back to remove what it made.
        if self.mode == Mode::Daemon && self.child.is_none() && self.try_spawn().is_err() {
            self.child = None;
        }
        if self.child.is_some() || self.mode == Mode::Daemonless {
            self.remove_all_containers();
        }
        self.stop_daemon();
        cleanup_root(&self.data_root(), &self.exec_root());
        // The engine's cgroup parent for this data root, now empty.
        let parent = engine::cgroups::parent_for(&self.data_root());
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in rd.flatten() {
                let _ = std::fs::remove_dir(c.path().join(&parent));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&parent));
    }
}

/// The last resort after a test: kills processes of containers still recorded under the data
/// root (only pids whose start time matches the record), unmounts what is mounted under the
/// roots, and removes the containers' cgroups.
pub fn cleanup_root(data_root: &Path, exec_root: &Path) {
    let containers = data_root.join("containers");
    if let Ok(rd) = std::fs::read_dir(&containers) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if let Ok(text) = std::fs::read_to_string(e.path().join("container.json")) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let p = &v["state"]["processes"];
                    if let (Some(shim), Some(start)) =
                        (p["shim_pid"].as_i64(), p["shim_start_time"].as_u64())
                    {
                        if start_time(shim as i32) == Some(start) {
                            if let Some(pid) = p["pid"].as_i64() {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(pid as i32),
                                    nix::sys::signal::Signal::SIGKILL,
                                );
                            }
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
            remove_cgroups(&id);
        }
    }
    for root in [data_root, exec_root] {
        let mut mounts = mounts_under(root);
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn remove_cgroups(id: &str) {
    for ctrl in [
        "",
        "memory",
        "pids",
        "cpu,cpuacct",
        "cpuset",
        "freezer",
        "devices",
        "blkio",
        "cpu",
        "cpuacct",
        "net_cls,net_prio",
        "perf_event",
        "hugetlb",
        "rdma",
        "misc",
        "systemd",
    ] {
        if let Some(dir) = cgroup_dir(ctrl, id) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The directory of container `id`'s cgroup for a v1 controller (or under the v2 root when
/// `ctrl` is empty): `/sys/fs/cgroup/<ctrl>/berth*/<id>`, whatever the engine's parent.
pub fn cgroup_dir(ctrl: &str, id: &str) -> Option<PathBuf> {
    let base = Path::new("/sys/fs/cgroup").join(ctrl);
    std::fs::read_dir(&base)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("berth"))
        .map(|e| e.path().join(id))
        .find(|p| p.is_dir())
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

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The docker CLI to test against.
pub fn docker_binary() -> PathBuf {
    std::env::var_os("BERTH_TEST_DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/docker"))
}

/// Runs a command, killing it (by its own pid) if it takes longer than `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let st = child.wait().unwrap();
            panic!("{cmd:?} took longer than {timeout:?} (killed: {st})");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// A response read by [`http`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A minimal HTTP/1.1 client over a Unix socket (Content-Length and chunked bodies).
pub fn http(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // A server may answer and close before taking the whole body (a refused upload):
    // the answer is what matters, so read it even if the write failed.
    let _ = s.write_all(body);
    read_response(&mut BufReader::new(s), method == "HEAD")
}

/// Reads one response.
pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> std::io::Result<HttpResponse> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 || status == 101 {
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk)?;
            body.extend(chunk);
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; len];
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a command succeeded, showing its output if not.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Whether this process runs as root. A test does not branch on it: it calls
/// [`require_root`] (or [`Daemon::start`], which does) and is marked ignored.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test, saying why, unless it runs as root (namespaces, mounts, cgroups). A test
/// that needs root is marked `#[ignore = "needs root (run scripts/test.sh as root)"]` and
/// calls this first (or [`Daemon::start`], which does), so it never passes without running.
pub fn require_root() {
    assert!(is_root(), "needs root (run scripts/test.sh as root)");
}

/// Runs `cmd` with `input` on its stdin (then closed) and collects its output; at most 60 s.
pub fn with_input(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Polls `cond` every 50 ms until it holds, at most `timeout`; whether it did.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Polls `cond` until it holds; panics naming `what` after 30 s.
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        eventually(Duration::from_secs(30), cond),
        "timed out waiting for {what}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end-to-end test files, with their text.
    fn test_files() -> Vec<(PathBuf, String)> {
        let dir = repo_root().join("tests/tests");
        let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no test files in {}", dir.display());
        files
    }

    /// The policy of the crate's doc, checked as any user runs the tests: every end-to-end
    /// test says why it may not run, and none passes by returning early when not root.
    #[test]
    fn every_end_to_end_test_is_ignored_with_its_reason() {
        let mut tests = 0;
        let mut bad = Vec::new();
        for (path, text) in test_files() {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                let at = format!("{}:{}", path.display(), i + 1);
                if line.contains("is_root()") {
                    bad.push(format!(
                        "{at}: tests `is_root()`; call berth_tests::require_root() (or Daemon::start) instead"
                    ));
                }
                if *line != "#[test]" {
                    continue;
                }
                tests += 1;
                let attributes = lines[i + 1..].iter().take_while(|l| l.starts_with("#["));
                if !attributes
                    .clone()
                    .any(|a| a.starts_with("#[ignore = \"") && a.ends_with("\"]"))
                {
                    bad.push(format!(
                        "{at}: add #[ignore = \"needs root (run scripts/test.sh as root)\"] below #[test]"
                    ));
                }
            }
        }
        assert!(tests > 0, "no #[test] found");
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
