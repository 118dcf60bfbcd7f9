//! Daemonless mode's own rules: containers outlive the command that started them, a data
//! root is berthd's or the daemonless commands', never both (and is handed over both ways),
//! locks die with their process, concurrent commands lose nothing, the event journal, and a
//! corrupt or half-written data root.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_tests::{ok, text, wait_until, Daemon, Mode};

/// A process of the test's own, killed (by its pid) and reaped when dropped.
struct Background(Child);

impl Background {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `pid` holds a lock on `path`.
fn holds(path: &Path, pid: i32) -> bool {
    engine::lock::holders(path).iter().any(|h| h.pid == pid)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The lines a process writes, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn detached_containers_outlive_the_command_that_ran_them() {
    let d = Daemon::start_in(Mode::Daemonless);
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "busybox",
        "sh",
        "-c",
        "echo ready; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]))
    .trim()
    .to_string();
    // The command that started it is gone; its shim keeps it, and later commands find it.
    let pid: i32 = d.inspect("keeper", "{{.State.Pid}}").parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(
        ok(&d.berth(&["ps", "--format", "{{.ID}} {{.Names}} {{.State}}"])).trim(),
        format!("{} keeper running", &id[..12])
    );
    wait_until("its output", || {
        ok(&d.berth(&["logs", "keeper"])).contains("ready")
    });
    ok(&d.berth(&["stop", "keeper"]));
    assert_eq!(ok(&d.berth(&["logs", "keeper"])), "ready\nbye\n");
    assert_eq!(
        d.inspect("keeper", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    // One command waits for an exit another one's container makes.
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]));
    assert_eq!(ok(&d.berth(&["wait", "brief"])), "3\n");
    // An auto-remove container that exits with nobody watching is gone when next looked at.
    ok(&d.berth(&["run", "-d", "--rm", "--name", "fleeting", "busybox", "true"]));
    wait_until("the auto-remove", || {
        !ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"])).contains("fleeting")
    });
    ok(&d.berth(&["rm", "keeper", "brief"]));
    assert!(d.container_ids().is_empty());
    assert!(berth_tests::mounts_under(&d.data_root()).is_empty());
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn berthd_and_daemonless_commands_never_share_a_data_root() {
    let mut d = Daemon::start();
    let pid = d.daemon_pid().unwrap();
    let out = d.daemonless(&["ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "The data root {} is owned by berthd (pid {pid}, listening on {}): use berth without --daemonless, or stop berthd first",
            d.data_root().display(),
            d.host()
        )
    );
    ok(&d.berth(&["run", "-d", "--name", "web", "busybox", "sleep", "300"]));
    d.stop_daemon();
    // A daemonless command holds the root: a starting berthd waits for it, then gives up
    // naming it.
    let lock = d.data_root().join("berthd.lock");
    let events = Background(
        d.daemonless_cmd(&["events"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the events command to hold the root", || {
        holds(&lock, events.pid())
    });
    let t = Instant::now();
    let err = d.try_spawn().unwrap_err();
    assert!(
        err.contains(&format!(
            "is in use by daemonless berth commands (pids {})",
            events.pid()
        )),
        "{err}"
    );
    assert!(
        t.elapsed() >= engine::lock::DAEMON_WAIT,
        "{:?}",
        t.elapsed()
    );
    drop(events);
    d.spawn();
    assert_eq!(
        ok(&d.berth(&["ps", "--format", "{{.Names}}"])).trim(),
        "web"
    );
    ok(&d.berth(&["rm", "-f", "web"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn stopping_berthd_hands_the_root_over_and_back() {
    let mut d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "by-daemon",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]));
    d.stop_daemon();
    // Daemonless commands see and manage what berthd started.
    assert_eq!(
        ok(&d.daemonless(&["ps", "--format", "{{.Names}}"])).trim(),
        "by-daemon"
    );
    ok(&d.daemonless(&["run", "-d", "--name", "by-cli", "busybox", "sleep", "300"]));
    ok(&d.daemonless(&["stop", "by-daemon"]));
    assert_eq!(
        ok(&d.daemonless(&["inspect", "-f", "{{.State.ExitCode}}", "by-daemon"])).trim(),
        "7"
    );
    // berthd takes the root back and adopts the container a daemonless command started: it
    // watches its shim, so it notices its exit on its own.
    d.spawn();
    let names = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]));
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["by-cli running", "by-daemon exited"]);
    let pid: i32 = d.inspect("by-cli", "{{.State.Pid}}").parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("berthd to notice the exit", || {
        d.inspect("by-cli", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    });
    // A berthd that dies leaves its pid in the lock file, but not the lock: the kernel
    // dropped it with the process.
    let killed = d.daemon_pid().unwrap();
    d.kill_daemon();
    let lock = std::fs::read_to_string(d.data_root().join("berthd.lock")).unwrap();
    assert!(lock.starts_with(&format!("{killed}\n")), "{lock}");
    ok(&d.daemonless(&["rm", "by-cli", "by-daemon"]));
    assert!(ok(&d.daemonless(&["ps", "-aq"])).is_empty());
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn locks_die_with_their_process_and_a_stuck_holder_is_named() {
    let d = Daemon::start_in(Mode::Daemonless);
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]));
    let id = d.inspect("stubborn", "{{.Id}}");
    let dir = d.data_root().join("containers").join(&id);
    // A `stop` waiting out its long timeout holds the container...
    let stop = Background(
        d.berth_cmd(&["stop", "-t", "300", "stubborn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the stop to hold the container", || holds(&dir, stop.pid()));
    // ...so another command waits for it, and gives up naming it rather than hang.
    let out = crate::run(
        d.berth_cmd(&["rm", "-f", "stubborn"])
            .env("BERTH_LOCK_TIMEOUT", "1"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("Timed out after 1s waiting for the lock")
            && err.contains(&format!("held by pid {}", stop.pid())),
        "{err}"
    );
    // Killed, the holder's lock goes with it: no stale lock is left to clean.
    drop(stop);
    let t = Instant::now();
    ok(&d.berth(&["rm", "-f", "stubborn"]));
    assert!(t.elapsed() < Duration::from_secs(10));

    // The names: a process holding their lock (here a python one, killed with SIGKILL).
    let names = d.data_root().join("names.lock");
    let holder = Background(
        Command::new("python3")
            .args([
                "-c",
                "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\ntime.sleep(300)",
            ])
            .arg(&names)
            .spawn()
            .unwrap(),
    );
    wait_until("python to hold the names", || holds(&names, holder.pid()));
    let out = crate::run(
        d.berth_cmd(&["create", "--name", "late", "busybox", "true"])
            .env("BERTH_LOCK_TIMEOUT", "0.5"),
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("held by pid {}", holder.pid())),
        "{}",
        text(&out.stderr)
    );
    drop(holder);
    ok(&d.berth(&["create", "--name", "late", "busybox", "true"]));
    ok(&d.berth(&["rm", "late"]));
}

fn run(cmd: &mut Command) -> std::process::Output {
    let cmd = std::mem::replace(cmd, Command::new("true"));
    berth_tests::run_with_timeout(cmd, Duration::from_secs(120))
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_hundred_concurrent_runs_lose_nothing() {
    let d = Daemon::start_in(Mode::Daemonless);
    let spawn = |args: &[&str]| {
        d.berth_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs: Vec<Child> = (0..100)
        .map(|_| spawn(&["run", "-d", "busybox", "sleep", "300"]))
        .collect();
    // Ten more race for one name.
    let racers: Vec<Child> = (0..10)
        .map(|_| {
            spawn(&[
                "run",
                "-d",
                "--name",
                "contested",
                "busybox",
                "sleep",
                "300",
            ])
        })
        .collect();
    let mut ids = HashSet::new();
    for c in runs {
        let out = c.wait_with_output().unwrap();
        let id = ok(&out).trim().to_string();
        assert_eq!(id.len(), 64, "{id}");
        assert!(ids.insert(id), "an id was handed out twice");
    }
    let mut winners = 0;
    for c in racers {
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            winners += 1;
            assert!(ids.insert(text(&out.stdout).trim().to_string()));
        } else {
            assert_eq!(out.status.code(), Some(125));
            assert!(
                text(&out.stderr)
                    .contains("Conflict. The container name \"/contested\" is already in use"),
                "{}",
                text(&out.stderr)
            );
        }
    }
    assert_eq!(winners, 1, "exactly one run gets the name");
    // Every container is there once, with a name of its own, running, and inspectable.
    let listed = ok(&d.berth(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]));
    let (mut seen_ids, mut names) = (HashSet::new(), HashSet::new());
    for line in listed.lines() {
        let (id, name) = line.split_once(' ').unwrap();
        assert!(seen_ids.insert(id.to_string()), "{id} listed twice");
        assert!(
            names.insert(name.to_string()),
            "the name {name} is used twice"
        );
    }
    assert_eq!(seen_ids, ids);
    let mut args = vec!["inspect", "-f", "{{.State.Running}} {{.Name}}"];
    args.extend(ids.iter().map(String::as_str));
    let states = ok(&d.berth(&args));
    assert_eq!(
        states.lines().filter(|l| l.starts_with("true /")).count(),
        101
    );
    assert_eq!(
        std::fs::read_dir(d.data_root().join("names"))
            .unwrap()
            .count(),
        101
    );
    // Removed from ten commands at once, they all go, and nothing stays mounted.
    let ids: Vec<String> = ids.into_iter().collect();
    let removers: Vec<Child> = ids
        .chunks(11)
        .map(|chunk| {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            spawn(&args)
        })
        .collect();
    for c in removers {
        ok(&c.wait_with_output().unwrap());
    }
    assert!(d.container_ids().is_empty());
    assert_eq!(
        std::fs::read_dir(d.data_root().join("names"))
            .unwrap()
            .count(),
        0
    );
    assert!(berth_tests::mounts_under(&d.data_root()).is_empty());
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn concurrent_image_commands_keep_the_store_whole() {
    let d = Daemon::start_in(Mode::Daemonless);
    let archive = berth_tests::busybox_archive().to_str().unwrap().to_string();
    let mut children = Vec::new();
    for n in 0..6 {
        let tag = format!("t{n}:v1");
        children.push(
            d.berth_cmd(&["tag", "busybox", &tag])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        children.push(
            d.berth_cmd(&["load", "-i", &archive])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    let images = ok(&d.berth(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    let mut tags: Vec<&str> = images
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            "busybox:latest",
            "t0:v1",
            "t1:v1",
            "t2:v1",
            "t3:v1",
            "t4:v1",
            "t5:v1"
        ]
    );
    let ids: HashSet<&str> = images
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{images}");
    let rmis: Vec<Child> = (0..6)
        .map(|n| {
            d.berth_cmd(&["rmi", &format!("t{n}:v1")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in rmis {
        assert!(ok(&c.wait_with_output().unwrap()).starts_with("Untagged: t"));
    }
    assert_eq!(
        ok(&d.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])),
        "busybox:latest\n"
    );
    // The image still runs, from layers nobody deleted.
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "busybox", "echo", "whole"])),
        "whole\n"
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn the_journal_shows_what_other_commands_did() {
    let d = Daemon::start_in(Mode::Daemonless);
    let since = format!("{:.3}", now() - 1.0);
    let format = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    // A follower in a process of its own sees another command's container live.
    let mut follower = Background(
        d.berth_cmd(&[
            "events",
            "--since",
            &since,
            "--filter",
            "label=ck=1",
            "--format",
            format,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let lines = lines_of(&mut follower.0);
    ok(&d.berth(&[
        "run", "--rm", "--name", "ev", "--label", "ck=1", "busybox", "true",
    ]));
    let mut live = Vec::new();
    while live.last().map(String::as_str) != Some("container destroy ev") {
        live.push(
            lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("the follower saw only {live:?}")),
        );
    }
    let expected = [
        "container create ev",
        "container attach ev",
        "container start ev",
        "container die ev",
        "container destroy ev",
    ];
    assert_eq!(live, expected);
    drop(follower);
    // And a later command reads them back.
    let until = format!("{:.3}", now());
    let past = ok(&d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "label=ck=1",
        "--format",
        format,
    ]));
    assert_eq!(past.lines().collect::<Vec<_>>(), expected);
    // Each line says who caused it: the create was the `run` command, a process of ours.
    let journal = std::fs::read_to_string(d.data_root().join("events/events.jsonl")).unwrap();
    let create: serde_json::Value = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["action"] == "create" && e["attributes"]["name"] == "ev")
        .unwrap();
    assert_eq!(create["caller"]["uid"], 0);
    assert!(create["caller"]["pid"].as_i64().unwrap() > 0);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn berthd_appends_to_the_journal_too() {
    let mut d = Daemon::start();
    let since = format!("{:.3}", now() - 1.0);
    ok(&d.berth(&[
        "run", "--rm", "--name", "ev2", "--label", "ck=2", "busybox", "true",
    ]));
    d.stop_daemon();
    let until = format!("{:.3}", now());
    let past = ok(&d.daemonless(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "label=ck=2",
        "--format",
        "{{.Action}}",
    ]));
    assert_eq!(
        past.lines().collect::<Vec<_>>(),
        ["create", "attach", "start", "die", "destroy"]
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_corrupt_data_root_is_reported_and_what_can_be_recovered_is() {
    let d = Daemon::start_in(Mode::Daemonless);
    ok(&d.berth(&["create", "--name", "good", "busybox", "true"]));
    let bad = ok(&d.berth(&["create", "--name", "bad", "busybox", "true"]))
        .trim()
        .to_string();
    let record = d
        .data_root()
        .join("containers")
        .join(&bad)
        .join("container.json");
    let whole = std::fs::read(&record).unwrap();
    std::fs::write(&record, &whole[..whole.len() / 2]).unwrap();
    // The listing goes on without it, and says which one it skipped and why.
    let out = d.berth(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(ok(&out), "good\n");
    let err = text(&out.stderr);
    assert!(err.contains(&bad) && err.contains("is corrupt"), "{err}");
    // Asked for by name or id, it is an error that names the file.
    for key in ["bad", &bad[..12]] {
        let out = d.berth(&["inspect", key]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(&format!("The state file {}", record.display())),
            "{}",
            text(&out.stderr)
        );
    }
    // Its name is not handed out again, and its directory is kept for repair.
    let out = d.berth(&["create", "--name", "bad", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("is already in use"));
    assert!(record.exists());
    // Repaired, it is back.
    std::fs::write(&record, &whole).unwrap();
    assert_eq!(d.inspect("bad", "{{.Name}}"), "/bad");

    // A directory without a record (a create that died) is cleaned away.
    let orphan = d.data_root().join("containers").join("a".repeat(64));
    std::fs::create_dir_all(orphan.join("diff")).unwrap();
    let out = d.berth(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(ok(&out).lines().count(), 2);
    assert!(!orphan.exists());
    // A name link left by a create that died does not keep the name.
    std::os::unix::fs::symlink("f".repeat(64), d.data_root().join("names/ghost")).unwrap();
    ok(&d.berth(&["create", "--name", "ghost", "busybox", "true"]));
    // A removal that died half-way is finished by the next command that looks.
    let half = ok(&d.berth(&["create", "--name", "half", "busybox", "true"]))
        .trim()
        .to_string();
    let path = d
        .data_root()
        .join("containers")
        .join(&half)
        .join("container.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec["state"]["status"] = "removing".into();
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    let names = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(!names.contains("half"), "{names}");
    assert!(!path.exists());
    assert!(!d.data_root().join("names/half").exists());

    // A tag index that does not parse is an error naming it, not an empty store.
    let index = d.data_root().join("image/repositories.json");
    let saved = std::fs::read(&index).unwrap();
    std::fs::write(&index, b"{\"tags\": {").unwrap();
    let out = d.berth(&["images"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&index.display().to_string()),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&index, saved).unwrap();
    assert!(ok(&d.berth(&["images"])).contains("busybox"));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn the_environment_can_ask_for_daemonless_and_roots_need_it() {
    let d = Daemon::start_in(Mode::Daemonless);
    let mut cmd = Command::new(berth_tests::bin_dir().join("berth"));
    cmd.env_remove("BERTH_HOST")
        .env("BERTH_DAEMONLESS", "1")
        .arg("--data-root")
        .arg(d.data_root())
        .arg("--exec-root")
        .arg(d.exec_root())
        .args(["images", "--format", "{{.Repository}}"]);
    assert_eq!(ok(&run(&mut cmd)), "busybox\n");
    let mut cmd = Command::new(berth_tests::bin_dir().join("berth"));
    cmd.env_remove("BERTH_DAEMONLESS")
        .arg("--data-root")
        .arg(d.data_root())
        .arg("ps");
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--daemonless"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn daemonless_commands_racing_a_starting_berthd_either_run_or_are_refused() {
    let mut d = Daemon::start();
    d.stop_daemon();
    for _ in 0..3 {
        let commands: Vec<Child> = (0..6)
            .map(|_| {
                d.daemonless_cmd(&["run", "--rm", "busybox", "echo", "ran"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // berthd waits for the commands that got the root first, then takes it; the ones
        // that come later are refused, whole.
        d.spawn();
        for c in commands {
            let out = c.wait_with_output().unwrap();
            if out.status.success() {
                assert_eq!(text(&out.stdout), "ran\n");
            } else {
                assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
                assert!(
                    text(&out.stderr).contains("is owned by berthd"),
                    "{}",
                    text(&out.stderr)
                );
                assert!(out.stdout.is_empty());
            }
        }
        assert!(
            d.container_ids().is_empty(),
            "a container was left half-made"
        );
        d.stop_daemon();
    }
}
