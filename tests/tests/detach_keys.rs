//! Detach keys, end to end, for `exec` and `attach`: a single key and a sequence of keys,
//! given where each client gives them — the exec's create body (`DetachKeys`, or docker-py's
//! `detachKeys`), the query (`detachKeys=` on attach; `--detach-keys` of the docker CLI and
//! berth) and the docker config file (`detachKeys` in `$DOCKER_CONFIG/config.json`, read by
//! the docker CLI, docker-py and berth). Typing the keys ends the session and leaves the
//! process running; typing anything else does not.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::pty::Pty;
use berth_tests::{ok, repo_root, run_with_timeout, text, Daemon};

const T: Duration = Duration::from_secs(30);

/// The sequences every test types: one key, and two keys.
const KEYS: [(&str, &[u8]); 2] = [("ctrl-p", b"\x10"), ("ctrl-x,ctrl-y", b"\x18\x19")];

/// Writes `$DOCKER_CONFIG/config.json` with `detachKeys` (or without, for `None`).
fn write_config(dir: &Path, keys: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    let config = match keys {
        Some(k) => serde_json::json!({ "detachKeys": k }),
        None => serde_json::json!({}),
    };
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// The docker CLI's config directory the harness points it at.
fn docker_config(d: &Daemon) -> std::path::PathBuf {
    d.root.path().join("docker-config")
}

/// Sends a request on a connection of its own, upgraded (`101`), and returns the raw stream
/// after the response head.
fn hijack(d: &Daemon, path: &str, body: &str) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s
}

/// Types a command through a raw session until its output shows, then the keys, and
/// checks that berthd ends the session (closes the stream) without passing them on.
fn type_then_detach(s: &mut UnixStream, keys: &[u8]) {
    s.write_all(b"echo in$((6*7))side\r").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !text(&seen).contains("in42side") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the session ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    s.write_all(keys).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("berthd did not end the session on {keys:?}: {e}"));
    // A terminal echoes a control key it is given as `^X`: it never got them.
    assert!(
        !text(&rest).contains('^'),
        "the keys were passed on: {rest:?}"
    );
}

/// The detach events berthd recorded for `container` so far (`detach` or `exec_detach`).
fn detach_events(d: &Daemon, container: &str, action: &str) -> usize {
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
        &format!("container={container}"),
        "--filter",
        &format!("event={action}"),
        "--format",
        "{{.Action}}",
    ]));
    events.lines().filter(|l| *l == action).count()
}

/// `exec` with the keys in the create body: the docker CLI's `DetachKeys` and docker-py's
/// `detachKeys` (Go's JSON decoder, and so dockerd, matches names in any case).
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_detaches_with_the_keys_of_its_create_body() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    let mut detached = 0;
    for field in ["DetachKeys", "detachKeys"] {
        for (keys, typed) in KEYS {
            let body = format!(
                r#"{{"Cmd":["sh"],"Tty":true,"AttachStdin":true,"AttachStdout":true,"{field}":"{keys}"}}"#
            );
            let r = d
                .request(
                    "POST",
                    "/v1.41/containers/box/exec",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                )
                .unwrap();
            assert_eq!(r.status, 201, "{}", text(&r.body));
            let exec_id = r.json()["Id"].as_str().unwrap().to_string();
            let inspect = |d: &Daemon| {
                d.request("GET", &format!("/v1.41/exec/{exec_id}/json"), &[], b"")
                    .unwrap()
                    .json()
            };
            assert_eq!(inspect(&d)["DetachKeys"], keys, "{field}");
            let mut s = hijack(
                &d,
                &format!("/v1.41/exec/{exec_id}/start"),
                r#"{"Detach":false,"Tty":true}"#,
            );
            type_then_detach(&mut s, typed);
            assert_eq!(inspect(&d)["Running"], true, "the shell runs on");
            detached += 1;
            assert_eq!(detach_events(&d, "box", "exec_detach"), detached);
        }
    }
    ok(&d.docker(&["rm", "-f", "box"]));
}

/// With a sequence of keys, a near miss (its first key, then another) passes through and
/// the session goes on.
fn near_miss(term: &mut Pty, typed: &[u8]) {
    if typed.len() > 1 {
        // ctrl-u after the first key: the shell clears its line.
        term.send(&[typed[0], b'\x15']);
    }
    term.send(b"echo still-$((1+1))\r");
    term.expect("still-2", T);
}

/// Runs `cli exec -it ... box sh` on a terminal, types the keys, and checks the CLI ends
/// the session as docker does (status 1, "read escape sequence") with the shell still
/// running in the container.
fn exec_session_detaches(d: &Daemon, mut cmd: Command, typed: &[u8], what: &str) {
    let mut term = Pty::spawn(
        {
            cmd.env("PS1", "# ");
            cmd
        },
        24,
        80,
    );
    term.expect("# ", T);
    term.send(b"echo $((6*7))-$$-marker\r");
    term.expect("42-", T);
    let out = term.output();
    let pid: String = out[out.rfind("42-").unwrap() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    near_miss(&mut term, typed);
    term.send(typed);
    let st = term.wait(T);
    assert_eq!(st.code(), Some(1), "{what}: {}", term.output());
    assert!(
        term.output().contains("read escape sequence"),
        "{what}: {}",
        term.output()
    );
    // The shell the session ran is still there.
    let alive = ok(&d.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        &format!("kill -0 {pid} && echo yes"),
    ]));
    assert_eq!(alive.trim(), "yes", "{what}: the exec's shell ended");
}

