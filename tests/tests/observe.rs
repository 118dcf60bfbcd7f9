//! `docker stats` and `docker top` against berthd: what the user sees, the API's shape, a
//! stream that ends when the client goes, and clear errors.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use berth_tests::{ok, text, Daemon};

fn still_serving(d: &Daemon) {
    let r = d
        .request("GET", "/_ping", &[], b"")
        .expect("berthd stopped answering");
    assert_eq!(r.status, 200);
}

fn daemon_fds(d: &Daemon) -> usize {
    let pid = std::fs::read_to_string(d.root.path().join("berthd.pid")).unwrap();
    std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .unwrap()
        .count()
}

/// `12.34%` as a number.
fn percent(s: &str) -> f64 {
    s.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("not a percentage: {s:?}"))
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_stats_no_stream_shows_cpu_and_memory() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]));
    ok(&d.docker(&["run", "-d", "--name", "idle", "busybox", "sleep", "300"]));
    let out = ok(&d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.MemPerc}} {{.PIDs}}",
        "busy",
    ]));
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 7, "{out}");
    assert_eq!(f[0], "busy");
    // A busy loop on a shared machine still gets a good share of a CPU.
    assert!(percent(f[1]) > 5.0, "{out}");
    assert!(percent(f[1]) <= 100.0 * num_cpus() as f64 + 1.0, "{out}");
    // `usage / limit`: the limit is the container's memory limit.
    assert!(f[2].ends_with("iB") || f[2].ends_with('B'), "{out}");
    assert_eq!((f[3], f[4]), ("/", "64MiB"), "{out}");
    assert!(percent(f[5]) > 0.0 && percent(f[5]) < 100.0, "{out}");
    assert_eq!(f[6], "1", "{out}");

    // The default table for several containers, and -a with a stopped one.
    ok(&d.docker(&["create", "--name", "stopped", "busybox", "true"]));
    let out = ok(&d.docker(&["stats", "--no-stream", "-a"]));
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "CONTAINER",
            "ID",
            "NAME",
            "CPU",
            "%",
            "MEM",
            "USAGE",
            "/",
            "LIMIT",
            "MEM",
            "%",
            "NET",
            "I/O",
            "BLOCK",
            "I/O",
            "PIDS"
        ]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{out}");
    let stopped = rows.iter().find(|r| r.contains(" stopped ")).unwrap();
    let cells: Vec<&str> = stopped.split_whitespace().collect();
    assert_eq!(
        &cells[2..],
        ["0.00%", "0B", "/", "0B", "0.00%", "0B", "/", "0B", "0B", "/", "0B", "0"],
        "{stopped}"
    );
    let idle = rows.iter().find(|r| r.contains(" idle ")).unwrap();
    assert!(idle.split_whitespace().last() == Some("1"), "{idle}");

    let out = d.docker(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nosuch"),
        "{}",
        text(&out.stderr)
    );
    still_serving(&d);
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn the_stats_api_has_dockers_shape_and_streams_until_the_client_goes() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "st",
        "-m",
        "32m",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "sleep 300 & while :; do :; done",
    ]));
    let r = d
        .request("GET", "/v1.41/containers/st/stats?stream=0", &[], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let s = r.json();
    assert_eq!(s["name"], "/st");
    assert_eq!(s["id"].as_str().unwrap().len(), 64);
    let read = chrono_secs(s["read"].as_str().unwrap());
    let preread = chrono_secs(s["preread"].as_str().unwrap());
    assert!((0.5..3.0).contains(&(read - preread)), "{s}");
    let cpu = &s["cpu_stats"];
    let pre = &s["precpu_stats"];
    assert!(
        cpu["cpu_usage"]["total_usage"].as_u64().unwrap()
            > pre["cpu_usage"]["total_usage"].as_u64().unwrap()
    );
    assert!(cpu["system_cpu_usage"].as_u64().unwrap() > pre["system_cpu_usage"].as_u64().unwrap());
    assert_eq!(cpu["online_cpus"].as_u64().unwrap() as usize, num_cpus());
    assert!(cpu["throttling_data"].is_object());
    assert_eq!(s["memory_stats"]["limit"], 32 << 20);
    assert!(s["memory_stats"]["usage"].as_u64().unwrap() > 0);
    assert!(s["memory_stats"]["stats"].as_object().unwrap().len() > 5);
    assert_eq!(s["pids_stats"]["current"], 2);
    assert_eq!(s["pids_stats"]["limit"], 20);
    for key in [
        "io_service_bytes_recursive",
        "io_serviced_recursive",
        "io_queue_recursive",
        "io_service_time_recursive",
        "io_wait_time_recursive",
        "io_merged_recursive",
        "io_time_recursive",
        "sectors_recursive",
    ] {
        assert!(s["blkio_stats"].get(key).is_some(), "{key} missing: {s}");
    }
    assert_eq!(s["num_procs"], 0);
    assert!(s["storage_stats"].is_object());

    // one-shot: at once, no previous sample.
    let t0 = Instant::now();
    let r = d
        .request(
            "GET",
            "/v1.41/containers/st/stats?stream=0&one-shot=1",
            &[],
            b"",
        )
        .unwrap();
    assert!(t0.elapsed() < Duration::from_millis(900));
    assert_eq!(r.json()["preread"], "0001-01-01T00:00:00Z");
    let r = d
        .request(
            "GET",
            "/v1.41/containers/st/stats?stream=1&one-shot=1",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 400);

    // Streaming: one object a second, each carrying the one before as precpu.
    let baseline = daemon_fds(&d);
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1.41/containers/st/stats HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let samples = read_stream_objects(&mut reader, 3);
    for w in samples.windows(2) {
        assert_eq!(w[1]["precpu_stats"], w[0]["cpu_stats"]);
        assert_eq!(w[1]["preread"], w[0]["read"]);
        let gap = chrono_secs(w[1]["read"].as_str().unwrap())
            - chrono_secs(w[0]["read"].as_str().unwrap());
        assert!((0.5..2.5).contains(&gap), "{gap}");
    }
    drop(reader);
    drop(s);
    // Several clients that go away: nothing of them stays in berthd.
    for _ in 0..5 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        write!(
            s,
            "GET /v1.41/containers/st/stats?stream=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        read_stream_objects(&mut reader, 1);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds = daemon_fds(&d);
    while fds > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        fds = daemon_fds(&d);
    }
    assert!(
        fds <= baseline,
        "berthd holds {fds} fds, {baseline} before the streams"
    );

    // A stream ends when its container is removed.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /v1.41/containers/st/stats HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    read_stream_objects(&mut reader, 1);
    ok(&d.docker(&["rm", "-f", "st"]));
    let t0 = Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("the stream did not end");
        if n == 0 || line == "0\r\n" {
            break;
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(15));
    still_serving(&d);
}

