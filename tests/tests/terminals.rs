//! Terminals and stdin, end to end: `run -i` with piped input, `run -t`, an interactive
//! `run -it` session with resizes, detach keys, `attach` by several clients, `start -a -i`,
//! and bad input on `resize` and `attach`, with the real docker CLI (on a terminal the test
//! holds, or under `script`) and berth, against both runtimes.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_tests::pty::Pty;
use berth_tests::{eventually, ok, text, with_input, Daemon};

const T: Duration = Duration::from_secs(30);

fn piped_stdin(runtime: &str) {
    let d = Daemon::start_with_runtime(runtime);
    // The bytes and the half-close reach berthd before /start: they must wait for it.
    let out = with_input(
        d.docker_cmd(&["run", "-i", "--rm", "busybox", "cat"]),
        b"piped\n",
    );
    assert_eq!(ok(&out), "piped\n");
    // More than any pipe holds, through the container and back, byte for byte.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let out = with_input(
        d.docker_cmd(&["run", "-i", "--rm", "busybox", "cat"]),
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "the bytes came back changed");
    // berth itself.
    let out = with_input(
        d.berth_cmd(&["run", "-i", "--rm", "busybox", "wc", "-l"]),
        b"a\nb\nc\n",
    );
    assert_eq!(ok(&out).trim(), "3");
    // Without -i the container's stdin is empty.
    let out = with_input(d.docker_cmd(&["run", "--rm", "busybox", "cat"]), b"lost\n");
    assert_eq!(ok(&out), "");
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn run_i_with_piped_stdin() {
    piped_stdin("berth");
}

#[test]
#[ignore = "needs root and runc (run scripts/test.sh as root)"]
fn run_i_with_piped_stdin_runc() {
    piped_stdin("runc");
}

