//! `exec`, end to end with the real docker CLI and berth: exit codes, stdin, terminals and
//! resizes, environment/user/working directory, namespaces, cgroup and capabilities,
//! Docker's errors, the API's inspect and ExecIDs, both runtimes, an engine restart, and
//! no descriptor or process left behind after a hundred execs.

use std::io::{Read, Write};
use std::time::Duration;

use berth_tests::pty::Pty;
use berth_tests::{eventually, ok, text, with_input, Daemon};

const T: Duration = Duration::from_secs(30);

/// The basics, with the docker CLI and berth, on one runtime.
fn basics(runtime: &str) {
    let d = Daemon::start_with_runtime(runtime);
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FROM_RUN=1",
        "-w",
        "/srv",
        "busybox",
        "sleep",
        "600",
    ]));
    for cli in ["docker", "berth"] {
        let run = |args: &[&str]| {
            if cli == "docker" {
                d.docker(args)
            } else {
                d.berth(args)
            }
        };
        // Exit codes are the exec's.
        assert_eq!(
            run(&["exec", "box", "true"]).status.code(),
            Some(0),
            "{cli}"
        );
        let out = run(&["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 5"]);
        assert_eq!(out.status.code(), Some(5), "{cli}");
        assert_eq!(text(&out.stdout), "out\n", "{cli}");
        assert_eq!(text(&out.stderr), "err\n", "{cli}");
        // Environment, user and working directory: the container's, then the exec's.
        let out = run(&[
            "exec",
            "-e",
            "A=1",
            "-e",
            "FROM_RUN=2",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "box",
            "sh",
            "-c",
            "echo $A $FROM_RUN $(id -u):$(id -g) $PWD $HOME",
        ]);
        assert_eq!(ok(&out), "1 2 65534:65534 /tmp /nonexistent\n", "{cli}");
        let out = run(&[
            "exec",
            "box",
            "sh",
            "-c",
            "echo $FROM_RUN $PWD $(id -un) $HOSTNAME",
        ]);
        let hostname = d.docker_inspect("box", "{{.Config.Hostname}}");
        assert_eq!(ok(&out), format!("1 /srv root {hostname}\n"), "{cli}");
        // A missing program is 127, one that cannot run 126, with runc's words on stdout.
        let out = run(&["exec", "box", "nosuchprogram"]);
        assert_eq!(out.status.code(), Some(127), "{cli}: {out:?}");
        assert!(
            text(&out.stdout)
                .contains("exec: \"nosuchprogram\": executable file not found in $PATH"),
            "{cli}: {out:?}"
        );
        let out = run(&["exec", "box", "/etc/passwd"]);
        assert_eq!(out.status.code(), Some(126), "{cli}: {out:?}");
        // A working directory that is not there: 126, as dockerd (the error does not name
        // the program).
        let out = run(&["exec", "-w", "/nonexistent", "box", "true"]);
        assert_eq!(out.status.code(), Some(126), "{cli}: {out:?}");
        assert!(
            text(&out.stdout).contains(
                "chdir to cwd (\"/nonexistent\") set in config.json failed: no such file or directory"
            ),
            "{cli}: {out:?}"
        );
        // stdin, piped; its end is the process's end of input.
        let out = with_input(
            if cli == "docker" {
                d.docker_cmd(&["exec", "-i", "box", "sh", "-c", "cat; echo eof"])
            } else {
                d.berth_cmd(&["exec", "-i", "box", "sh", "-c", "cat; echo eof"])
            },
            b"piped\n",
        );
        assert_eq!(ok(&out), "piped\neof\n", "{cli}");
        // -d: runs on its own.
        ok(&run(&[
            "exec",
            "-d",
            "box",
            "sh",
            "-c",
            "echo $0 > /tmp/detached",
            cli,
        ]));
        assert!(eventually(T, || {
            text(&run(&["exec", "box", "cat", "/tmp/detached"]).stdout) == format!("{cli}\n")
        }));
        // -t without a terminal around: raw terminal bytes.
        assert_eq!(
            ok(&run(&["exec", "-t", "box", "tty"])),
            "/dev/pts/0\r\n",
            "{cli}"
        );
    }
    ok(&d.docker(&["rm", "-f", "box"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_basics_berth_runtime() {
    basics("berth");
}

#[test]
#[ignore = "needs root and runc (run scripts/test.sh as root)"]
fn exec_basics_runc() {
    basics("runc");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_it_session_with_resizes() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    for client in ["docker", "berth"] {
        let args = ["exec", "-it", "box", "sh"];
        let cmd = if client == "docker" {
            d.docker_cmd(&args)
        } else {
            d.berth_cmd(&args)
        };
        let mut term = Pty::spawn(cmd, 24, 80);
        term.expect("# ", T);
        term.send(b"tty; echo $TERM\r");
        term.expect("/dev/pts/", T);
        term.expect("xterm", T);
        term.expect_size(24, 80, T);
        term.resize(50, 132);
        term.expect_size(50, 132, T);
        term.send(b"exit 7\r");
        assert_eq!(term.wait(T).code(), Some(7), "{client}: {}", term.output());
    }
    // The detach keys leave the process running; the CLI says so and exits 1 (docker's
    // behaviour for exec).
    let mut term = Pty::spawn(d.docker_cmd(&["exec", "-it", "box", "sh"]), 24, 80);
    term.expect("# ", T);
    term.send(b"\x10\x11");
    assert_eq!(term.wait(T).code(), Some(1), "{}", term.output());
    assert!(term.output().contains("read escape sequence"));
    // A terminal needs a terminal.
    let out = d.docker(&["exec", "-it", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the input device is not a TTY"));
    ok(&d.docker(&["rm", "-f", "box"]));
}

/// `/proc/<pid>/status`'s line for `key`.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_joins_the_container_and_gets_its_capabilities() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "box",
        "--cap-drop",
        "NET_RAW",
        "busybox",
        "sleep",
        "600",
    ]));
    let pid = d.docker_inspect("box", "{{.State.Pid}}");
    for ns in ["mnt", "uts", "ipc", "net", "pid", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let inside = ok(&d.docker(&["exec", "box", "readlink", &format!("/proc/self/ns/{ns}")]));
        assert_eq!(inside.trim(), host.to_str().unwrap(), "{ns} namespace");
    }
    // The same cgroup as the container's first process.
    let init_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let exec_cgroup = ok(&d.docker(&["exec", "box", "cat", "/proc/self/cgroup"]));
    assert_eq!(exec_cgroup, init_cgroup);
    // The container's capabilities, never more; all of them with --privileged.
    let init = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let exec = ok(&d.docker(&["exec", "box", "cat", "/proc/self/status"]));
    for key in ["CapEff", "CapBnd", "CapPrm"] {
        assert_eq!(status_field(&exec, key), status_field(&init, key), "{key}");
    }
    assert_eq!(
        status_field(&exec, "CapEff"),
        "00000000a80405fb",
        "docker's set minus NET_RAW"
    );
    // --privileged: every capability berth itself holds (its bounding set).
    let exec = ok(&d.docker(&["exec", "--privileged", "box", "cat", "/proc/self/status"]));
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(status_field(&exec, "CapEff"), status_field(&ours, "CapBnd"));
    // And its process shows up in the container's process list.
    let ps = ok(&d.docker(&["exec", "box", "ps", "-o", "pid,args"]));
    assert!(
        ps.contains("sleep 600") && ps.contains("ps -o pid,args"),
        "{ps}"
    );
    ok(&d.docker(&["rm", "-f", "box"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_errors_are_dockers() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    let id = d.docker_inspect("box", "{{.Id}}");
    ok(&d.docker(&["pause", "box"]));
    for cli in ["docker", "berth"] {
        let out = if cli == "docker" {
            d.docker(&["exec", "box", "true"])
        } else {
            d.berth(&["exec", "box", "true"])
        };
        assert_eq!(out.status.code(), Some(1), "{cli}");
        assert_eq!(
            text(&out.stderr).trim(),
            format!(
                "Error response from daemon: Container {id} is paused, unpause the container before exec"
            ),
            "{cli}"
        );
    }
    ok(&d.docker(&["unpause", "box"]));
    ok(&d.docker(&["stop", "-t", "0", "box"]));
    let out = d.docker(&["exec", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!("Error response from daemon: Container {id} is not running")
    );
    let out = d.docker(&["exec", "nosuch", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "Error response from daemon: No such container: nosuch"
    );
    // The API directly.
    let json = [("Content-Type", "application/json")];
    let r = d
        .request(
            "POST",
            "/v1.41/containers/box/exec",
            &json,
            br#"{"Cmd":["true"]}"#,
        )
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        format!("Container {id} is not running")
    );
    ok(&d.docker(&["start", "box"]));
    let r = d
        .request(
            "POST",
            "/v1.41/containers/box/exec",
            &json,
            br#"{"Cmd":[]}"#,
        )
        .unwrap();
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, "No exec command specified".into())
    );
    let r = d
        .request("POST", "/v1.41/containers/box/exec", &json, b"{not json")
        .unwrap();
    assert_eq!(r.status, 400);
    let r = d
        .request(
            "POST",
            "/v1.41/containers/box/exec",
            &json,
            br#"{"Cmd":["true"],"DetachKeys":"ctrl-"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Invalid escape keys (ctrl-) provided");
    for (method, path) in [
        ("POST", "/v1.41/exec/nosuch/start"),
        ("POST", "/v1.41/exec/nosuch/resize?h=1&w=1"),
        ("GET", "/v1.41/exec/nosuch/json"),
    ] {
        let r = d.request(method, path, &json, b"{}").unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.json()["message"],
            "No such exec instance: nosuch",
            "{path}"
        );
    }
    ok(&d.docker(&["rm", "-f", "box"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_inspect_exec_ids_and_start_once() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    let json = [("Content-Type", "application/json")];
    let r = d
        .request(
            "POST",
            "/v1.41/containers/box/exec",
            &json,
            br#"{"Cmd":["sh","-c","sleep 1; exit 3"],"User":"nobody","Privileged":false}"#,
        )
        .unwrap();
    assert_eq!(r.status, 201);
    let exec_id = r.json()["Id"].as_str().unwrap().to_string();
    let info = d
        .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
        .unwrap()
        .json();
    assert_eq!(info["Running"], false);
    assert_eq!(info["ExitCode"], serde_json::Value::Null);
    assert_eq!(info["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(
        info["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "sleep 1; exit 3"])
    );
    assert_eq!(info["ProcessConfig"]["user"], "nobody");
    assert_eq!(
        d.docker_inspect("box", "{{json .ExecIDs}}"),
        format!("[\"{exec_id}\"]")
    );
    // Detached start: 200, empty, once the process runs.
    let r = d
        .request(
            "POST",
            &format!("/v1.41/exec/{exec_id}/start"),
            &json,
            br#"{"Detach":true,"Tty":false}"#,
        )
        .unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    let info = d
        .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
        .unwrap()
        .json();
    assert_eq!(info["Running"], true);
    assert!(info["Pid"].as_i64().unwrap() > 0);
    let again = d
        .request(
            "POST",
            &format!("/v1.41/exec/{exec_id}/start"),
            &json,
            b"{}",
        )
        .unwrap();
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["message"],
        format!("Error: Exec command {exec_id} is already running")
    );
    assert!(eventually(T, || {
        let info = d
            .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
            .unwrap()
            .json();
        info["ExitCode"] == 3 && info["Running"] == false
    }));
    assert_eq!(d.docker_inspect("box", "{{json .ExecIDs}}"), "null");
    // dockerd's events, with the command in the action and the exit code on exec_die.
    let events = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 1
        ),
        "--filter",
        "container=box",
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"execID\"}} {{index .Actor.Attributes \"exitCode\"}}",
    ]));
    for want in [
        format!("exec_create: sh -c sleep 1; exit 3 {exec_id} "),
        format!("exec_start: sh -c sleep 1; exit 3 {exec_id} "),
        format!("exec_die {exec_id} 3"),
    ] {
        assert!(
            events.lines().any(|l| l.trim_end() == want.trim_end()),
            "{want:?} in {events}"
        );
    }
    let again = d
        .request(
            "POST",
            &format!("/v1.41/exec/{exec_id}/start"),
            &json,
            b"{}",
        )
        .unwrap();
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["message"],
        format!("Error: Exec command {exec_id} has already run")
    );
    // A removed container's execs are gone.
    ok(&d.docker(&["rm", "-f", "box"]));
    let r = d
        .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
        .unwrap();
    assert_eq!(r.status, 404);
}

/// The number of open descriptors of `pid`.
fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The children of `pid`, from /proc.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

fn shim_pid(d: &Daemon, name: &str) -> i32 {
    let id = d.docker_inspect(name, "{{.Id}}");
    let rec = std::fs::read_to_string(
        d.data_root()
            .join("containers")
            .join(&id)
            .join("container.json"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    v["state"]["processes"]["shim_pid"].as_i64().unwrap() as i32
}

/// Pids of the processes in the container's pid namespace, from its inside.
/// How many processes the container has, as `docker top` lists them from its cgroup (a
/// count taken inside would count itself, racily: a pipeline's processes come and go).
fn processes_in(d: &Daemon, name: &str) -> usize {
    ok(&d.docker(&["top", name]))
        .lines()
        .count()
        .saturating_sub(1)
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_hundred_execs_leave_no_descriptor_or_process() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    // Warm up (first connections, lazily created state), then count.
    ok(&d.docker(&["exec", "box", "true"]));
    ok(&d.docker(&["exec", "-t", "box", "true"]));
    let shim = shim_pid(&d, "box");
    let (berthd_before, shim_before) = (fds(d.pid()), fds(shim));
    let shim_children_before = children(shim).len();
    let procs_before = processes_in(&d, "box");
    for i in 0..100 {
        let out = match i % 4 {
            // Plain, with a terminal, with stdin, and an interactive terminal session.
            0 => d.docker(&["exec", "box", "sh", "-c", "echo x"]),
            1 => d.docker(&["exec", "-t", "box", "sh", "-c", "echo x"]),
            2 => with_input(d.docker_cmd(&["exec", "-i", "box", "cat"]), b"x\n"),
            _ => {
                let mut term = Pty::spawn(d.docker_cmd(&["exec", "-it", "box", "sh"]), 24, 80);
                term.expect("# ", T);
                term.send(b"echo x; exit\r");
                let status = term.wait(T);
                assert!(status.success(), "{}", term.output());
                continue;
            }
        };
        assert!(out.status.success(), "exec {i}: {out:?}");
        assert!(text(&out.stdout).starts_with('x'), "exec {i}: {out:?}");
    }
    assert!(
        eventually(T, || fds(d.pid()) <= berthd_before),
        "berthd had {berthd_before} descriptors and now has {}",
        fds(d.pid())
    );
    assert!(
        eventually(T, || fds(shim) <= shim_before),
        "the shim had {shim_before} descriptors and now has {}",
        fds(shim)
    );
    assert!(
        eventually(T, || children(shim).len() <= shim_children_before),
        "the shim has children left: {:?}",
        children(shim)
    );
    assert!(
        eventually(T, || processes_in(&d, "box") == procs_before),
        "processes left in the container: {} (before: {procs_before})",
        processes_in(&d, "box")
    );
    let run_dir = d
        .exec_root()
        .join("containers")
        .join(d.docker_inspect("box", "{{.Id}}"));
    let leftovers: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    assert!(leftovers.is_empty(), "exec files left: {leftovers:?}");
    ok(&d.docker(&["rm", "-f", "box"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_across_a_daemon_restart() {
    let mut d = Daemon::start();
    ok(&d.docker(&[
        "run", "-d", "--name", "box", "-i", "busybox", "sleep", "600",
    ]));
    ok(&d.docker(&["run", "-d", "--name", "echo", "-i", "busybox", "cat"]));
    // An exec that outlives the daemon is still reaped by the shim.
    ok(&d.docker(&["exec", "-d", "box", "sleep", "2"]));
    let shim = shim_pid(&d, "box");
    d.stop_daemon();
    d.spawn();
    // The new daemon reaches the running container's shim for exec and attach.
    assert_eq!(ok(&d.docker(&["exec", "box", "echo", "after"])), "after\n");
    assert!(
        eventually(T, || children(shim).len() == 1),
        "the shim still has {:?}",
        children(shim)
    );
    let zombies: Vec<i32> = children(shim)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(false)
        })
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
    // Attach reconnects to the shim too: its stdin and its live output.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        b"POST /v1.41/containers/echo/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n\
          Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut buf[..1]).unwrap();
        assert_eq!(n, 1, "{}", text(&seen));
        seen.push(buf[0]);
    }
    s.write_all(b"round-trip\n").unwrap();
    let mut out = Vec::new();
    while !out.ends_with(b"round-trip\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", text(&out));
        out.extend_from_slice(&buf[..n]);
    }
    // A stdcopy frame of stdout.
    assert_eq!(&out[..8], b"\x01\0\0\0\0\0\0\x0b", "{out:?}");
    drop(s);
    ok(&d.docker(&["rm", "-f", "box", "echo"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_clients_vanishing_mid_stream() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    ok(&d.docker(&["exec", "box", "true"]));
    let before = fds(d.pid());
    let json = [("Content-Type", "application/json")];
    for tty in [false, true] {
        let body =
            format!(r#"{{"Cmd":["yes"],"AttachStdout":true,"AttachStderr":true,"Tty":{tty}}}"#);
        let r = d
            .request("POST", "/v1.41/containers/box/exec", &json, body.as_bytes())
            .unwrap();
        let exec_id = r.json()["Id"].as_str().unwrap().to_string();
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        let start = format!(r#"{{"Detach":false,"Tty":{tty}}}"#);
        s.write_all(
            format!(
                "POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
                 Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
                start.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let mut got = 0;
        while got < 64 * 1024 {
            got += s.read(&mut buf).unwrap();
        }
        // Gone mid-stream: the process runs on (as with dockerd), nothing else is stuck.
        drop(s);
        assert_eq!(
            ok(&d.docker(&["exec", "box", "echo", "still-serving"])),
            "still-serving\n"
        );
        let info = d
            .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
            .unwrap()
            .json();
        assert_eq!(info["Running"], true, "{info}");
        // The exec's own process (its host pid, which this test started through berthd).
        let pid = info["Pid"].as_i64().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert!(eventually(T, || {
            d.request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
                .unwrap()
                .json()["Running"]
                == false
        }));
        let info = d
            .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
            .unwrap()
            .json();
        assert_eq!(info["ExitCode"], 137, "{info}");
    }
    assert!(
        eventually(T, || fds(d.pid()) <= before),
        "berthd had {before} descriptors and now has {}",
        fds(d.pid())
    );
    ok(&d.docker(&["rm", "-f", "box"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn api_exec_clients_detach_with_the_keys() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    let json = [("Content-Type", "application/json")];
    let r = d
        .request(
            "POST",
            "/v1.41/containers/box/exec",
            &json,
            br#"{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"DetachKeys":"ctrl-a,d"}"#,
        )
        .unwrap();
    let exec_id = r.json()["Id"].as_str().unwrap().to_string();
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let body = r#"{"Detach":false,"Tty":true}"#;
    s.write_all(
        format!(
            "POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
             Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(b"echo in$((6*7))side\r").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !text(&seen).contains("in42side") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    s.write_all(b"\x01d").unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the connection closes");
    let info = d
        .request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
        .unwrap()
        .json();
    assert_eq!(info["Running"], true, "the shell runs on: {info}");
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=exec_detach",
        "--format",
        "{{.Action}}",
    ]));
    assert_eq!(events.trim(), "exec_detach", "{events}");
    ok(&d.docker(&["rm", "-f", "box"]));
}
