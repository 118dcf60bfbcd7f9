//! End-to-end tests: real busybox containers started through `spawn()` and `berth-shim`,
//! once with `berth-runtime` and once with `/usr/sbin/runc`.
//!
//! They need root: each is marked ignored with that reason and fails, saying so, when run
//! without it (`scripts/test.sh` runs them as root with `--run-ignored all`). Every container
//! is owned by a [`TestContainer`] guard whose `Drop` kills what is left in its cgroup,
//! deletes it from the runtime and removes its cgroup directories, even when the test
//! fails.
//!
//! `berth-shim` is this package's binary (`CARGO_BIN_EXE_berth-shim`). `berth-runtime`
//! belongs to another package, which Cargo does not build for these tests: the first
//! test that needs it runs `cargo build -p berth-runtime` (a no-op when fresh) with the
//! cargo running us, into our target directory, and takes `target/<profile>/berth-runtime`
//! beside the test binary's `deps` directory. `BERTH_RUNTIME=/path` skips the build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_shim::{ExitStatus, LogEntry, Ready, ShimConfig};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");
const RUNC: &str = "/usr/sbin/runc";
const CGROUP_PARENT: &str = "berth-test";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Fails the test, saying why, unless it runs as root. The tests that call it are marked
/// ignored with the reason; `scripts/test.sh` (as root) runs them.
fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (run scripts/test.sh as root)"
    );
}

fn berth_runtime() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("BERTH_RUNTIME") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "berth-runtime", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p berth-runtime");
        assert!(
            status.success(),
            "cargo build -p berth-runtime failed: {status}"
        );
        let path = profile_dir.join("berth-runtime");
        assert!(path.exists(), "no {path:?} after building it");
        path
    })
    .clone()
}

/// Which runtime a test drives.
#[derive(Clone, Copy, Debug)]
enum Runtime {
    Berth,
    Runc,
}

impl Runtime {
    fn binary(self) -> PathBuf {
        match self {
            Runtime::Berth => berth_runtime(),
            Runtime::Runc => {
                assert!(
                    Path::new(RUNC).is_file(),
                    "{RUNC} is missing: scripts/install-deps.sh installs Debian's runc"
                );
                PathBuf::from(RUNC)
            }
        }
    }

    fn short(self) -> &'static str {
        match self {
            Runtime::Berth => "berth",
            Runtime::Runc => "runc",
        }
    }
}

/// What a test container runs and under which limits.
struct Spec<'a> {
    args: &'a [&'a str],
    memory_limit: Option<i64>,
    pid_namespace: bool,
    log_max_size: Option<u64>,
    log_max_files: u32,
}

impl<'a> Spec<'a> {
    fn new(args: &'a [&'a str]) -> Self {
        Self {
            args,
            memory_limit: None,
            pid_namespace: true,
            log_max_size: None,
            log_max_files: 1,
        }
    }
}

/// Live guards in this process; the shared `berth-test` cgroup parents are removed when
/// the last one goes, under the same lock that new containers take before starting, so
/// no test removes a parent another is about to create a cgroup in.
static LIVE: Mutex<usize> = Mutex::new(0);

/// One container under test and everything it may leave behind.
struct TestContainer {
    id: String,
    runtime: Runtime,
    dir: tempfile::TempDir,
    config: ShimConfig,
    ready: Option<Ready>,
}

