//! The berth CLI against berthd, and the same cases daemonless: the user's view of the
//! backbone.

use berth_tests::{both_modes, ok, text, Daemon};

#[test]
#[ignore = "needs root and runc (run scripts/test.sh as root)"]
fn runc_runtime_runs_the_same_container() {
    if !std::path::Path::new("/usr/sbin/runc").exists() {
        panic!("runc is not installed: .ci/run installs Debian's runc");
    }
    let d = Daemon::start_with_runtime("runc");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "busybox", "echo", "hello"])),
        "hello\n"
    );
}

// The same cases through berthd and daemonless (`name::daemon`, `name::daemonless`).
both_modes! {
    fn berth_run_rm_echo_prints_hello(mode: Mode) {
        let d = Daemon::start_in(mode);
        assert_eq!(
            ok(&d.berth(&["run", "--rm", "busybox", "echo", "hello"])),
            "hello\n"
        );
        assert!(d.container_ids().is_empty());
    }

    fn exit_codes_env_workdir_and_user(mode: Mode) {
        let d = Daemon::start_in(mode);
        let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]);
        assert_eq!(out.status.code(), Some(42));
        let out = ok(&d.berth(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hi there",
            "-w",
            "/tmp/work",
            "-u",
            "1234",
            "busybox",
            "sh",
            "-c",
            "echo \"$GREETING\"; pwd; id -u; id -g",
        ]));
        assert_eq!(out, "hi there\n/tmp/work\n1234\n0\n");
        // A user name resolves from the image's /etc/passwd.
        let out = ok(&d.berth(&[
            "run",
            "--rm",
            "-u",
            "berth",
            "busybox",
            "sh",
            "-c",
            "id -u; echo $HOME",
        ]));
        assert_eq!(out, "1000\n/home/berth\n");
        let out = d.berth(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
        assert_ne!(out.status.code(), Some(0));
        assert!(
            text(&out.stderr).contains("unable to find user nosuchuser"),
            "{}",
            text(&out.stderr)
        );
    }

    fn pid_1_hostname_and_private_loopback(mode: Mode) {
        let d = Daemon::start_in(mode);
        let out = ok(&d.berth(&[
            "run",
            "--rm",
            "--hostname",
            "box",
            "busybox",
            "sh",
            "-c",
            "echo $$; hostname; cat /etc/hostname; ls /sys/class/net",
        ]));
        assert_eq!(out, "1\nbox\nbox\nlo\n");
        let ps = ok(&d.berth(&["run", "--rm", "busybox", "ps", "-o", "pid,comm"]));
        assert_eq!(
            ps.lines().count(),
            2,
            "only the container's own processes are visible: {ps}"
        );
    }

    fn capabilities_are_dockers_default_set(mode: Mode) {
        let d = Daemon::start_in(mode);
        let out = ok(&d.berth(&["run", "--rm", "busybox", "grep", "Cap", "/proc/self/status"]));
        // Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
        // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
        assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
        assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
        // Without CAP_SYS_ADMIN, mounting fails.
        let out = d.berth(&[
            "run", "--rm", "busybox", "mount", "-t", "tmpfs", "none", "/mnt",
        ]);
        assert_ne!(out.status.code(), Some(0));
    }

    fn host_files_are_invisible_and_proc_is_masked(mode: Mode) {
        let d = Daemon::start_in(mode);
        let marker = d.root.path().join("host-only-marker");
        std::fs::write(&marker, "secret").unwrap();
        let out = d.berth(&["run", "--rm", "busybox", "cat", marker.to_str().unwrap()]);
        assert_ne!(out.status.code(), Some(0), "the host file was visible");
        assert!(!std::fs::read("/proc/timer_list").unwrap().is_empty());
        let out = ok(&d.berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "wc -c < /proc/timer_list; grep ' /proc/sys ' /proc/self/mounts",
        ]));
        assert!(out.starts_with("0\n"), "/proc/timer_list is masked: {out}");
        assert!(out.contains(" ro,"), "/proc/sys is read-only: {out}");
        let out = d.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/newfile"]);
        assert_ne!(out.status.code(), Some(0), "--read-only root was writable");
    }

    fn memory_and_pids_limits_land_in_the_containers_cgroup(mode: Mode) {
        let d = Daemon::start_in(mode);
        let id = ok(&d.berth(&[
            "run",
            "-d",
            "-m",
            "64m",
            "--pids-limit",
            "20",
            "--cpus",
            "0.5",
            "busybox",
            "sleep",
            "300",
        ]));
        let id = id.trim();
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let read = |ctrl: &str, file: &str| {
            let dir = berth_tests::cgroup_dir(if v2 { "" } else { ctrl }, id)
                .unwrap_or_else(|| panic!("no {ctrl} cgroup for {id}"));
            std::fs::read_to_string(dir.join(file))
                .unwrap()
                .trim()
                .to_string()
        };
        if v2 {
            assert_eq!(read("memory", "memory.max"), "67108864");
            assert_eq!(read("pids", "pids.max"), "20");
            assert_eq!(read("cpu", "cpu.max"), "50000 100000");
        } else {
            assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
            assert_eq!(read("pids", "pids.max"), "20");
            assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        }
        // The container sees its own limit too.
        let file = if v2 {
            "/sys/fs/cgroup/memory.max"
        } else {
            "/sys/fs/cgroup/memory/memory.limit_in_bytes"
        };
        let inside = ok(&d.berth(&["run", "--rm", "-m", "64m", "busybox", "cat", file]));
        assert_eq!(inside.trim(), "67108864");
        ok(&d.berth(&["rm", "-f", id]));
    }

    fn an_oom_kill_is_reported(mode: Mode) {
        let d = Daemon::start_in(mode);
        let out = d.berth(&[
            "run",
            "--name",
            "hog",
            "-m",
            "16m",
            "busybox",
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ]);
        assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
        let st = ok(&d.berth(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "hog",
        ]));
        assert_eq!(st.trim(), "true 137");
    }

    fn logs_tail_timestamps_and_streams(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&[
            "run",
            "--name",
            "talker",
            "busybox",
            "sh",
            "-c",
            "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three",
        ]));
        assert_eq!(ok(&d.berth(&["logs", "--tail", "1", "talker"])), "three\n");
        let out = d.berth(&["logs", "talker"]);
        assert_eq!(text(&out.stdout), "one\nthree\n");
        assert_eq!(text(&out.stderr), "two\n");
        let ts = ok(&d.berth(&["logs", "-t", "--tail", "1", "talker"]));
        assert!(ts.ends_with("Z three\n") && ts.starts_with("20"), "{ts}");
    }

    fn rename_pause_unpause_kill_and_prune(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["run", "-d", "--name", "first", "busybox", "sleep", "300"]));
        ok(&d.berth(&["rename", "first", "second"]));
        ok(&d.berth(&["pause", "second"]));
        assert_eq!(
            ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "second"])).trim(),
            "paused"
        );
        let out = d.berth(&["pause", "second"]);
        assert!(text(&out.stderr).contains("is already paused"));
        ok(&d.berth(&["unpause", "second"]));
        let out = d.berth(&["kill", "-s", "NOSUCHSIG", "second"]);
        assert!(
            text(&out.stderr).contains("Invalid signal: NOSUCHSIG"),
            "{}",
            text(&out.stderr)
        );
        ok(&d.berth(&["kill", "second"]));
        assert_eq!(
            ok(&d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "second"])).trim(),
            "137"
        );
        ok(&d.berth(&["container", "prune", "-f"]));
        assert!(d.container_ids().is_empty());
    }
}
