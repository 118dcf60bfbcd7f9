//! Runs the real `berth` binary against a tiny fake daemon on a temporary Unix socket that
//! serves canned Docker API answers, to check the request sequence and what berth prints.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

const ID: &str = "c9283e8a7e0397cab67ac98fdbc8a81c626bbdba2cc6d41362a23cfe51407189";

/// One request as the fake daemon saw it.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    method: String,
    target: String,
    headers: HashMap<String, String>,
}

impl Seen {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// A canned answer: status line, extra headers, body.
#[derive(Clone)]
struct Canned {
    status: &'static str,
    content_type: Option<&'static str>,
    body: String,
}

fn json(status: &'static str, body: &str) -> Canned {
    Canned {
        status,
        content_type: Some("application/json"),
        body: body.to_string(),
    }
}

fn no_body(status: &'static str) -> Canned {
    Canned {
        status,
        content_type: None,
        body: String::new(),
    }
}

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    /// `(method, path)` → answers, used in turn (the last one repeats).
    routes: Mutex<HashMap<(String, String), Vec<Canned>>>,
    started: Notify,
    output_done: Notify,
    wait_status: Mutex<i64>,
    attach_output: Mutex<Vec<u8>>,
    /// What the client sent on an attach with `stdin=1`, up to its half-close.
    stdin_data: Mutex<Option<Vec<u8>>>,
    /// Hold the attach output back until a kill arrives.
    hold_until_kill: std::sync::atomic::AtomicBool,
    killed: Notify,
    conns: AtomicUsize,
}

impl Fake {
    fn route(&self, method: &str, path: &str, answers: Vec<Canned>) {
        self.routes
            .lock()
            .unwrap()
            .insert((method.to_string(), path.to_string()), answers);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn summary(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path()))
            .collect()
    }
}

/// Reads one request head (and a Content-Length body); `None` at EOF.
async fn read_request(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
) -> Option<(String, String, HashMap<String, String>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_string();
            let target = first.next()?.to_string();
            let headers: HashMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
                let body = read_chunked(stream, buf).await?;
                let mut headers = headers;
                headers.insert("x-body".into(), String::from_utf8_lossy(&body).to_string());
                return Some((method, target, headers));
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..len);
            return Some((method, target, headers));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a chunked request body up to its last chunk.
async fn read_chunked(stream: &mut UnixStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).ok()?;
        while buf.len() < line_end + 2 + size + 2 {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..line_end + 2 + size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}

async fn write_canned(stream: &mut UnixStream, c: &Canned, head_only: bool) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {}\r\nApi-Version: 1.41\r\nOstype: linux\r\nServer: fake\r\n",
        c.status
    );
    if let Some(ct) = c.content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", c.body.len()));
    if !head_only {
        out.push_str(&c.body);
    }
    stream.write_all(out.as_bytes()).await
}