impl TestContainer {
    /// Builds the bundle and starts the container through `spawn()`.
    fn start(name: &str, runtime: Runtime, spec: Spec<'_>) -> Self {
        let id = format!("{name}-{}-{}", runtime.short(), std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("berth-shim-test")
            .tempdir()
            .unwrap();
        let bundle = dir.path().join("bundle");
        write_bundle(&bundle, &id, &spec);
        let config = ShimConfig {
            id: id.clone(),
            bundle,
            runtime: runtime.binary(),
            runtime_root: dir.path().join("runtime-root"),
            log_path: dir.path().join("container-json.log"),
            log_max_size: spec.log_max_size,
            log_max_files: spec.log_max_files,
            exit_file: dir.path().join("exit.json"),
            shim_log: dir.path().join("shim.log"),
            tty: false,
            stdin: false,
            console_size: None,
        };
        let config_path = dir.path().join("shim.json");
        std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
        *LIVE.lock().unwrap() += 1;
        let mut container = Self {
            id,
            runtime,
            dir,
            config,
            ready: None,
        };
        let ready = berth_shim::spawn(Path::new(SHIM), &config_path, None)
            .unwrap_or_else(|e| panic!("spawn failed: {e}; shim log: {}", container.shim_log()));
        container.ready = Some(ready);
        container
    }

    fn ready(&self) -> &Ready {
        self.ready.as_ref().unwrap()
    }

    fn pids(&self) -> (i32, i32) {
        match self.ready() {
            Ready::Started {
                shim_pid,
                container_pid,
            } => (*shim_pid, *container_pid),
            other => panic!(
                "container did not start: {other:?}; shim log: {}",
                self.shim_log()
            ),
        }
    }

    fn shim_log(&self) -> String {
        std::fs::read_to_string(&self.config.shim_log).unwrap_or_default()
    }

    /// Waits for the exit file, then for the shim to finish (it deletes the container).
    fn wait_exit(&self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = ExitStatus::read(&self.config.exit_file).unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "no exit file after 30s; shim log: {}",
                self.shim_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Ready::Started { shim_pid, .. } = self.ready() {
            assert!(
                wait_gone(*shim_pid, Duration::from_secs(10)),
                "shim still running after writing the exit file"
            );
        }
        status
    }

    /// Every entry of a log file (`suffix` "" for the current one, ".1", …).
    fn log_entries(&self, suffix: &str) -> Vec<LogEntry> {
        let mut path = self.config.log_path.clone().into_os_string();
        path.push(suffix);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    fn runtime_state_dir(&self) -> PathBuf {
        self.config.runtime_root.join(&self.id)
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        // Whatever is still in the container's cgroups dies first…
        for dir in cgroup_dirs(&self.id) {
            kill_cgroup(&dir);
        }
        // …then the shim notices, records and deletes; give it a moment, then make sure.
        if let Some(Ready::Started { shim_pid, .. }) = self.ready {
            if !wait_gone(shim_pid, Duration::from_secs(10)) {
                let _ = kill(Pid::from_raw(shim_pid), Signal::SIGKILL);
            }
        }
        let _ = Command::new(self.runtime.binary())
            .arg("--root")
            .arg(&self.config.runtime_root)
            .args(["delete", "--force", &self.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        for dir in cgroup_dirs(&self.id) {
            remove_cgroup(&dir);
        }
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        *live -= 1;
        if *live == 0 {
            for controller in controllers() {
                let _ = std::fs::remove_dir(controller.join(CGROUP_PARENT));
            }
        }
        // The temp dir (bundle, logs, runtime root) goes with `self.dir`.
        let _ = &self.dir;
    }
}

fn write_bundle(bundle: &Path, id: &str, spec: &Spec<'_>) {
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap_or_else(|e| {
        panic!("cannot copy /bin/busybox ({e}): scripts/install-deps.sh installs busybox-static")
    });
    for applet in ["sh", "echo", "true", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let mut namespaces = vec![
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "network"}),
    ];
    if spec.pid_namespace {
        namespaces.insert(0, json!({"type": "pid"}));
    }
    let mut linux = json!({
        "cgroupsPath": format!("/{CGROUP_PARENT}/{id}"),
        "namespaces": namespaces,
    });
    if let Some(limit) = spec.memory_limit {
        // swap = limit: no swap, so the hog meets the OOM killer.
        linux["resources"] = json!({"memory": {"limit": limit, "swap": limit}});
    }
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": spec.args,
            "env": ["PATH=/bin", "HOME=/"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        ],
        "linux": linux,
    });
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers, the v2 mount).
fn controllers() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        out.push(PathBuf::from(CGROUP_ROOT));
    }
    if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
        for e in entries.flatten() {
            let p = e.path();
            if p.join("cgroup.procs").exists() {
                out.push(p);
            }
        }
    }
    out
}

fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    controllers()
        .into_iter()
        .map(|c| c.join(CGROUP_PARENT).join(id))
        .filter(|d| d.exists())
        .collect()
}

