//! Images through the real docker CLI and berth: load (both archive layouts), import with
//! changes, tag, list, inspect, rmi and its conflicts.

use berth_tests::{ok, repo_root, text, Daemon};

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_load_of_an_oci_layout_archive_and_tags() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("oci.tar");
    let st = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/make-busybox-image.sh"))
        .arg(&oci)
        .args(["--tag", "ocibox:v1", "--oci"])
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(&d.docker(&["load", "-i", oci.to_str().unwrap()]));
    assert_eq!(out.trim(), "Loaded image: ocibox:v1");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "ocibox:v1", "echo", "from oci"])),
        "from oci\n"
    );
    ok(&d.docker(&["tag", "ocibox:v1", "localhost:5000/team/app:2"]));
    let images = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let mut names: Vec<&str> = images.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["busybox:latest", "localhost:5000/team/app:2", "ocibox:v1"]
    );
    // The same layers: one image id for all three names.
    let ids = ok(&d.docker(&["images", "-q", "--no-trunc"]));
    let mut ids: Vec<&str> = ids.lines().collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let out = ok(&d.docker(&["rmi", "localhost:5000/team/app:2"]));
    assert_eq!(out.trim(), "Untagged: localhost:5000/team/app:2");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn rmi_is_refused_while_a_container_uses_the_image() {
    let d = Daemon::start();
    ok(&d.docker(&["tag", "busybox", "only:v1"]));
    ok(&d.docker(&["rmi", "busybox"]));
    ok(&d.docker(&["run", "-d", "--name", "user", "only:v1", "sleep", "300"]));
    let out = d.docker(&["rmi", "-f", "only:v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("image is being used by running container"),
        "{}",
        text(&out.stderr)
    );
    ok(&d.docker(&["rm", "-f", "user"]));
    let out = ok(&d.docker(&["rmi", "only:v1"]));
    assert!(
        out.contains("Untagged: only:v1") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    let out = d.docker(&["image", "inspect", "only:v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such image"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn import_a_rootfs_with_changes() {
    let d = Daemon::start();
    // Export busybox's root file system through a container, then import it.
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
    let out = ok(&d.docker(&[
        "import",
        "--change",
        "ENV GREETING=imported",
        "--change",
        "CMD [\"sh\", \"-c\", \"echo $GREETING\"]",
        "-m",
        "by test",
        tarball.to_str().unwrap(),
        "mine:v1",
    ]));
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(ok(&d.docker(&["run", "--rm", "mine:v1"])), "imported\n");
    assert_eq!(
        ok(&d.docker(&["image", "inspect", "-f", "{{.Comment}}", "mine:v1"])).trim(),
        "by test"
    );
    let out = d.docker(&[
        "import",
        "--change",
        "FROB x",
        tarball.to_str().unwrap(),
        "bad:v1",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn events_record_the_container_lifecycle() {
    let d = Daemon::start();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let since = now() - 1.0;
    ok(&d.docker(&[
        "run", "--rm", "--name", "ev", "--label", "ck=1", "busybox", "true",
    ]));
    let until = format!("{:.3}", now());
    let out = ok(&d.docker(&[
        "events",
        "--since",
        &format!("{since:.3}"),
        "--until",
        &until,
        "--filter",
        "label=ck=1",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]));
    let actions: Vec<&str> = out.lines().collect();
    assert_eq!(
        actions,
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