async fn serve_conn(fake: Arc<Fake>, mut stream: UnixStream) {
    let conn = fake.conns.fetch_add(1, Ordering::SeqCst);
    let mut buf = Vec::new();
    while let Some((method, target, headers)) = read_request(&mut stream, &mut buf).await {
        let seen = Seen {
            conn,
            method: method.clone(),
            target: target.clone(),
            headers,
        };
        let path = seen.path().to_string();
        fake.seen.lock().unwrap().push(seen);
        let result = if method == "HEAD" && path == "/_ping" {
            write_canned(&mut stream, &no_body("200 OK"), true).await
        } else if path.ends_with("/attach") {
            // The 101 goes out on its own; output follows once the container "started".
            let head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let mut output = fake.attach_output.lock().unwrap().clone();
            if target.contains("stdin=1") {
                // Stdin arrives (and is half-closed) before the start, as with docker.
                let mut data = std::mem::take(&mut buf);
                let _ = stream.read_to_end(&mut data).await;
                output.extend(stdcopy(1, &data));
                *fake.stdin_data.lock().unwrap() = Some(data);
            }
            fake.started.notified().await;
            if fake.hold_until_kill.load(Ordering::SeqCst) {
                fake.killed.notified().await;
            }
            let _ = stream.write_all(&output).await;
            let _ = stream.shutdown().await;
            fake.output_done.notify_one();
            return;
        } else if path.ends_with("/wait") {
            let head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.flush().await;
            fake.output_done.notified().await;
            let code = *fake.wait_status.lock().unwrap();
            let body = format!("{{\"Error\":null,\"StatusCode\":{code}}}\n");
            stream
                .write_all(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes())
                .await
        } else if path.ends_with("/start")
            && !fake
                .routes
                .lock()
                .unwrap()
                .contains_key(&(method.clone(), path.clone()))
        {
            fake.started.notify_one();
            write_canned(&mut stream, &no_body("204 No Content"), false).await
        } else {
            if path.ends_with("/kill") {
                fake.killed.notify_one();
            }
            let key = (method.clone(), path.clone());
            let answer = {
                let mut routes = fake.routes.lock().unwrap();
                match routes.get_mut(&key) {
                    Some(list) if list.len() > 1 => Some(list.remove(0)),
                    Some(list) => list.first().cloned(),
                    None => None,
                }
            };
            let answer = answer
                .unwrap_or_else(|| json("404 Not Found", "{\"message\":\"page not found\"}\n"));
            write_canned(&mut stream, &answer, method == "HEAD").await
        };
        if result.is_err() {
            return;
        }
    }
}

struct Daemon {
    fake: Arc<Fake>,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn socket_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "berth-cli-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

fn start_daemon() -> Daemon {
    let socket = socket_path();
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    let fake = Arc::new(Fake::default());
    let f = fake.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_conn(f.clone(), stream));
        }
    });
    Daemon { fake, socket }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn berth_command(socket: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: tokio::process::Child) -> Outcome {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("berth finished in time")
        .expect("berth ran");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

async fn berth(socket: &std::path::Path, args: &[&str]) -> Outcome {
    finish(berth_command(socket, args).spawn().unwrap()).await
}

fn stdcopy(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![stream, 0, 0, 0];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn run_rm_follows_the_docker_sequence() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/containers/create",
        vec![json(
            "201 Created",
            &format!("{{\"Id\":\"{ID}\",\"Warnings\":[]}}\n"),
        )],
    );
    *d.fake.attach_output.lock().unwrap() = [stdcopy(1, b"hi\n"), stdcopy(2, b"warn\n")].concat();
    *d.fake.wait_status.lock().unwrap() = 3;

    let out = berth(&d.socket, &["run", "--rm", "busybox", "echo", "hi"]).await;

    assert_eq!(out.stdout, "hi\n", "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "warn\n");
    assert_eq!(out.code, 3);
    let seen = d.fake.seen();
    let paths = d.fake.summary();
    assert_eq!(
        paths,
        [
            "HEAD /_ping".to_string(),
            "POST /v1.41/containers/create".into(),
            format!("POST /v1.41/containers/{ID}/attach"),
            format!("POST /v1.41/containers/{ID}/wait"),
            format!("POST /v1.41/containers/{ID}/start"),
        ]
    );
    let attach = &seen[2];
    assert_eq!(
        attach.target,
        format!("/v1.41/containers/{ID}/attach?stderr=1&stdout=1&stream=1")
    );
    assert_eq!(
        attach.headers.get("upgrade").map(String::as_str),
        Some("tcp")
    );
    assert_eq!(
        attach.headers.get("connection").map(String::as_str),
        Some("Upgrade")
    );
    let others: Vec<usize> = seen
        .iter()
        .filter(|s| !s.path().ends_with("/attach"))
        .map(|s| s.conn)
        .collect();
    assert!(
        !others.contains(&attach.conn),
        "attach has a connection of its own"
    );
    assert_eq!(
        seen[3].target,
        format!("/v1.41/containers/{ID}/wait?condition=removed")
    );
    assert_ne!(
        seen[3].conn, seen[4].conn,
        "start does not queue behind the pending wait"
    );
    assert_eq!(
        seen[4].headers.get("content-length").map(String::as_str),
        Some("0")
    );
}

#[tokio::test]
async fn run_pulls_a_missing_image_then_detaches() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/containers/create",
        vec![
            json(
                "404 Not Found",
                "{\"message\":\"No such image: busybox:latest\"}\n",
            ),
            json(
                "201 Created",
                &format!("{{\"Id\":\"{ID}\",\"Warnings\":[\"low memory\"]}}\n"),
            ),
        ],
    );
    d.fake.route(
        "POST",
        "/v1.41/images/create",
        vec![json(
            "200 OK",
            "{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\r\n{\"status\":\"Status: Downloaded newer image for busybox:latest\"}\r\n",
        )],
    );
    // The detached run's wait must still be answered; nothing else will be streamed.
    d.fake.output_done.notify_one();

    let out = berth(
        &d.socket,
        &["run", "-d", "--name", "web", "-m", "64m", "busybox"],
    )
    .await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, format!("{ID}\n"));
    assert!(
        out.stderr
            .starts_with("Unable to find image 'busybox:latest' locally\n"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("latest: Pulling from library/busybox\n"));
    assert!(out.stderr.contains("WARNING: low memory\n"));
    let seen = d.fake.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets[1], "/v1.41/containers/create?name=web");
    assert_eq!(
        targets[2],
        "/v1.41/images/create?fromImage=docker.io%2Flibrary%2Fbusybox&tag=latest"
    );
    assert_eq!(targets[3], "/v1.41/containers/create?name=web");
    assert!(seen[4].target.ends_with("/wait?condition=next-exit"));
    assert!(seen[5].target.ends_with("/start"));
    assert!(!seen.iter().any(|s| s.path().ends_with("/attach")));
}