fn kill_cgroup(dir: &Path) {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn remove_cgroup(dir: &Path) {
    // Killed processes take a moment to leave the cgroup.
    for _ in 0..50 {
        kill_cgroup(dir);
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("warning: could not remove cgroup {dir:?}");
}

/// Waits until `pid` has exited (gone, or a zombie its parent has yet to reap).
fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                if state == Some('Z') {
                    return true;
                }
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vm_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---- the cases, run with each runtime ----

fn echo_hello(rt: Runtime) {
    let c = TestContainer::start("echo", rt, Spec::new(&["echo", "hello"]));
    let exit = c.wait_exit();
    assert_eq!(exit.exit_code, 0);
    assert!(!exit.oom_killed);
    chrono::DateTime::parse_from_rfc3339(&exit.finished_at).unwrap();
    assert!(exit.finished_at.ends_with('Z'), "{}", exit.finished_at);
    let entries = c.log_entries("");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].log, "hello\n");
    assert_eq!(entries[0].stream, "stdout");
    chrono::DateTime::parse_from_rfc3339(&entries[0].time).unwrap();
    assert!(
        !c.runtime_state_dir().exists(),
        "the shim deletes the container from the runtime"
    );
    assert!(
        cgroup_dirs(&c.id).is_empty(),
        "the runtime removed the cgroups"
    );
}

fn stderr_and_exit_code(rt: Runtime) {
    let c = TestContainer::start(
        "stderr",
        rt,
        Spec::new(&["sh", "-c", "echo err >&2; printf 'no newline'; exit 3"]),
    );
    let exit = c.wait_exit();
    assert_eq!(exit.exit_code, 3);
    let entries = c.log_entries("");
    let stderr: Vec<_> = entries.iter().filter(|e| e.stream == "stderr").collect();
    assert_eq!(stderr.len(), 1, "{entries:?}");
    assert_eq!(stderr[0].log, "err\n");
    let stdout: Vec<_> = entries.iter().filter(|e| e.stream == "stdout").collect();
    assert_eq!(stdout.len(), 1, "{entries:?}");
    assert_eq!(
        stdout[0].log, "no newline",
        "the partial last line is flushed at EOF"
    );
}

fn stdin_is_empty(rt: Runtime) {
    let c = TestContainer::start("stdin", rt, Spec::new(&["cat"]));
    assert_eq!(c.wait_exit().exit_code, 0, "cat reads EOF at once");
    assert!(c.log_entries("").is_empty());
}

