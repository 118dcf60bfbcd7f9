//! Restart policies (kept across berthd restarts), live `update`, `--init`, stop signals.

use std::time::{Duration, Instant};

use berth_tests::{ok, text, wait_until, Daemon};

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn on_failure_restarts_up_to_the_limit() {
    let d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 2",
    ]));
    wait_until("three restarts", || {
        d.inspect("flaky", "{{.RestartCount}} {{.State.Status}}") == "3 exited"
    });
    assert_eq!(d.inspect("flaky", "{{.State.ExitCode}}"), "2");
    assert_eq!(ok(&d.berth(&["logs", "flaky"])), "run\nrun\nrun\nrun\n");
    // Success is not a failure: no restart.
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]));
    wait_until("exit", || {
        d.inspect("fine", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.inspect("fine", "{{.RestartCount}}"), "0");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn always_restarts_until_stopped_and_after_a_daemon_restart() {
    let mut d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    ]));
    wait_until("two restarts", || {
        d.inspect("phoenix", "{{.RestartCount}}")
            .parse::<i64>()
            .unwrap()
            >= 2
    });
    ok(&d.berth(&["stop", "-t", "1", "phoenix"]));
    let count = d.inspect("phoenix", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        d.inspect("phoenix", "{{.State.Status}}"),
        "exited",
        "a stopped container stays stopped"
    );
    assert_eq!(d.inspect("phoenix", "{{.RestartCount}}"), count);
    // unless-stopped that nobody stopped, and always, come back with the daemon.
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "300",
    ]));
    ok(&d.berth(&["kill", "keeper"]));
    d.stop_daemon();
    d.spawn();
    wait_until("policy restarts after the daemon restart", || {
        d.inspect("phoenix", "{{.State.Status}}") != "exited"
            && d.inspect("keeper", "{{.State.Status}}") == "running"
    });
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn update_changes_a_running_containers_limits_and_policy() {
    let d = Daemon::start();
    let id = ok(&d.berth(&[
        "run", "-d", "--name", "grow", "-m", "32m", "busybox", "sleep", "300",
    ]));
    let id = id.trim();
    ok(&d.berth(&[
        "update",
        "-m",
        "96m",
        "--pids-limit",
        "33",
        "--cpus",
        "0.25",
        "--restart",
        "always",
        "grow",
    ]));
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let read = |ctrl: &str, file: &str| {
        let dir = berth_tests::cgroup_dir(if v2 { "" } else { ctrl }, id).unwrap();
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    if v2 {
        assert_eq!(read("memory", "memory.max"), (96 << 20).to_string());
        assert_eq!(read("pids", "pids.max"), "33");
    } else {
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (96 << 20).to_string()
        );
        assert_eq!(read("pids", "pids.max"), "33");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "25000");
    }
    assert_eq!(
        d.inspect(
            "grow",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}"
        ),
        format!("{} 33 always", 96 << 20)
    );
    let out = d.berth(&["update", "-m", "1k", "grow"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&["update", "--memory", "128m", "grow"]);
    assert_eq!(ok(&out).trim(), "grow");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn init_reaps_and_forwards_signals() {
    let d = Daemon::start();
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    ]));
    assert!(out.starts_with("/sbin/docker-init -- sh"), "{out}");
    // sleep as PID 1 ignores SIGTERM; under --init the init forwards it and sleep dies.
    ok(&d.berth(&[
        "run", "-d", "--init", "--name", "sleeper", "busybox", "sleep", "300",
    ]));
    let t0 = Instant::now();
    ok(&d.berth(&["stop", "-t", "10", "sleeper"]));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "SIGTERM did not reach the process"
    );
    assert_eq!(d.inspect("sleeper", "{{.State.ExitCode}}"), "143");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn stop_signal_and_timeout_from_the_container() {
    let d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 9' USR1; echo trap-set; while true; do sleep 0.1; done",
    ]));
    wait_until("the trap", || {
        text(&d.berth(&["logs", "usr1"]).stdout).contains("trap-set")
    });
    ok(&d.berth(&["stop", "usr1"]));
    assert_eq!(d.inspect("usr1", "{{.State.ExitCode}}"), "9");
    assert!(ok(&d.berth(&["logs", "usr1"])).contains("got usr1"));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn bind_mounts_read_write_and_read_only() {
    let d = Daemon::start();
    let host = d.root.path().join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host\n").unwrap();
    let rw = format!("{}:/data", host.display());
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt; echo back > /data/out.txt",
    ]));
    assert_eq!(out, "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "back\n"
    );
    let ro = format!("type=bind,src={},dst=/ro,readonly", host.display());
    let out = d.docker(&["run", "--rm", "--mount", &ro, "busybox", "touch", "/ro/x"]);
    assert_ne!(out.status.code(), Some(0), "a read-only bind was writable");
    assert!(!host.join("x").exists());
    let out = d.docker(&["run", "--rm", "-v", "somevolume:/data", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("named volumes are not supported"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,src=/nonexistent/x,dst=/x",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("bind source path does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn healthchecks_report_status_and_events() {
    let d = Daemon::start();
    let since = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            - 1.0
    );
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 1.5; touch /tmp/ok; exec sleep 300",
    ]));
    assert_eq!(d.inspect("doc", "{{.State.Health.Status}}"), "starting");
    wait_until("unhealthy", || {
        d.inspect("doc", "{{.State.Health.Status}}") == "unhealthy"
    });
    wait_until("healthy", || {
        d.inspect("doc", "{{.State.Health.Status}}") == "healthy"
    });
    assert!(ok(&d.docker(&["ps", "--format", "{{.Status}}"])).contains("(healthy)"));
    assert_eq!(
        ok(&d.docker(&["ps", "-q", "--filter", "health=healthy"]))
            .lines()
            .count(),
        1
    );
    let log = d.inspect("doc", "{{range .State.Health.Log}}{{.ExitCode}} {{end}}");
    assert!(log.ends_with("0"), "{log}");
    let until = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let events = ok(&d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=doc",
        "--format",
        "{{.Action}}",
    ]));
    let health: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("health_status"))
        .collect();
    assert_eq!(
        health,
        ["health_status: unhealthy", "health_status: healthy"],
        "{events}"
    );
    // --no-healthcheck turns an image's check off.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "300",
    ]));
    assert!(!d.inspect("quiet", "{{json .State}}").contains("Health"));
}