#[tokio::test]
async fn a_failed_pull_exits_125() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/containers/create",
        vec![json(
            "404 Not Found",
            "{\"message\":\"No such image: nosuch:latest\"}\n",
        )],
    );
    d.fake.route(
        "POST",
        "/v1.41/images/create",
        vec![json(
            "500 Internal Server Error",
            "{\"message\":\"manifest unknown\"}\n",
        )],
    );
    let out = berth(&d.socket, &["run", "nosuch"]).await;
    assert_eq!(out.code, 125);
    assert!(
        out.stderr
            .contains("berth: Error response from daemon: manifest unknown"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn start_failures_map_to_126_and_127() {
    for (message, code) in [
        ("exec: \"nope\": executable file not found in $PATH", 127),
        ("exec /etc: permission denied", 126),
    ] {
        let d = start_daemon();
        d.fake.route(
            "POST",
            "/v1.41/containers/create",
            vec![json(
                "201 Created",
                &format!("{{\"Id\":\"{ID}\",\"Warnings\":null}}"),
            )],
        );
        d.fake.route(
            "POST",
            &format!("/v1.41/containers/{ID}/start"),
            vec![json(
                "400 Bad Request",
                &format!("{{\"message\":{message:?}}}"),
            )],
        );
        let out = berth(&d.socket, &["run", "busybox", "nope"]).await;
        assert_eq!(out.code, code, "{message}: {}", out.stderr);
    }
}

#[tokio::test]
async fn multi_target_commands_report_each_failure() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/containers/a/stop",
        vec![no_body("204 No Content")],
    );
    d.fake.route(
        "POST",
        "/v1.41/containers/nope/stop",
        vec![json(
            "404 Not Found",
            "{\"message\":\"No such container: nope\"}\n",
        )],
    );
    d.fake.route(
        "POST",
        "/v1.41/containers/c/stop",
        vec![no_body("304 Not Modified")],
    );
    let out = berth(&d.socket, &["stop", "-t", "2", "a", "nope", "c"]).await;
    assert_eq!(out.stdout, "a\nc\n");
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such container: nope\n"
    );
    assert_eq!(out.code, 1);
    assert!(d
        .fake
        .seen()
        .iter()
        .any(|s| s.target == "/v1.41/containers/a/stop?t=2"));
}

