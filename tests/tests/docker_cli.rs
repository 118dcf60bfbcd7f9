//! The real docker CLI (28.2.2) against berthd, unchanged.

use berth_tests::{ok, text, Daemon};

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_run_echo_prints_hello() {
    let d = Daemon::start();
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!(ok(&out), "hello\n");
    assert!(
        d.container_ids().is_empty(),
        "--rm left the container behind"
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_run_returns_the_exit_code_and_stderr() {
    let d = Daemon::start();
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_unknown_image_exits_125() {
    let d = Daemon::start();
    let out = d.docker(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("Unable to find image 'nosuchimage:latest' locally"));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_missing_command_exits_127() {
    let d = Daemon::start();
    let out = d.docker(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("executable file not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_name_conflict_exits_125_with_dockers_message() {
    let d = Daemon::start();
    ok(&d.docker(&["create", "--name", "taken", "busybox", "true"]));
    let out = d.docker(&["run", "--name", "taken", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("Conflict. The container name \"/taken\" is already in use by container"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_detached_lifecycle_ps_logs_stop_rm() {
    let d = Daemon::start();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]));
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = ok(&d.docker(&["ps", "--format", "{{.Names}} {{.State}}"]));
    assert_eq!(ps.trim(), "web running");
    // Logs arrive once the shell has written them.
    let mut logs = String::new();
    for _ in 0..100 {
        logs = ok(&d.docker(&["logs", "web"]));
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(logs, "started\n");
    let status = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}} {{.Config.Hostname}}",
        "web",
    ]));
    assert_eq!(status.trim(), format!("running true {}", &id[..12]));
    // sleep as PID 1 ignores SIGTERM: stop must fall back to SIGKILL after the timeout.
    let t0 = std::time::Instant::now();
    ok(&d.docker(&["stop", "-t", "1", "web"]));
    assert!(t0.elapsed() >= std::time::Duration::from_secs(1));
    let code = ok(&d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "web"]));
    assert_eq!(code.trim(), "137");
    ok(&d.docker(&["rm", "web"]));
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_rm_force_removes_a_running_container() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "busy", "busybox", "sleep", "300"]));
    let out = d.docker(&["rm", "busy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("You cannot remove a running container"));
    ok(&d.docker(&["rm", "-f", "busy"]));
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_version_and_info_talk_to_berthd() {
    let d = Daemon::start();
    let v = ok(&d.docker(&["version", "--format", "{{.Server.APIVersion}}"]));
    assert_eq!(v.trim(), "1.41");
    let info = ok(&d.docker(&[
        "info",
        "--format",
        "{{.Images}} {{.CgroupVersion}} {{.LoggingDriver}}",
    ]));
    let cg = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    assert_eq!(info.trim(), format!("1 {cg} json-file"));
    let images = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert_eq!(images.trim(), "busybox:latest");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_logs_follow_streams_until_exit() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick $i; sleep 0.2; done",
    ]));
    let out = d.docker(&["logs", "-f", "ticker"]);
    assert_eq!(ok(&out), "tick 1\ntick 2\ntick 3\n");
    let code = ok(&d.docker(&["wait", "ticker"]));
    assert_eq!(code.trim(), "0");
}

/// `docker ps -s`: what the container wrote (`SizeRw`, each file once) and the whole root
/// with the image (`SizeRootFs`), in docker's "12.3kB (virtual 2MB)" form.
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_ps_s_shows_what_a_container_wrote() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "writer", "busybox", "sleep", "300"]));
    ok(&d.docker(&[
        "exec",
        "writer",
        "sh",
        "-c",
        "head -c 12345 /dev/zero > /big && ln /big /again",
    ]));
    let shown = ok(&d.docker(&["ps", "-s", "--format", "{{.Names}} {{.Size}}"]));
    assert!(
        shown.starts_with("writer 12.3kB (virtual "),
        "docker ps -s showed {shown:?}"
    );
    let list = d
        .request("GET", "/v1.41/containers/json?size=1", &[], b"")
        .unwrap()
        .json();
    let rw = list[0]["SizeRw"].as_i64().unwrap();
    assert!((12345..12345 + 4096).contains(&rw), "SizeRw {rw}");
    let image = d
        .request("GET", "/v1.41/images/busybox/json", &[], b"")
        .unwrap()
        .json()["Size"]
        .as_i64()
        .unwrap();
    assert_eq!(list[0]["SizeRootFs"].as_i64().unwrap(), image + rw);
    // Without size=1 dockerd leaves both out.
    let list = d
        .request("GET", "/v1.41/containers/json", &[], b"")
        .unwrap()
        .json();
    assert!(list[0].get("SizeRw").is_none_or(|v| v.is_null()), "{list}");
    // berth's own CLI shows the same.
    let berth = ok(&d.berth(&["ps", "-s", "--format", "{{.Size}}"]));
    assert_eq!(berth.trim(), shown.trim().trim_start_matches("writer "));
    // inspect -s too, with both CLIs; without -s the sizes are not there.
    let want = format!("{rw} {}", image + rw);
    let format = "{{.SizeRw}} {{.SizeRootFs}}";
    assert_eq!(
        ok(&d.docker(&["inspect", "-s", "-f", format, "writer"])).trim(),
        want
    );
    assert_eq!(
        ok(&d.berth(&["inspect", "-s", "-f", format, "writer"])).trim(),
        want
    );
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{json .SizeRw}}", "writer"])).trim(),
        "null"
    );
}
