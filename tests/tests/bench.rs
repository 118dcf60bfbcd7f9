//! `berth bench`: the shape of what it writes (every scenario in the markdown and the JSON,
//! the floor under the start rows, numbers that parse, a well-formed SVG) and that it
//! removes everything it started, also when interrupted. Never its speed: benchmarks are
//! not timed assertions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{bin_dir, mounts_under, require_root, run_with_timeout, text};
use serde_json::Value;

/// The floor's rows: the container started without an engine.
const FLOOR: [&str; 3] = ["berth-runtime", "runc", "unshare-chroot"];

/// The scenario ids every full or quick run reports.
const SCENARIOS: [&str; 11] = [
    "run-rm",
    "cpu",
    "exec",
    "parallel",
    "ps",
    "inspect",
    "memory",
    "daemon-kill",
    "fifty",
    "build",
    "registry",
];

fn bench_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin_dir().join("berth"));
    c.arg("bench").args(args).stdin(Stdio::null());
    c
}

/// The bench's temporary directory, from the socket path in the berthd engine's `how`.
fn temp_dir_of(results: &Value) -> PathBuf {
    let how = results["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "berthd")
        .and_then(|e| e["how"].as_str())
        .expect("the berthd engine says how it was reached")
        .to_string();
    let sock = how
        .split_whitespace()
        .find_map(|w| w.strip_prefix("unix://"))
        .expect("a unix:// socket in how");
    Path::new(sock)
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("berth-bench-"))
        })
        .expect("the socket is in the bench's temporary directory")
        .to_path_buf()
}

/// A table cell: `n/a [k]`, or a number with an optional ` (r×)` ratio.
fn check_cell(cell: &str, line: &str) {
    if let Some(note) = cell.strip_prefix("n/a [") {
        let n: usize = note.trim_end_matches(']').parse().unwrap_or_else(|_| {
            panic!("bad footnote in {cell:?} of {line:?}");
        });
        assert!(n >= 1);
        return;
    }
    let (value, ratio) = match cell.split_once(" (") {
        Some((v, r)) => (v, Some(r)),
        None => (cell, None),
    };
    let v: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("{cell:?} in {line:?} is not a number"));
    assert!(v.is_finite() && v >= 0.0, "{cell:?} in {line:?}");
    if let Some(r) = ratio {
        let r: f64 = r
            .trim_end_matches(')')
            .trim_end_matches('×')
            .parse()
            .unwrap_or_else(|_| panic!("bad ratio {cell:?} in {line:?}"));
        assert!(r.is_finite() && r >= 0.0);
    }
}

