//! Containers outlive berthd: a restart (or crash) of the daemon leaves them running and
//! fully manageable.

use berth_tests::{ok, Daemon};

fn wait_for_log(d: &Daemon, name: &str, want: &str) -> String {
    let mut logs = String::new();
    for _ in 0..200 {
        logs = ok(&d.berth(&["logs", name]));
        if logs.contains(want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    logs
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_container_keeps_running_across_a_daemon_restart() {
    let mut d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "echo before; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]));
    assert!(wait_for_log(&d, "survivor", "before").contains("before"));
    let pid = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", "survivor"]));
    d.stop_daemon();
    let pid: i32 = pid.trim().parse().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container died with berthd"
    );
    d.spawn();
    assert_eq!(
        ok(&d.berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Pid}}",
            "survivor"
        ]))
        .trim(),
        format!("running {pid}")
    );
    assert_eq!(
        ok(&d.berth(&["ps", "--format", "{{.Names}}"])).trim(),
        "survivor"
    );
    ok(&d.berth(&["stop", "survivor"]));
    assert_eq!(wait_for_log(&d, "survivor", "bye"), "before\nbye\n");
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "survivor"])).trim(),
        "0"
    );
    ok(&d.berth(&["rm", "survivor"]));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn an_exit_while_the_daemon_is_down_is_recorded_on_restart() {
    let mut d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; exit 5",
    ]));
    d.kill_daemon();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    d.spawn();
    assert_eq!(
        ok(&d.berth(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "brief"
        ]))
        .trim(),
        "exited 5"
    );
    // Nothing stays mounted for a stopped container.
    let rootfs = d.data_root().join("containers");
    assert!(
        berth_tests::mounts_under(&rootfs).is_empty(),
        "leftover mounts: {:?}",
        berth_tests::mounts_under(&rootfs)
    );
    ok(&d.berth(&["rm", "brief"]));
}