/// Where a CLI takes its detach keys from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `--detach-keys`.
    Flag,
    /// `detachKeys` in `$DOCKER_CONFIG/config.json`.
    ConfigFile,
}

/// Runs `cli <verb> [--detach-keys K] <target>` with the docker CLI and with berth for each
/// of [`KEYS`], given as `source` says, and checks the session with `check`.
fn each_cli_and_keys(
    d: &Daemon,
    source: Source,
    verb: &[&str],
    target: &[&str],
    check: fn(&Daemon, Command, &[u8], &str),
) {
    let config = docker_config(d);
    write_config(&config, None);
    for (keys, typed) in KEYS {
        let mut args = verb.to_vec();
        match source {
            Source::Flag => args.extend(["--detach-keys", keys]),
            Source::ConfigFile => write_config(&config, Some(keys)),
        }
        args.extend(target);
        check(
            d,
            d.docker_cmd(&args),
            typed,
            &format!("docker, {source:?} {keys}"),
        );
        let mut berth = d.berth_cmd(&args);
        berth.env("DOCKER_CONFIG", &config);
        check(d, berth, typed, &format!("berth, {source:?} {keys}"));
    }
}

/// `exec -it` with `--detach-keys`, then with `detachKeys` in the config file: the docker
/// CLI and berth.
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn exec_detaches_with_the_keys_of_the_flag_and_the_config_file() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]));
    for source in [Source::Flag, Source::ConfigFile] {
        each_cli_and_keys(
            &d,
            source,
            &["exec", "-it"],
            &["box", "sh"],
            exec_session_detaches,
        );
    }
    ok(&d.docker(&["rm", "-f", "box"]));
}

/// docker-py takes the config file's `detachKeys` into the exec's body itself.
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_py_exec_detaches_with_the_keys_of_the_config_file() {
    let d = Daemon::start();
    let python = repo_root().join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh",
        python.display()
    );
    let config = d.root.path().join("py-config");
    write_config(&config, None);
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("tests/py/detach_keys.py"))
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    let out = ok(&run_with_timeout(cmd, Duration::from_secs(120)));
    assert_eq!(out.trim_end().lines().last(), Some("ok"), "{out}");
    assert_eq!(detach_events(&d, "py-detach", "exec_detach"), KEYS.len());
    assert!(d.container_ids().is_empty());
}

/// `attach` with `detachKeys=` in the query, as raw API clients send it.
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn attach_detaches_with_the_keys_of_the_query() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "-it", "--name", "sh1", "busybox", "sh"]));
    // Without `detachKeys`, Docker's ctrl-p,ctrl-q.
    let queries = [("", &b"\x10\x11"[..])].into_iter().chain(KEYS);
    for (n, (keys, typed)) in queries.enumerate() {
        let query = if keys.is_empty() {
            String::new()
        } else {
            format!("&detachKeys={keys}")
        };
        let mut s = hijack(
            &d,
            &format!("/v1.41/containers/sh1/attach?stream=1&stdin=1&stdout=1{query}"),
            "",
        );
        type_then_detach(&mut s, typed);
        assert_eq!(d.docker_inspect("sh1", "{{.State.Status}}"), "running");
        assert_eq!(detach_events(&d, "sh1", "detach"), n + 1);
    }
    ok(&d.docker(&["rm", "-f", "sh1"]));
}

/// Runs `cli attach ... sh1` on a terminal, types the keys, and checks the CLI ends the
/// session as docker does, the container running on.
fn attach_session_detaches(d: &Daemon, cmd: Command, typed: &[u8], what: &str) {
    let mut term = Pty::spawn(cmd, 24, 80);
    // Attach says nothing when it is ready: ask the shell until it answers.
    let deadline = std::time::Instant::now() + T;
    for i in 1.. {
        term.send(format!("echo mark-$(({i}*3))-er\r").as_bytes());
        if term.try_expect(&format!("mark-{}-er", i * 3), Duration::from_millis(500)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {}",
            term.output()
        );
    }
    near_miss(&mut term, typed);
    term.send(typed);
    let st = term.wait(T);
    assert_eq!(st.code(), Some(1), "{what}: {}", term.output());
    assert!(
        term.output().contains("read escape sequence"),
        "{what}: {}",
        term.output()
    );
    assert_eq!(
        d.docker_inspect("sh1", "{{.State.Status}}"),
        "running",
        "{what}"
    );
}

/// `attach` with `--detach-keys` (sent as `detachKeys=`), then with `detachKeys` in the
/// config file: the docker CLI and berth.
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn attach_detaches_with_the_keys_of_the_flag_and_the_config_file() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "-it", "--name", "sh1", "busybox", "sh"]));
    for source in [Source::Flag, Source::ConfigFile] {
        each_cli_and_keys(&d, source, &["attach"], &["sh1"], attach_session_detaches);
    }
    ok(&d.docker(&["rm", "-f", "sh1"]));
}