#[tokio::test]
async fn inspect_falls_back_from_container_to_image() {
    let d = start_daemon();
    d.fake.route(
        "GET",
        "/v1.41/containers/busybox/json",
        vec![json(
            "404 Not Found",
            "{\"message\":\"No such container: busybox\"}\n",
        )],
    );
    d.fake.route(
        "GET",
        "/v1.41/images/busybox/json",
        vec![json("200 OK", "{\"Id\":\"sha256:abc\",\"RepoTags\":[\"busybox:latest\"],\"Config\":{\"Cmd\":[\"sh\"]}}")],
    );
    d.fake.route(
        "GET",
        "/v1.41/containers/x/json",
        vec![json(
            "404 Not Found",
            "{\"message\":\"No such container: x\"}\n",
        )],
    );
    d.fake.route(
        "GET",
        "/v1.41/images/x/json",
        vec![json(
            "404 Not Found",
            "{\"message\":\"no such image: x: No such image: x:latest\"}\n",
        )],
    );
    let out = berth(&d.socket, &["inspect", "busybox"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "[\n    {\n        \"Id\": \"sha256:abc\",\n        \"RepoTags\": [\n            \"busybox:latest\"\n        ],\n        \"Config\": {\n            \"Cmd\": [\n                \"sh\"\n            ]\n        }\n    }\n]\n"
    );
    let out = berth(
        &d.socket,
        &["inspect", "-f", "{{.Id}} {{json .Config.Cmd}}", "busybox"],
    )
    .await;
    assert_eq!(out.stdout, "sha256:abc [\"sh\"]\n");
    let out = berth(&d.socket, &["inspect", "x"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "[]\n", "Error: No such object: x\n")
    );
}

#[tokio::test]
async fn ps_prints_the_docker_table() {
    let d = start_daemon();
    d.fake.route(
        "GET",
        "/v1.41/containers/json",
        vec![json(
            "200 OK",
            include_str!("fixtures/containers-list.json"),
        )],
    );
    let out = berth(
        &d.socket,
        &[
            "ps",
            "-a",
            "--filter",
            "status=running",
            "--format",
            "{{.Names}}\\t{{.Status}}",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "lucid_shtern\tUp 2 minutes\nck-c2\tUp 3 minutes\nck-d\tUp 3 minutes\n"
    );
    let target = &d.fake.seen()[1].target;
    assert_eq!(
        target,
        "/v1.41/containers/json?all=1&filters=%7B%22status%22%3A%7B%22running%22%3Atrue%7D%7D"
    );
    let out = berth(&d.socket, &["container", "ls", "-q"]).await;
    assert_eq!(out.stdout, "c9283e8a7e03\n577055a12f8f\n03ed8a5ead50\n");
}

#[tokio::test]
async fn a_missing_daemon_is_reported_plainly() {
    let socket = socket_path();
    let host = format!("unix://{}", socket.display());
    for args in [&["ps"][..], &["run", "busybox"][..]] {
        let out = berth(&socket, args).await;
        assert_eq!(out.code, 1);
        assert_eq!(
            out.stderr,
            format!("Cannot connect to the berth daemon at {host}. Is berthd running?\n")
        );
    }
}

#[tokio::test]
async fn run_i_forwards_stdin_and_half_closes_it() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/containers/create",
        vec![json(
            "201 Created",
            &format!("{{\"Id\":\"{ID}\",\"Warnings\":[]}}"),
        )],
    );
    let mut cmd = berth_command(&d.socket, &["run", "-i", "--rm", "busybox", "cat"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"piped-data\n").await.unwrap();
    drop(stdin);
    let out = finish(child).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "piped-data\n");
    assert_eq!(
        d.fake.stdin_data.lock().unwrap().as_deref(),
        Some(&b"piped-data\n"[..])
    );
    let seen = d.fake.seen();
    assert!(seen[2]
        .target
        .ends_with("/attach?stderr=1&stdin=1&stdout=1&stream=1"));
}