/// Reads `n` JSON objects from a chunked stats stream (after the response head).
fn read_stream_objects(r: &mut impl BufRead, n: usize) -> Vec<serde_json::Value> {
    let mut head = String::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l == "\r\n" || l.is_empty() {
            break;
        }
        head.push_str(&l);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let mut size = String::new();
        r.read_line(&mut size).unwrap();
        let len = usize::from_str_radix(size.trim(), 16).unwrap();
        assert!(len > 0, "the stream ended");
        let mut chunk = vec![0; len + 2];
        std::io::Read::read_exact(r, &mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..len]);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

fn chrono_secs(t: &str) -> f64 {
    // RFC 3339 UTC with up to nine fraction digits.
    let (date, time) = t.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let h: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let days = days_from_civil(d[0], d[1], d[2]);
    (days * 86400 + h[0] * 3600 + h[1] * 60 + h[2]) as f64
        + format!("0.{frac}").parse::<f64>().unwrap()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_top_lists_the_containers_processes() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "tp",
        "busybox",
        "sh",
        "-c",
        "sleep 301 & sleep 302; echo done",
    ]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = ok(&d.docker(&["top", "tp"]));
        if out.contains("sleep 301") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    // docker's tabwriter: columns at least 20 wide, 3 spaces of padding.
    assert!(header.starts_with("UID                 PID"), "{header:?}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows.iter().any(|r| r.ends_with("sleep 301")), "{out}");
    assert!(rows.iter().any(|r| r.ends_with("sleep 302")), "{out}");
    assert!(
        rows.iter()
            .any(|r| r.ends_with("sh -c sleep 301 & sleep 302; echo done")),
        "{out}"
    );
    assert!(rows.iter().all(|r| r.starts_with("root ")), "{out}");

    let out = ok(&d.docker(&["top", "tp", "-o", "pid,comm"]));
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    let comms: Vec<String> = lines
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(comms.iter().filter(|c| *c == "sleep").count(), 2, "{out}");

    // The API: every value a string; the pids are the container's.
    let r = d
        .request(
            "GET",
            "/v1.41/containers/tp/top?ps_args=-o+pid,ppid,args",
            &[],
            b"",
        )
        .unwrap();
    let top = r.json();
    assert_eq!(top["Titles"], serde_json::json!(["PID", "PPID", "COMMAND"]));
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", "tp"]));
    let procs = top["Processes"].as_array().unwrap();
    assert!(procs.iter().any(|p| p[0] == pid.trim()), "{top}");
    assert!(procs
        .iter()
        .all(|p| p.as_array().unwrap().iter().all(|v| v.is_string())));

    // Paused: still listed (dockerd allows it). Stopped: 409.
    ok(&d.docker(&["pause", "tp"]));
    assert!(ok(&d.docker(&["top", "tp"])).contains("sleep 302"));
    ok(&d.docker(&["unpause", "tp"]));
    ok(&d.docker(&["kill", "tp"]));
    let out = d.docker(&["top", "tp"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );
    let r = d
        .request("GET", "/v1.41/containers/tp/top", &[], b"")
        .unwrap();
    assert_eq!(r.status, 409);
    let out = d.docker(&["top", "nosuch"]);
    assert!(text(&out.stderr).contains("No such container: nosuch"));
    // Options that rename another column PID are refused, as dockerd does; bad ps options
    // are ps's own error.
    ok(&d.docker(&["start", "tp"]));
    let r = d
        .request(
            "GET",
            "/v1.41/containers/tp/top?ps_args=-o%20pid,user=PID",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(text(&r.body).contains("is not allowed"));
    let out = d.docker(&["top", "tp", "--no-such-ps-option"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Error response from daemon: ps: "),
        "{}",
        text(&out.stderr)
    );
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn berth_stats_streams_a_table_every_second() {
    let d = Daemon::start();
    ok(&d.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "300"]));
    let mut child = d
        .berth_cmd(&["stats"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut buf);
        buf
    });
    std::thread::sleep(Duration::from_millis(3500));
    // A container started meanwhile joins the table.
    ok(&d.berth(&["run", "-d", "--name", "late", "busybox", "sleep", "300"]));
    std::thread::sleep(Duration::from_millis(2500));
    let _ = child.kill();
    let _ = child.wait();
    let out = text(&reader.join().unwrap());
    let frames: Vec<&str> = out
        .split("\x1b[2J\x1b[H")
        .filter(|f| !f.is_empty())
        .collect();
    assert!(frames.len() >= 4, "{out:?}");
    for f in &frames {
        assert!(f.starts_with("CONTAINER ID   NAME"), "{f:?}");
    }
    assert!(
        frames
            .iter()
            .any(|f| f.lines().any(|l| l.contains(" live "))),
        "{out}"
    );
    assert!(frames.last().unwrap().contains(" late "), "{out}");
    // The first frame has no sample yet; later ones have numbers.
    assert!(frames.last().unwrap().contains('%'));
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_stats_streams_until_the_client_goes() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "watched", "busybox", "sleep", "300"]));
    let baseline = daemon_fds(&d);
    let mut child = d
        .docker_cmd(&["stats", "watched"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut buf);
        buf
    });
    std::thread::sleep(Duration::from_millis(4000));
    // The client goes away without a word, as a killed CLI does.
    let _ = child.kill();
    let _ = child.wait();
    let out = text(&reader.join().unwrap());
    let rows: Vec<&str> = out
        .split('\x1b')
        .flat_map(|part| part.lines())
        .filter(|l| l.contains(" watched "))
        .collect();
    assert!(rows.len() >= 2, "{out:?}");
    let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
    assert!(last[2].ends_with('%') && last[2] != "--", "{out:?}");
    assert_eq!(last[last.len() - 1], "1", "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds = daemon_fds(&d);
    while fds > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        fds = daemon_fds(&d);
    }
    assert!(fds <= baseline, "berthd holds {fds} fds, {baseline} before");
    still_serving(&d);
}
