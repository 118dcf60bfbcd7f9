//! save, history, commit, image prune and system df, driven by the real docker CLI and by
//! `berth` in both modes.

use berth_tests::{both_modes, ok, text, Daemon};

fn image_id(d: &Daemon, name: &str) -> String {
    ok(&d.berth(&["image", "inspect", "--format", "{{.Id}}", name]))
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_save_then_load_gives_back_the_same_image() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let id = image_id(&d, "busybox");
    ok(&d.docker(&["tag", "busybox", "second:v2"]));
    let file = dir.path().join("both.tar");
    ok(&d.docker(&["save", "-o", file.to_str().unwrap(), "busybox", "second:v2"]));
    ok(&d.docker(&["rmi", "busybox", "second:v2"]));
    assert!(!d.docker(&["image", "inspect", "busybox"]).status.success());
    let out = ok(&d.docker(&["load", "-i", file.to_str().unwrap()]));
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert!(out.contains("Loaded image: second:v2"), "{out}");
    assert_eq!(image_id(&d, "busybox"), id);
    assert_eq!(image_id(&d, "second:v2"), id);
    // The archive is a docker-archive: manifest.json, repositories, layer tars.
    let listing = ok(&std::process::Command::new("tar")
        .args(["-tf", file.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(listing.lines().any(|l| l == "manifest.json"), "{listing}");
    assert!(listing.lines().any(|l| l == "repositories"), "{listing}");
    assert!(
        listing.lines().any(|l| l.ends_with("/layer.tar")),
        "{listing}"
    );
    // A name that is not there: docker's message, nothing written.
    let out = d.docker(&[
        "save",
        "-o",
        dir.path().join("x.tar").to_str().unwrap(),
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such image: nope:latest"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("x.tar").exists());
}

both_modes! {
    fn save_oci_and_load_round_trip(mode: Mode) {
        let d = Daemon::start_in(mode);
        let dir = tempfile::tempdir().unwrap();
        let id = image_id(&d, "busybox");
        let file = dir.path().join("oci.tar");
        ok(&d.berth(&["save", "--format", "oci", "-o", file.to_str().unwrap(), "busybox"]));
        let listing = ok(&std::process::Command::new("tar")
            .args(["-tf", file.to_str().unwrap()])
            .output()
            .unwrap());
        assert!(listing.lines().any(|l| l == "index.json"), "{listing}");
        assert!(listing.lines().any(|l| l == "oci-layout"), "{listing}");
        ok(&d.berth(&["rmi", "busybox"]));
        let out = ok(&d.berth(&["load", "-i", file.to_str().unwrap()]));
        assert_eq!(out.trim(), "Loaded image: busybox:latest");
        assert_eq!(image_id(&d, "busybox"), id);
        // To stdout, through a pipe.
        let out = d.berth(&["save", "busybox"]);
        assert!(out.status.success());
        assert!(out.stdout.len() > 1024 * 1024, "{} bytes", out.stdout.len());
    }

    fn commit_then_run_the_committed_image(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&[
            "run", "--name", "maker", "busybox", "sh", "-c",
            "echo made > /hello && rm /etc/group && mkdir -p /data/sub && echo x > /data/sub/f",
        ]));
        let id = ok(&d.berth(&[
            "commit", "-m", "my message", "-a", "me <me@example.com>",
            "-c", "CMD [\"cat\", \"/hello\"]", "-c", "ENV COMMITTED=yes",
            "maker", "committed:v1",
        ]))
        .trim()
        .to_string();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        assert_eq!(image_id(&d, "committed:v1"), id);
        assert_eq!(ok(&d.berth(&["run", "--rm", "committed:v1"])), "made\n");
        let out = d.berth(&["run", "--rm", "committed:v1", "ls", "/etc/group"]);
        assert!(!out.status.success(), "the deleted file must stay deleted");
        assert_eq!(
            ok(&d.berth(&["run", "--rm", "committed:v1", "sh", "-c", "cat /data/sub/f; echo $COMMITTED"])),
            "x\nyes\n"
        );
        let inspect = ok(&d.berth(&["image", "inspect", "--format",
            "{{.Author}}|{{.Comment}}|{{.Parent}}|{{len .RootFS.Layers}}", "committed:v1"]));
        let busybox = image_id(&d, "busybox");
        assert_eq!(inspect.trim(), format!("me <me@example.com>|my message|{busybox}|2"));
        // history: the commit on top of busybox's steps.
        let h = ok(&d.berth(&["history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", "committed:v1"]));
        let first = h.lines().next().unwrap();
        assert!(first.starts_with(&format!("{id}|sh -c echo made > /hello")), "{h}");
        assert!(first.ends_with("|my message"), "{h}");
        let second = h.lines().nth(1).unwrap();
        assert!(second.starts_with(&format!("{busybox}|")), "{h}");
        // Unknown container: docker's message.
        let out = d.berth(&["commit", "nosuch"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("No such container: nosuch"), "{}", text(&out.stderr));
        ok(&d.berth(&["rm", "maker"]));
    }

    fn image_prune_and_df_counts(mode: Mode) {
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["run", "--name", "p1", "busybox", "sh", "-c", "echo 1 > /one"]));
        // An untagged commit is dangling; a tagged one is not.
        let dangling = ok(&d.berth(&["commit", "p1"])).trim().to_string();
        ok(&d.berth(&["commit", "p1", "kept:v1"]));
        let df = ok(&d.berth(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}/{{.Active}}"]));
        assert!(df.contains("Images=3/1"), "{df}");
        assert!(df.contains("Containers=1/0"), "{df}");
        let listed = ok(&d.berth(&["images", "-q", "--filter", "dangling=true", "--no-trunc"]));
        assert_eq!(listed.trim(), dangling);
        let out = ok(&d.berth(&["image", "prune", "-f"]));
        assert!(out.starts_with("Deleted Images:\ndeleted: "), "{out}");
        assert!(out.contains(&dangling), "{out}");
        assert!(out.contains("Total reclaimed space: "), "{out}");
        assert!(ok(&d.berth(&["images", "-q", "--filter", "dangling=true"])).trim().is_empty());
        // -a: every image no container uses; busybox stays for p1.
        let out = ok(&d.berth(&["image", "prune", "-a", "-f"]));
        assert!(out.contains("untagged: kept:v1"), "{out}");
        let left = ok(&d.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
        assert_eq!(left.trim(), "busybox:latest");
        let out = ok(&d.berth(&["image", "prune", "-f"]));
        assert_eq!(out, "Total reclaimed space: 0B\n");
        let df = ok(&d.berth(&["system", "df"]));
        assert!(df.starts_with("TYPE "), "{df}");
        let v = ok(&d.berth(&["system", "df", "-v"]));
        assert!(v.contains("Images space usage:") && v.contains("Build cache usage:"), "{v}");
        ok(&d.berth(&["rm", "p1"]));
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_history_commit_prune_and_df() {
    let d = Daemon::start();
    let h = ok(&d.docker(&["history", "busybox"]));
    let header = h.lines().next().unwrap();
    assert!(
        header.starts_with("IMAGE          CREATED")
            && header.contains("CREATED BY")
            && header.contains("SIZE")
            && header.contains("COMMENT"),
        "{h}"
    );
    ok(&d.docker(&["run", "--name", "c1", "busybox", "touch", "/made"]));
    let id = ok(&d.docker(&["commit", "--change", "LABEL who=docker", "c1", "fromdocker"]))
        .trim()
        .to_string();
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "--format",
            "{{.Config.Labels.who}}",
            "fromdocker"
        ]))
        .trim(),
        "docker"
    );
    let h = ok(&d.docker(&["history", "-q", "fromdocker"]));
    assert_eq!(h.lines().next().unwrap(), &id[7..19]);
    let df = ok(&d.docker(&["system", "df"]));
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.contains(" 2 ")),
        "{df}"
    );
    assert!(df.lines().any(|l| l.starts_with("Build Cache")), "{df}");
    ok(&d.docker(&["rm", "c1"]));
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert!(out.contains("untagged: fromdocker:latest"), "{out}");
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
}