fn run_t_has_a_terminal(runtime: &str) {
    let d = Daemon::start_with_runtime(runtime);
    // Under `script`, as a user's terminal; its own terminal adds a \r before the \r\n.
    let docker = berth_tests::docker_binary();
    let line = format!("{} run --rm -t busybox tty", docker.display());
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"));
    let out = berth_tests::run_with_timeout(cmd, T);
    assert!(
        text(&out.stdout).contains("/dev/pts/0\r"),
        "{:?}",
        text(&out.stdout)
    );
    // Without a terminal around, the raw bytes of the container's terminal.
    let out = d.docker(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; echo $TERM",
    ]);
    assert_eq!(ok(&out), "/dev/pts/0\r\nxterm\r\n");
    // A tty container's log is the one raw stream.
    ok(&d.docker(&["run", "--name", "t1", "-t", "busybox", "echo", "logged"]));
    let out = d.docker(&["logs", "t1"]);
    assert_eq!(ok(&out), "logged\r\n");
    ok(&d.docker(&["rm", "t1"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn run_t_has_a_terminal_berth_runtime() {
    run_t_has_a_terminal("berth");
}

#[test]
#[ignore = "needs root and runc (run scripts/test.sh as root)"]
fn run_t_has_a_terminal_runc() {
    run_t_has_a_terminal("runc");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn run_it_session_with_resizes() {
    let d = Daemon::start();
    for client in ["docker", "berth"] {
        let args = ["run", "-it", "--rm", "busybox", "sh"];
        let cmd = if client == "docker" {
            d.docker_cmd(&args)
        } else {
            d.berth_cmd(&args)
        };
        let mut term = Pty::spawn(cmd, 24, 80);
        term.expect("# ", T);
        term.expect_size(24, 80, T);
        // The CLI notices SIGWINCH and resizes; the shell's `stty` sees the new size.
        term.resize(40, 120);
        term.expect_size(40, 120, T);
        // A program waiting on SIGWINCH gets it. (The shell waits in a builtin: a
        // foreground child would own the terminal and take the signal instead, and ash's
        // `wait` can miss a child's end when a trap interrupts it.)
        term.send(
            b"trap 'echo got-winch; exit 3' WINCH; echo trap-$((1+1))-set; \
              while :; do read -t 1 x; done\r",
        );
        term.expect("trap-2-set", T);
        term.resize(30, 100);
        term.expect("got-winch", T);
        let status = term.wait(T);
        assert_eq!(status.code(), Some(3), "{client}: {}", term.output());
    }
    assert!(eventually(T, || d.container_ids().is_empty()));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn detach_keys_and_two_attached_clients() {
    let d = Daemon::start();
    let mut run = Pty::spawn(
        d.docker_cmd(&["run", "-it", "--name", "shell", "busybox", "sh"]),
        24,
        80,
    );
    run.expect("# ", T);
    run.send(b"\x10\x11");
    assert_eq!(run.wait(T).code(), Some(0), "{}", run.output());
    assert_eq!(d.docker_inspect("shell", "{{.State.Status}}"), "running");
    // berth too; the detach must not close the container's stdin (run -i is StdinOnce).
    let mut run = Pty::spawn(
        d.berth_cmd(&["run", "-it", "--name", "shell2", "busybox", "sh"]),
        24,
        80,
    );
    run.expect("# ", T);
    run.send(b"\x10\x11");
    assert_eq!(run.wait(T).code(), Some(0), "{}", run.output());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.docker_inspect("shell2", "{{.State.Status}}"), "running");
    ok(&d.docker(&["rm", "-f", "shell2"]));

    // Two clients at once: both see what the shell prints.
    let mut a = Pty::spawn(d.docker_cmd(&["attach", "shell"]), 24, 80);
    let mut b = Pty::spawn(d.berth_cmd(&["attach", "shell"]), 24, 80);
    // Neither says when it is attached: send markers through `a` until `b` shows one.
    let deadline = std::time::Instant::now() + T;
    for i in 1.. {
        a.send(format!("echo marker-$(({i}*7))-end\r").as_bytes());
        let marker = format!("marker-{}-end", i * 7);
        if b.try_expect(&marker, Duration::from_millis(500)) {
            a.expect(&marker, T);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second client never showed the shell's output: {}",
            b.output()
        );
    }
    // The keys detach one; the other stays.
    b.send(b"\x10\x11");
    let st = b.wait(T);
    assert_eq!(st.code(), Some(1), "{}", b.output());
    assert!(
        b.output().contains("read escape sequence"),
        "{}",
        b.output()
    );
    a.send(b"echo still-$((1+1))\r");
    a.expect("still-2", T);
    a.send(b"exit 4\r");
    assert_eq!(a.wait(T).code(), Some(4), "{}", a.output());
    assert_eq!(d.docker_inspect("shell", "{{.State.ExitCode}}"), "4");

    // --detach-keys, on a restarted container through start -a -i.
    let mut s = Pty::spawn(
        d.docker_cmd(&["start", "-ai", "--detach-keys", "ctrl-x,x", "shell"]),
        24,
        80,
    );
    s.expect("# ", T);
    s.send(b"\x18x");
    assert_eq!(s.wait(T).code(), Some(0), "{}", s.output());
    assert_eq!(d.docker_inspect("shell", "{{.State.Status}}"), "running");
    ok(&d.docker(&["rm", "-f", "shell"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn start_a_i_and_attach_with_piped_stdin() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "create",
        "-i",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "cat; echo done",
    ]));
    let out = with_input(d.docker_cmd(&["start", "-a", "-i", "once"]), b"one\ntwo\n");
    assert_eq!(ok(&out), "one\ntwo\ndone\n");
    // A second run of the same container: stdin anew.
    let out = with_input(d.berth_cmd(&["start", "-a", "-i", "once"]), b"three\n");
    assert_eq!(ok(&out), "three\ndone\n");

    // `run -d -i` keeps stdin open for whoever attaches later (without StdinOnce, the
    // client's end of input ends only its own attach, as with Docker: the stream closes
    // while the container runs on).
    ok(&d.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "open",
        "busybox",
        "sh",
        "-c",
        "read a; read b; echo got $a $b; exit 6",
    ]));
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        b"POST /v1.41/containers/open/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n\
          Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "{}", text(&head));
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", text(&head));
    s.write_all(b"first\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("the session ends with its input");
    assert_eq!(d.docker_inspect("open", "{{.State.Status}}"), "running");
    let out = with_input(d.berth_cmd(&["attach", "open"]), b"second\n");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_eq!(ok(&d.docker(&["logs", "open"])), "got first second\n");
    ok(&d.docker(&["rm", "-f", "once", "open"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn attach_refuses_what_docker_refuses() {
    let d = Daemon::start();
    ok(&d.docker(&["create", "--name", "stopped", "busybox", "true"]));
    let out = d.docker(&["attach", "stopped"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("You cannot attach to a stopped container, start it first"));
    ok(&d.docker(&["run", "-d", "--name", "pz", "busybox", "sleep", "300"]));
    ok(&d.docker(&["pause", "pz"]));
    let r = d
        .request(
            "POST",
            "/v1.41/containers/pz/attach?stream=1&stdout=1",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "You cannot attach to a paused container, unpause it first"
    );
    ok(&d.docker(&["unpause", "pz"]));
    let r = d
        .request(
            "POST",
            "/v1.41/containers/pz/attach?stream=1&stdin=1&detachKeys=ctrl-P",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Invalid detach keys (ctrl-P) provided");
    let r = d
        .request("POST", "/v1.41/containers/nosuch/attach?stream=1", &[], b"")
        .unwrap();
    assert_eq!(r.status, 404);
    ok(&d.docker(&["rm", "-f", "stopped", "pz"]));
}

/// The number of open descriptors of `pid`.
fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The pid of a running container's shim, from its record.
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

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn resize_bad_input_and_clients_that_vanish() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "-t", "--name", "tt", "busybox", "sleep", "300"]));
    // The size as the container's terminal has it, read from the host through the
    // container's first process (busybox's stty prints nothing for 0 0).
    let pid = d.docker_inspect("tt", "{{.State.Pid}}");
    let size = |_: &Daemon| {
        let mut cmd = Command::new("stty");
        cmd.args(["-F", &format!("/proc/{pid}/fd/0"), "size"]);
        ok(&berth_tests::run_with_timeout(cmd, T))
    };
    let resize = |q: &str| {
        d.request(
            "POST",
            &format!("/v1.41/containers/tt/resize?{q}"),
            &[],
            b"",
        )
        .unwrap()
    };
    // A container without stdin has its size set by its shim, just after berthd answers
    // (with stdin, berthd sets it through the master it holds): look until it has.
    let sized = |want: &str| eventually(T, || size(&d).trim() == want);
    assert_eq!(resize("h=33&w=101").status, 200);
    assert!(sized("33 101"), "{}", size(&d));
    // Docker takes 0x0 and the largest sizes a terminal can have.
    assert_eq!(resize("h=0&w=0").status, 200);
    assert!(sized("0 0"), "{}", size(&d));
    assert_eq!(resize("h=65535&w=65535").status, 200);
    assert!(sized("65535 65535"), "{}", size(&d));
    for (q, msg) in [
        (
            "h=65536&w=10",
            "invalid terminal size h=65536: it must be between 0 and 65535",
        ),
        (
            "h=-1&w=10",
            "invalid terminal size h=-1: it must be between 0 and 65535",
        ),
        (
            "h=abc&w=10",
            "strconv.Atoi: parsing \"abc\": invalid syntax",
        ),
        ("w=10", "strconv.Atoi: parsing \"\": invalid syntax"),
    ] {
        let r = resize(q);
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["message"], msg, "{q}");
    }
    assert_eq!(
        size(&d).trim(),
        "65535 65535",
        "bad requests change nothing"
    );
    // A container without a terminal ignores resizes; a stopped one refuses them.
    ok(&d.docker(&["run", "-d", "--name", "plain", "busybox", "sleep", "300"]));
    let r = d
        .request("POST", "/v1.41/containers/plain/resize?h=10&w=10", &[], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    ok(&d.docker(&["create", "--name", "idle", "busybox", "true"]));
    let r = d
        .request("POST", "/v1.41/containers/idle/resize?h=10&w=10", &[], b"")
        .unwrap();
    assert_eq!(r.status, 409);

    // Clients that go away mid-stream: berthd lets go of them and keeps serving.
    ok(&d.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "while true; do echo chatter; done",
    ]));
    let before = fds(d.pid());
    let shim = shim_pid(&d, "chatty");
    let shim_before = fds(shim);
    for _ in 0..20 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.write_all(
            b"POST /v1.41/containers/chatty/attach?stream=1&stdout=1&stderr=1&stdin=1 HTTP/1.1\r\n\
              Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let mut got = 0;
        while got < 8192 {
            got += s.read(&mut buf).unwrap();
        }
        drop(s);
    }
    assert!(
        eventually(T, || fds(d.pid()) <= before + 2),
        "berthd holds {} descriptors, {} before",
        fds(d.pid()),
        before
    );
    assert!(
        eventually(T, || fds(shim) <= shim_before),
        "the shim holds {} descriptors, {} before",
        fds(shim),
        shim_before
    );
    assert_eq!(d.docker_inspect("chatty", "{{.State.Status}}"), "running");
    // The log still grows: nobody is stuck on a vanished client.
    let len = |d: &Daemon| {
        std::fs::metadata(d.docker_inspect("chatty", "{{.LogPath}}"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let l1 = len(&d);
    assert!(eventually(T, || len(&d) > l1 + 10_000));
    assert_eq!(ok(&d.docker(&["exec", "tt", "echo", "alive"])), "alive\n");
    ok(&d.docker(&["rm", "-f", "tt", "plain", "idle", "chatty"]));
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_hundred_megabytes_through_attach_hold_little_in_berthd() {
    let d = Daemon::start();
    // Warm up: the first run allocates what every run needs.
    ok(&d.docker(&["run", "--rm", "busybox", "true"]));
    let before = peak_rss_kib(d.pid());
    let mut cmd = d.docker_cmd(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "head -c 100000000 /dev/zero",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        match out.read(&mut buf).unwrap() {
            0 => break,
            n => total += n,
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(total, 100_000_000);
    let grown = peak_rss_kib(d.pid()).saturating_sub(before);
    assert!(
        grown < 8 * 1024,
        "berthd's peak memory grew by {grown} KiB while 100 MB went through attach"
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn api_clients_detach_with_the_keys_too() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "-it", "--name", "sh1", "busybox", "sh"]));
    for (query, keys) in [
        ("", &b"\x10\x11"[..]),
        ("&detachKeys=ctrl-a,d", &b"\x01d"[..]),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(
            format!(
                "POST /v1.41/containers/sh1/attach?stream=1&stdin=1&stdout=1{query} HTTP/1.1\r\n\
                 Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        s.write_all(b"echo ma$((40+2))rk\r").unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !text(&seen).contains("ma42rk") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{}", text(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        // The keys end the session: berthd closes the connection, the shell runs on.
        s.write_all(keys).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("the connection closes");
        assert_eq!(d.docker_inspect("sh1", "{{.State.Status}}"), "running");
    }
    let until = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1
    );
    let events = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "container=sh1",
        "--format",
        "{{.Action}}",
    ]));
    assert_eq!(
        events.lines().filter(|l| *l == "detach").count(),
        2,
        "{events}"
    );
    ok(&d.docker(&["rm", "-f", "sh1"]));
}
