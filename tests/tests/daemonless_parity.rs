//! The CLI feature set through berthd and daemonless, with the same expectations: each case
//! runs as `name::daemon` and `name::daemonless` (the docker CLI and raw-API cases, which
//! need berthd, are in their own files).

use berth_tests::{both_modes, ok, repo_root, text, Daemon};

/// Runs `berth` with `input` on its stdin.
fn with_stdin(d: &Daemon, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = d
        .berth_cmd(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

both_modes! {
    fn run_splits_stdout_and_stderr_and_returns_the_exit_code(mode: Mode) {
        let d = Daemon::start_in(mode);
        let out = d.berth(&[
            "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
        ]);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(text(&out.stdout), "out\n");
        assert_eq!(text(&out.stderr), "err\n");
        assert!(d.container_ids().is_empty(), "--rm left the container behind");
    }

    fn unknown_images_and_commands_exit_as_docker_does(mode: Mode) {
        let d = Daemon::start_in(mode);
        let out = d.berth(&["run", "--rm", "nosuchimage", "true"]);
        assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("Unable to find image 'nosuchimage:latest' locally"));
        // The tests' Docker Hub is a loopback port that refuses (see the harness).
        assert!(text(&out.stderr).contains("connection refused"), "{}", text(&out.stderr));
        let out = d.berth(&["run", "--rm", "busybox", "nosuchcmd"]);
        assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("executable file not found"));
        let out = d.berth(&["start", "nosuch"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            "Error response from daemon: No such container: nosuch\n"
        );
        let out = d.berth(&["kill", "nosuch"]);
        assert_eq!(
            text(&out.stderr).lines().next().unwrap(),
            "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch"
        );
    }

    fn names_are_unique_and_lifecycle_errors_are_dockers(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["run", "-d", "--name", "web", "busybox", "sleep", "300"]));
        // The default table, docker's columns.
        let table = ok(&d.berth(&["ps"]));
        let mut lines = table.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        );
        let row = lines.next().unwrap();
        assert!(row.contains("busybox") && row.contains("\"sleep 300\"") && row.ends_with(" web"), "{row}");
        let out = d.berth(&["create", "--name", "web", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(text(&out.stderr).contains("Conflict. The container name \"/web\" is already in use"));
        let out = d.berth(&["rm", "web"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("You cannot remove a running container"));
        // Starting a running container and stopping a stopped one are not errors.
        ok(&d.berth(&["start", "web"]));
        ok(&d.berth(&["restart", "-t", "1", "web"]));
        assert_eq!(d.inspect("web", "{{.State.Status}}"), "running");
        ok(&d.berth(&["stop", "-t", "1", "web"]));
        ok(&d.berth(&["stop", "web"]));
        assert_eq!(d.inspect("web", "{{.State.ExitCode}}"), "137");
        ok(&d.berth(&["rename", "web", "site"]));
        ok(&d.berth(&["create", "--name", "web", "busybox", "true"]));
        let listed = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
        let mut listed: Vec<&str> = listed.lines().collect();
        listed.sort();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].starts_with("site Exited (137)"), "{listed:?}");
        assert_eq!(listed[1], "web Created");
        ok(&d.berth(&["rm", "site", "web"]));
    }

    fn logs_follow_a_running_container_to_its_end(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&[
            "run", "-d", "--name", "talker", "busybox", "sh", "-c",
            "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2",
        ]));
        let out = d.berth(&["logs", "-f", "talker"]);
        assert_eq!(text(&out.stdout), "line 1\nline 2\nline 3\n");
        assert_eq!(text(&out.stderr), "oops\n");
        assert_eq!(ok(&d.berth(&["wait", "talker"])), "0\n");
        ok(&d.berth(&["rm", "talker"]));
    }

    fn update_init_and_bind_mounts(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["run", "-d", "--name", "limited", "-m", "64m", "busybox", "sleep", "300"]));
        ok(&d.berth(&["update", "-m", "128m", "limited"]));
        assert_eq!(d.inspect("limited", "{{.HostConfig.Memory}}"), "134217728");
        ok(&d.berth(&["rm", "-f", "limited"]));
        let out = ok(&d.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/comm"]));
        assert_ne!(out.trim(), "sh", "--init runs an init as PID 1");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in"), "from the host\n").unwrap();
        let bind = format!("{}:/data", dir.path().display());
        let out = ok(&d.berth(&[
            "run", "--rm", "-v", &bind, "busybox", "sh", "-c", "cat /data/in; echo back > /data/out",
        ]));
        assert_eq!(out, "from the host\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "back\n");
    }

    fn images_load_tag_inspect_and_rmi(mode: Mode) {
        let d = Daemon::start_in(mode);
        let dir = tempfile::tempdir().unwrap();
        let oci = dir.path().join("oci.tar");
        let st = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/make-busybox-image.sh"))
            .arg(&oci)
            .args(["--tag", "ocibox:v1", "--oci"])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(ok(&d.berth(&["load", "-i", oci.to_str().unwrap()])).trim(), "Loaded image: ocibox:v1");
        assert_eq!(ok(&d.berth(&["run", "--rm", "ocibox:v1", "echo", "from oci"])), "from oci\n");
        ok(&d.berth(&["tag", "ocibox:v1", "localhost:5000/team/app:2"]));
        let images = ok(&d.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
        let mut names: Vec<&str> = images.lines().collect();
        names.sort();
        assert_eq!(names, ["busybox:latest", "localhost:5000/team/app:2", "ocibox:v1"]);
        assert_eq!(
            ok(&d.berth(&["image", "inspect", "-f", "{{.Os}}", "localhost:5000/team/app:2"])).trim(),
            "linux"
        );
        let out = ok(&d.berth(&["rmi", "localhost:5000/team/app:2"]));
        assert_eq!(out.trim(), "Untagged: localhost:5000/team/app:2");
        let out = d.berth(&["image", "inspect", "nosuch:v9"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("No such image"), "{}", text(&out.stderr));
    }

    fn rmi_is_refused_while_a_container_uses_the_image(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["tag", "busybox", "only:v1"]));
        ok(&d.berth(&["rmi", "busybox"]));
        ok(&d.berth(&["run", "-d", "--name", "user", "only:v1", "sleep", "300"]));
        let out = d.berth(&["rmi", "-f", "only:v1"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("image is being used by running container"),
            "{}",
            text(&out.stderr)
        );
        ok(&d.berth(&["rm", "-f", "user"]));
        let out = ok(&d.berth(&["rmi", "only:v1"]));
        assert!(out.contains("Untagged: only:v1") && out.contains("Deleted: sha256:"), "{out}");
    }

    fn import_a_rootfs_with_changes(mode: Mode) {
        let d = Daemon::start_in(mode);
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("busybox", rootfs.join("bin/echo")).unwrap();
        let tarball = dir.path().join("rootfs.tar");
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let out = ok(&d.berth(&[
            "import", "--change", "ENV GREETING=imported", "--change",
            "CMD [\"sh\", \"-c\", \"echo $GREETING\"]", "-m", "by test",
            tarball.to_str().unwrap(), "mine:v1",
        ]));
        assert!(out.trim().starts_with("sha256:"), "{out}");
        assert_eq!(ok(&d.berth(&["run", "--rm", "mine:v1"])), "imported\n");
        assert_eq!(d.inspect("mine:v1", "{{.Comment}}"), "by test");
        let out = d.berth(&["import", "--change", "FROB x", tarball.to_str().unwrap(), "bad:v1"]);
        assert_eq!(out.status.code(), Some(1));
    }

    fn events_record_the_container_lifecycle(mode: Mode) {
        let d = Daemon::start_in(mode);
        let since = format!("{:.3}", now() - 1.0);
        ok(&d.berth(&["run", "--rm", "--name", "ev", "--label", "ck=1", "busybox", "true"]));
        let until = format!("{:.3}", now());
        let out = ok(&d.berth(&[
            "events", "--since", &since, "--until", &until, "--filter", "label=ck=1",
            "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ]));
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "container create ev",
                "container attach ev",
                "container start ev",
                "container die ev",
                "container destroy ev"
            ],
            "{out}"
        );
    }

    fn exec_and_stdin_reach_containers_other_commands_started(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]));
        assert_eq!(ok(&d.berth(&["exec", "box", "sh", "-c", "echo $((1 + 2))"])), "3\n");
        let out = d.berth(&["exec", "box", "sh", "-c", "echo err >&2; exit 5"]);
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(text(&out.stderr), "err\n");
        let out = with_stdin(&d, &["exec", "-i", "box", "cat"], b"through exec\n");
        assert_eq!(ok(&out), "through exec\n");
        let out = d.berth(&["exec", "box", "nosuchcmd"]);
        assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
        let out = with_stdin(&d, &["run", "--rm", "-i", "busybox", "cat"], b"through run\n");
        assert_eq!(ok(&out), "through run\n");
        ok(&d.berth(&["rm", "-f", "box"]));
    }

    fn info_and_version_describe_the_same_engine(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["run", "-d", "busybox", "sleep", "300"]));
        ok(&d.berth(&["create", "busybox", "true"]));
        assert_eq!(
            ok(&d.berth(&["info", "-f", "{{.Containers}} {{.ContainersRunning}} {{.Images}} {{.DockerRootDir}}"])).trim(),
            format!("2 1 1 {}", d.data_root().display())
        );
        assert_eq!(ok(&d.berth(&["version", "-f", "{{.Server.ApiVersion}}"])).trim(), "1.41");
    }
}