fn check_json(results: &Value) {
    let engines: Vec<&str> = results["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        engines,
        [
            "berthd",
            "daemonless",
            "docker-cli-berthd",
            "docker",
            "podman"
        ]
    );
    for e in results["engines"].as_array().unwrap() {
        if e["available"] == false {
            assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
        }
    }
    let berthd = &results["engines"][0];
    assert_eq!(berthd["available"], true, "{berthd}");
    assert_eq!(results["schema"], 2);
    assert_eq!(results["baseline"], "berthd");
    assert_eq!(results["quick"], true);
    for key in [
        "cores",
        "kernel",
        "cgroup",
        "berth_version",
        "memory_gib",
        "host_mounts",
    ] {
        assert!(!results["machine"][key].is_null(), "machine.{key} missing");
    }
    let ids: Vec<&str> = results["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, SCENARIOS);
    for s in results["scenarios"].as_array().unwrap() {
        let rows = s["rows"].as_array().unwrap();
        assert!(!rows.is_empty(), "{} has no rows", s["id"]);
        for row in rows {
            for engine in &engines {
                let cell = &row["cells"][*engine];
                match cell["status"].as_str() {
                    Some("measured") => {
                        let v = cell["value"].as_f64().unwrap_or_else(|| {
                            panic!("{}/{}/{engine}: {cell}", s["id"], row["id"])
                        });
                        assert!(v.is_finite() && v >= 0.0);
                        let samples = cell["samples"].as_array().unwrap();
                        assert!(!samples.is_empty());
                        assert!(samples.iter().all(|x| x.as_f64().is_some()));
                    }
                    Some("unavailable") => {
                        assert!(!cell["reason"].as_str().unwrap().is_empty())
                    }
                    _ => panic!("{}/{}/{engine}: {cell}", s["id"], row["id"]),
                }
            }
        }
    }
    let scenario = |id: &str| {
        results["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
    };
    let row_ids = |id: &str| -> Vec<String> {
        scenario(id)["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(row_ids("run-rm"), ["p50", "p90", "p99"]);
    for c in [1, 2, 4, 8, 16, 32] {
        assert!(row_ids("parallel").contains(&format!("throughput-c{c}")));
        assert!(row_ids("parallel").contains(&format!("latency-c{c}")));
    }
    assert_eq!(row_ids("ps"), ["n10", "n100"]);
    assert_eq!(row_ids("inspect"), ["n10", "n100"]);
    assert_eq!(row_ids("fifty"), ["start", "ps", "rm"]);
    assert_eq!(
        row_ids("build"),
        ["warm-p50", "warm-p90", "late-p50", "late-steps"]
    );
    // Only the steps after the late COPY are rebuilt.
    let steps = &scenario("build")["rows"][3]["cells"]["berthd"];
    assert_eq!(steps["value"], 2.0, "{steps}");
    assert_eq!(
        row_ids("registry"),
        [
            "pull",
            "pull-floor",
            "unpack",
            "unpack-floor",
            "push",
            "push-again"
        ]
    );
    // berthd, the baseline, is measured in every scenario it has.
    let p50 = &scenario("run-rm")["rows"][0]["cells"]["berthd"];
    assert_eq!(p50["status"], "measured", "{p50}");
    let kill = &scenario("daemon-kill")["rows"][0]["cells"]["berthd"];
    assert_eq!(kill["status"], "measured", "{kill}");
    for row in scenario("fifty")["rows"].as_array().unwrap() {
        let cell = &row["cells"]["berthd"];
        assert_eq!(cell["status"], "measured", "fifty/{}: {cell}", row["id"]);
    }
    check_floor_json(results, &engines);
}

/// The floor: every way of starting the container without an engine measured (runc and
/// unshare are installed where the tests run), and every engine's distance from it.
fn check_floor_json(results: &Value, engines: &[&str]) {
    let floor = &results["floor"];
    assert_eq!(floor["compared_with"], "run-rm/p50", "{floor}");
    assert!(!floor["method"].as_str().unwrap().is_empty());
    assert!(floor["cgroup_parent"]
        .as_str()
        .unwrap()
        .starts_with("berth-bench-"));
    let rows = floor["rows"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, FLOOR);
    for row in rows {
        let p50 = &row["p50"];
        assert_eq!(p50["status"], "measured", "floor/{}: {p50}", row["id"]);
        let v = p50["value"].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "floor/{}: {p50}", row["id"]);
        let samples = p50["samples"].as_array().unwrap();
        assert_eq!(
            samples.len() as u64,
            results["plan"]["latency_runs"].as_u64().unwrap(),
            "floor/{}: one sample per round",
            row["id"]
        );
        assert!(row["p90"].as_f64().is_some_and(f64::is_finite), "{row}");
        assert!(!row["how"].as_str().unwrap().is_empty(), "{row}");
        for engine in engines {
            let gap = &row["engines"][*engine];
            match gap["status"].as_str() {
                Some("measured") => {
                    assert!(
                        gap["above_ms"].as_f64().is_some_and(f64::is_finite),
                        "{gap}"
                    );
                    assert!(gap["ratio"].as_f64().is_some_and(|r| r > 0.0), "{gap}");
                }
                Some("unavailable") => assert!(!gap["reason"].as_str().unwrap().is_empty()),
                _ => panic!("floor/{}/{engine}: {gap}", row["id"]),
            }
        }
        assert_eq!(row["engines"]["berthd"]["status"], "measured", "{row}");
    }
}

fn check_markdown(md: &str, results: &Value) {
    for s in results["scenarios"].as_array().unwrap() {
        let title = s["title"].as_str().unwrap();
        assert!(
            md.contains(&format!("| {title} |")),
            "{title} is not in the table"
        );
        assert!(md.contains(&format!("(`{}`)", s["id"].as_str().unwrap())));
    }
    let header = md
        .lines()
        .find(|l| l.starts_with("| scenario | metric | unit |"))
        .expect("the table's header");
    for label in [
        "berth → berthd",
        "berth --daemonless",
        "docker CLI → berthd",
        "docker",
        "podman",
    ] {
        assert!(header.contains(&format!(" {label} |")), "{header}");
    }
    let rows: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| scenario |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let expected: usize = results["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_array().unwrap().len())
        .sum();
    assert_eq!(rows.len(), expected);
    for line in rows {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", scenario, metric, unit, 5 engines, "".
        assert_eq!(cells.len(), 10, "{line}");
        for cell in &cells[4..9] {
            check_cell(cell, line);
        }
    }
    // Every footnote a cell points to exists.
    let notes = md
        .lines()
        .filter(|l| {
            l.split_once(". ")
                .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
        })
        .count();
    for k in 1..=notes {
        assert!(md.contains(&format!("n/a [{k}]")));
    }
    assert!(!md.contains(&format!("n/a [{}]", notes + 1)));
    check_floor_markdown(md);
}

/// The floor's table: a row per way, its p50 and p90, then each engine's distance from it
/// (`+x.x (r.rr×)`) or why it has none.
fn check_floor_markdown(md: &str) {
    let header = md
        .lines()
        .find(|l| l.starts_with("| floor | p50 ms | p90 ms |"))
        .expect("the floor's table");
    assert!(
        header.ends_with(" docker CLI → berthd | docker | podman |"),
        "{header}"
    );
    let rows: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| floor |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let labels: Vec<&str> = rows
        .iter()
        .map(|l| l.split('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(
        labels,
        [
            "`berth-runtime` alone",
            "`runc` alone",
            "`unshare` + `chroot`"
        ]
    );
    for line in rows {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", floor, p50, p90, 5 engines, "".
        assert_eq!(cells.len(), 10, "{line}");
        for cell in &cells[2..4] {
            check_cell(cell, line);
        }
        for cell in &cells[4..9] {
            if cell.starts_with("n/a [") {
                check_cell(cell, line);
                continue;
            }
            let (diff, ratio) = cell.split_once(" (").unwrap_or_else(|| panic!("{cell:?}"));
            assert!(diff.starts_with('+') || diff.starts_with('-'), "{cell:?}");
            let d: f64 = diff[1..].parse().unwrap_or_else(|_| panic!("{cell:?}"));
            assert!(d.is_finite(), "{cell:?}");
            check_cell(&format!("1 ({ratio}"), line);
        }
    }
}

fn check_svg(path: &Path) {
    let svg = std::fs::read_to_string(path).expect("concurrency.svg");
    let doc = roxmltree::Document::parse(&svg).expect("a well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants()
            .any(|n| n.tag_name().name() == "polyline" && n.attribute("stroke-width") == Some("2")),
        "no engine's line in the chart"
    );
}

/// Nothing of the run is left: its temporary directory, mounts and accounting cgroups.
fn check_cleaned_up(tmp: &Path, results: Option<&Value>) {
    assert!(!tmp.exists(), "{} was left", tmp.display());
    assert!(
        mounts_under(tmp).is_empty(),
        "mounts left under {}",
        tmp.display()
    );
    if let Some(parent) = results.and_then(|r| r["floor"]["cgroup_parent"].as_str()) {
        let left = cgroups_named(parent);
        assert!(left.is_empty(), "the floor's cgroups were left: {left:?}");
    }
    if let Some(cg) = results.and_then(|r| r["cpu_accounting"].as_str()) {
        if let Some(dir) = cg
            .split_whitespace()
            .find(|w| w.starts_with("/sys/fs/cgroup"))
        {
            let base = Path::new(dir.trim_end_matches("/*"));
            assert!(!base.exists(), "{} was left", base.display());
        }
    }
    let needle = tmp.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(!cmdline.contains(&needle), "left running: {cmdline}");
        }
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn quick_bench_reports_every_scenario() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("results");
    let mut cmd = bench_cmd(&["--quick", "--out"]);
    cmd.arg(&dir);
    let run = run_with_timeout(cmd, Duration::from_secs(900));
    assert!(
        run.status.success(),
        "berth bench failed ({}):\n{}\n{}",
        run.status,
        text(&run.stdout),
        text(&run.stderr)
    );
    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let results: Value = serde_json::from_str(&json).expect("results.json is JSON");
    check_json(&results);
    let md = std::fs::read_to_string(dir.join("results.md")).expect("results.md");
    check_markdown(&md, &results);
    assert_eq!(text(&run.stdout).trim(), md.trim(), "stdout is the table");
    check_svg(&dir.join("concurrency.svg"));
    check_cleaned_up(&temp_dir_of(&results), Some(&results));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn an_engine_that_is_not_there_is_reported_not_fatal() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("results");
    let mut cmd = bench_cmd(&[
        "--engines",
        "berthd,podman",
        "--scenarios",
        "run-rm",
        "--runs",
        "2",
        "--out",
    ]);
    // A podman that cannot start: the bench must say why and go on.
    cmd.arg(&dir)
        .env("PATH", "/nonexistent:/usr/sbin:/usr/bin:/sbin:/bin");
    let run = run_with_timeout(cmd, Duration::from_secs(300));
    assert!(run.status.success(), "{}", text(&run.stderr));
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let podman = &results["engines"][1];
    assert_eq!(podman["id"], "podman");
    if podman["available"] == false {
        assert!(podman["reason"].as_str().unwrap().contains("podman"));
        let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(md.contains("**podman**: unavailable: "), "{md}");
    }
    let ids: Vec<&str> = results["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run-rm", "cpu"]);
    check_cleaned_up(&temp_dir_of(&results), Some(&results));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn an_interrupted_bench_removes_what_it_started() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let mut cmd = bench_cmd(&["--engines", "berthd", "--scenarios", "listing", "--out"]);
    cmd.arg(out.path().join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let bench_pid = child.id() as i32;
    // Wait for the private berthd to hold containers, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(120);
    let tmp = loop {
        assert!(Instant::now() < deadline, "the bench made no containers");
        if let Some(data) = private_berthd_data_root(bench_pid) {
            let made = std::fs::read_dir(data.join("containers")).map_or(0, |rd| rd.count());
            if made >= 5 {
                break data.parent().unwrap().parent().unwrap().to_path_buf();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bench_pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the interrupted bench did not finish cleaning up");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert!(!out.path().join("results/results.json").exists());
    check_cleaned_up(&tmp, None);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn an_interrupted_floor_removes_its_containers_and_cgroups() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let mut cmd = bench_cmd(&[
        "--engines",
        "berthd",
        "--scenarios",
        "run-rm",
        "--runs",
        "1000",
        "--out",
    ]);
    cmd.arg(out.path().join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let bench_pid = child.id() as i32;
    // The floor makes its runtimes' cgroups under this parent from its first start on.
    let parent = format!("berth-bench-{bench_pid}-floor");
    let deadline = Instant::now() + Duration::from_secs(300);
    let tmp = loop {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the bench exited ({st}) before the floor started");
        }
        assert!(Instant::now() < deadline, "the floor made no cgroups");
        if !cgroups_named(&parent).is_empty() {
            if let Some(data) = private_berthd_data_root(bench_pid) {
                break data.parent().unwrap().parent().unwrap().to_path_buf();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bench_pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the interrupted bench did not finish cleaning up");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let left = cgroups_named(&parent);
    assert!(left.is_empty(), "the floor's cgroups were left: {left:?}");
    check_cleaned_up(&tmp, None);
}

/// The directories named `name` at the top of every cgroup hierarchy.
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(name)];
    dirs.extend(
        std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.path().join(name)),
    );
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The `--data-root` of the berthd that `bench` started, while it runs.
fn private_berthd_data_root(bench: i32) -> Option<PathBuf> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        if rest.split(' ').nth(1).and_then(|p| p.parse::<i32>().ok()) != Some(bench) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.ends_with("berthd")) {
            continue;
        }
        if let Some(i) = args.iter().position(|a| a == "--data-root") {
            return args.get(i + 1).map(PathBuf::from);
        }
    }
    None
}