#[tokio::test]
async fn signals_are_forwarded_to_the_container() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/containers/create",
        vec![json(
            "201 Created",
            &format!("{{\"Id\":\"{ID}\",\"Warnings\":[]}}"),
        )],
    );
    d.fake.route(
        "POST",
        &format!("/v1.41/containers/{ID}/kill"),
        vec![no_body("204 No Content")],
    );
    d.fake.hold_until_kill.store(true, Ordering::SeqCst);
    *d.fake.wait_status.lock().unwrap() = 130;
    let child = berth_command(&d.socket, &["run", "busybox", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = child.id().unwrap() as i32;
    for _ in 0..200 {
        if d.fake.summary().iter().any(|p| p.ends_with("/start")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = finish(child).await;
    assert_eq!(out.code, 130, "{}", out.stderr);
    let kill = d
        .fake
        .seen()
        .into_iter()
        .find(|s| s.path().ends_with("/kill"))
        .expect("a kill was sent");
    assert_eq!(
        kill.target,
        format!("/v1.41/containers/{ID}/kill?signal=INT")
    );
}

#[tokio::test]
async fn load_and_import_stream_their_input() {
    let d = start_daemon();
    d.fake.route(
        "POST",
        "/v1.41/images/load",
        vec![json(
            "200 OK",
            "{\"stream\":\"Loaded image: busybox:latest\\n\"}\n",
        )],
    );
    d.fake.route(
        "POST",
        "/v1.41/images/create",
        vec![json("200 OK", "{\"status\":\"sha256:0123\"}\r\n")],
    );
    let tar = std::env::temp_dir().join(format!("berth-cli-{}.tar", std::process::id()));
    std::fs::write(&tar, b"fake tar bytes").unwrap();
    let tar_path = tar.to_str().unwrap();
    let out = berth(&d.socket, &["load", "-i", tar_path]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Loaded image: busybox:latest\n"),
        "{}",
        out.stderr
    );
    let out = berth(
        &d.socket,
        &[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            "-m",
            "ck import",
            tar_path,
            "ck-imported:v1",
        ],
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "sha256:0123\n"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(&tar).unwrap();
    let seen = d.fake.seen();
    let load = seen
        .iter()
        .find(|s| s.path() == "/v1.41/images/load")
        .unwrap();
    assert_eq!(load.target, "/v1.41/images/load?quiet=1");
    assert_eq!(load.headers["content-type"], "application/x-tar");
    assert_eq!(load.headers["x-body"], "fake tar bytes");
    let import = seen
        .iter()
        .find(|s| s.path() == "/v1.41/images/create")
        .unwrap();
    assert_eq!(
        import.target,
        "/v1.41/images/create?changes=CMD+%5B%22%2Fbin%2Fsh%22%5D&fromSrc=-&message=ck+import&repo=ck-imported%3Av1"
    );
    assert_eq!(import.headers["content-type"], "text/plain");
    assert_eq!(import.headers["x-body"], "fake tar bytes");
}

#[tokio::test]
async fn events_stream_until_the_daemon_ends_them() {
    let d = start_daemon();
    let events = concat!(
        "{\"status\":\"start\",\"id\":\"abc\",\"Type\":\"container\",\"Action\":\"start\",",
        "\"Actor\":{\"ID\":\"abc\",\"Attributes\":{\"name\":\"web\"}},\"scope\":\"local\",\"time\":1,\"timeNano\":1000000000}\n",
        "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"abc\",\"Attributes\":{\"exitCode\":\"0\"}},\"scope\":\"local\",\"time\":2,\"timeNano\":2000000000}\n",
    );
    d.fake
        .route("GET", "/v1.41/events", vec![json("200 OK", events)]);
    let out = berth(
        &d.socket,
        &[
            "events",
            "--since",
            "0",
            "--until",
            "3",
            "--format",
            "{{.Action}} {{.Actor.Attributes}}",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "start map[name:web]\ndie map[exitCode:0]\n");
    let out = berth(&d.socket, &["events", "-f", "type=container"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with(" container start abc (name=web)"),
        "{}",
        lines[0]
    );
    let targets: Vec<String> = d.fake.seen().iter().map(|s| s.target.clone()).collect();
    assert!(targets.contains(&"/v1.41/events?since=0&until=3".to_string()));
    assert!(targets.contains(
        &"/v1.41/events?filters=%7B%22type%22%3A%7B%22container%22%3Atrue%7D%7D".to_string()
    ));
}