fn missing_binary(rt: Runtime) {
    let c = TestContainer::start("missing", rt, Spec::new(&["nosuchcmd"]));
    match c.ready() {
        Ready::Failed { message } => assert!(
            message.contains(r#"exec: "nosuchcmd": executable file not found in $PATH"#),
            "{message}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // The shim cleans up with `delete --force` and exits without an exit file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.runtime_state_dir().exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!c.runtime_state_dir().exists());
    assert_eq!(ExitStatus::read(&c.config.exit_file).unwrap(), None);
}

fn sigkill_is_137(rt: Runtime) {
    let c = TestContainer::start("sigkill", rt, Spec::new(&["sleep", "1000"]));
    let (shim_pid, container_pid) = c.pids();
    // The shim is detached: its own session, not our child, and the container's parent.
    assert_eq!(
        nix::unistd::getsid(Some(Pid::from_raw(shim_pid)))
            .unwrap()
            .as_raw(),
        shim_pid
    );
    let stat = std::fs::read_to_string(format!("/proc/{container_pid}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ppid, shim_pid,
        "the container is reparented to the subreaper shim"
    );
    if let Some(rss) = vm_rss_kib(shim_pid) {
        eprintln!(
            "berth-shim VmRSS with {} and a sleeping container: {rss} kB",
            rt.short()
        );
    }
    // What an engine's terminal or a dying engine could send does not stop it.
    for signal in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGPIPE] {
        kill(Pid::from_raw(shim_pid), signal).unwrap();
    }
    assert!(
        !wait_gone(shim_pid, Duration::from_millis(200)),
        "the shim died of a signal"
    );
    kill(Pid::from_raw(container_pid), Signal::SIGKILL).unwrap();
    let exit = c.wait_exit();
    assert_eq!(exit.exit_code, 137);
    assert!(!exit.oom_killed);
}

fn oom_is_reported(rt: Runtime) {
    let mut spec = Spec::new(&["sh", "-c", "x=a; while true; do x=$x$x; done"]);
    spec.memory_limit = Some(16 * 1024 * 1024);
    let c = TestContainer::start("oom", rt, spec);
    c.pids();
    let exit = c.wait_exit();
    assert_eq!(exit.exit_code, 137, "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
}

fn log_rotation(rt: Runtime) {
    let mut spec = Spec::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done",
    ]);
    spec.log_max_size = Some(2048);
    spec.log_max_files = 3;
    let c = TestContainer::start("rotate", rt, spec);
    assert_eq!(c.wait_exit().exit_code, 0);
    let current = c.log_entries("");
    assert_eq!(current.last().unwrap().log, "line 299\n");
    let older = c.log_entries(".1");
    let oldest = c.log_entries(".2");
    assert!(!older.is_empty() && !oldest.is_empty());
    let mut third = c.config.log_path.clone().into_os_string();
    third.push(".3");
    assert!(!Path::new(&third).exists(), "max-file 3 keeps three files");
    // Consecutive lines, newest file last: nothing lost or reordered inside the window.
    let all: Vec<String> = oldest
        .iter()
        .chain(&older)
        .chain(&current)
        .map(|e| e.log.clone())
        .collect();
    let first: usize = all[0].trim_start_matches("line ").trim().parse().unwrap();
    for (i, line) in all.iter().enumerate() {
        assert_eq!(line, &format!("line {}\n", first + i));
    }
    for suffix in [".1", ".2"] {
        let mut p = c.config.log_path.clone().into_os_string();
        p.push(suffix);
        let len = std::fs::metadata(&p).unwrap().len();
        assert!((2048..2048 + 200).contains(&len), "{p:?}: {len} bytes");
    }
}

fn leftover_process_does_not_hang_the_shim(rt: Runtime) {
    // Without a pid namespace the background sleep survives the shell and keeps stdout
    // open; the shim stops waiting for EOF after its drain timeout and delete --force
    // kills the leftover.
    let mut spec = Spec::new(&["sh", "-c", "sleep 1000 & echo started"]);
    spec.pid_namespace = false;
    let c = TestContainer::start("leftover", rt, spec);
    c.pids();
    let start = Instant::now();
    let exit = c.wait_exit();
    assert_eq!(exit.exit_code, 0);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(c.log_entries("")[0].log, "started\n");
    assert!(c.shim_log().contains("still open"), "{}", c.shim_log());
}

macro_rules! with_each_runtime {
    ($($case:ident),* $(,)?) => {
        mod berth_runtime {
            $(
                #[test]
                #[ignore = "needs root (run scripts/test.sh as root)"]
                fn $case() {
                    super::require_root();
                    super::$case(super::Runtime::Berth)
                }
            )*
        }
        mod runc {
            $(
                #[test]
                #[ignore = "needs root and runc (run scripts/test.sh as root)"]
                fn $case() {
                    super::require_root();
                    super::$case(super::Runtime::Runc)
                }
            )*
        }
    };
}

with_each_runtime!(
    echo_hello,
    stderr_and_exit_code,
    stdin_is_empty,
    missing_binary,
    sigkill_is_137,
    oom_is_reported,
    log_rotation,
    leftover_process_does_not_hang_the_shim,
);

#[test]
fn a_missing_runtime_is_reported_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    write_bundle(&bundle, "noruntime", &Spec::new(&["true"]));
    let config = ShimConfig {
        id: "noruntime".into(),
        bundle,
        runtime: dir.path().join("no-such-runtime"),
        runtime_root: dir.path().join("root"),
        log_path: dir.path().join("log"),
        log_max_size: None,
        log_max_files: 1,
        exit_file: dir.path().join("exit.json"),
        shim_log: dir.path().join("shim.log"),
        tty: false,
        stdin: false,
        console_size: None,
    };
    let path = dir.path().join("shim.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    match berth_shim::spawn(Path::new(SHIM), &path, None).unwrap() {
        Ready::Failed { message } => assert!(message.contains("no-such-runtime"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unreadable_config_is_reported_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.json");
    match berth_shim::spawn(Path::new(SHIM), &path, None).unwrap() {
        Ready::Failed { message } => assert!(message.contains("missing.json"), "{message}"),
        other => panic!("{other:?}"),
    }
}
