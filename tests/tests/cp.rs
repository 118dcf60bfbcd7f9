//! `docker cp`, `docker export` and `docker diff` against berthd: the files that arrive, in
//! both directions, for running and stopped containers; and every way out of a container's
//! root or into berthd's memory closed.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_tests::{ok, text, Daemon};

fn still_serving(d: &Daemon) {
    let r = d
        .request("GET", "/_ping", &[], b"")
        .expect("berthd stopped answering");
    assert_eq!(r.status, 200);
    assert!(ok(&d.docker(&["ps", "-a"])).starts_with("CONTAINER ID"));
}

fn json_error(r: &berth_tests::HttpResponse) -> String {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    r.json()["message"].as_str().unwrap().to_string()
}

fn container_id(d: &Daemon, name: &str) -> String {
    ok(&d.docker(&["inspect", "-f", "{{.Id}}", name]))
        .trim()
        .to_string()
}

/// The container's writable layer on the host: where a copied-in file really lands.
fn upper(d: &Daemon, name: &str) -> PathBuf {
    d.data_root()
        .join("containers")
        .join(container_id(d, name))
        .join("diff")
}

/// One entry of a tar archive, as a client reads it.
struct Entry {
    name: String,
    kind: tar::EntryType,
    size: u64,
    link: String,
    data: Vec<u8>,
}

fn tar_entries(bytes: &[u8]) -> Vec<Entry> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Entry {
                name,
                kind: h.entry_type(),
                size: h.size().unwrap(),
                link,
                data,
            }
        })
        .collect()
}

fn names(bytes: &[u8]) -> Vec<String> {
    tar_entries(bytes).into_iter().map(|e| e.name).collect()
}

/// Waits until `path` exists in a running container (its command made it).
fn wait_for_path(d: &Daemon, name: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = d
            .request(
                "HEAD",
                &format!("/v1.41/containers/{name}/archive?path={path}"),
                &[],
                b"",
            )
            .unwrap();
        if r.status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never appeared in {name}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sha256(path: &Path) -> Option<String> {
    use sha2::Digest;
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(sha2::Sha256::digest(&b)))
}

/// The number of descriptors berthd has open.
fn daemon_fds(d: &Daemon) -> usize {
    let pid = std::fs::read_to_string(d.root.path().join("berthd.pid")).unwrap();
    std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .unwrap()
        .count()
}

/// Waits (a little) for berthd's descriptors to come back to at most `limit`.
fn fds_settle(d: &Daemon, limit: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = daemon_fds(d);
        if n <= limit || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_cp_copies_files_and_directories_both_ways() {
    let d = Daemon::start();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    ok(&d.docker(&["run", "-d", "--name", "cpc", "busybox", "sleep", "300"]));

    // A file, with its mode and owner.
    std::fs::write(h.join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::set_permissions(h.join("hello.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    nix::unistd::chown(
        &h.join("hello.txt"),
        Some(nix::unistd::Uid::from_raw(1234)),
        Some(nix::unistd::Gid::from_raw(5678)),
    )
    .unwrap();
    let out = d.docker(&["cp", h.join("hello.txt").to_str().unwrap(), "cpc:/tmp/"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let landed = upper(&d, "cpc").join("tmp/hello.txt");
    assert_eq!(
        std::fs::read_to_string(&landed).unwrap(),
        "hello from the host\n"
    );
    let m = std::fs::metadata(&landed).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 5678, 0o640));

    // To a new name, and over an existing file.
    ok(&d.docker(&[
        "cp",
        h.join("hello.txt").to_str().unwrap(),
        "cpc:/tmp/renamed",
    ]));
    std::fs::write(h.join("hello.txt"), "second version\n").unwrap();
    ok(&d.docker(&[
        "cp",
        h.join("hello.txt").to_str().unwrap(),
        "cpc:/tmp/renamed",
    ]));
    assert_eq!(
        std::fs::read_to_string(upper(&d, "cpc").join("tmp/renamed")).unwrap(),
        "second version\n"
    );

    // A directory with a symlink and a hard link.
    std::fs::create_dir_all(h.join("tree/sub")).unwrap();
    std::fs::write(h.join("tree/sub/file"), "deep\n").unwrap();
    std::os::unix::fs::symlink("sub/file", h.join("tree/link")).unwrap();
    std::fs::hard_link(h.join("tree/sub/file"), h.join("tree/hard")).unwrap();
    ok(&d.docker(&["cp", h.join("tree").to_str().unwrap(), "cpc:/tmp/"]));
    let up = upper(&d, "cpc");
    assert_eq!(
        std::fs::read_to_string(up.join("tmp/tree/sub/file")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(up.join("tmp/tree/link")).unwrap(),
        Path::new("sub/file")
    );
    assert_eq!(
        std::fs::metadata(up.join("tmp/tree/hard")).unwrap().ino(),
        std::fs::metadata(up.join("tmp/tree/sub/file"))
            .unwrap()
            .ino()
    );

    // Back out: the tar on stdout, as the CLI prints it.
    let out = d.docker(&["cp", "cpc:/tmp/tree", "-"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        names(&out.stdout),
        [
            "tree/",
            "tree/hard",
            "tree/link",
            "tree/sub/",
            "tree/sub/file"
        ]
    );
    let entries = tar_entries(&out.stdout);
    assert_eq!(entries[2].kind, tar::EntryType::Symlink);
    assert_eq!(entries[2].link, "sub/file");
    assert_eq!(entries[4].kind, tar::EntryType::Link);
    assert_eq!(entries[4].link, "tree/hard");

    // Into host paths: a file, a renamed directory, a directory's content, a followed link.
    let out_dir = h.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    ok(&d.docker(&["cp", "cpc:/tmp/hello.txt", out_dir.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    ok(&d.docker(&[
        "cp",
        "cpc:/tmp/tree",
        out_dir.join("tree2").to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("tree2/sub/file")).unwrap(),
        "deep\n"
    );
    ok(&d.docker(&[
        "cp",
        "cpc:/tmp/tree/.",
        out_dir.join("content").to_str().unwrap(),
    ]));
    assert!(out_dir.join("content/sub/file").is_file());
    assert!(out_dir.join("content/link").is_symlink());
    ok(&d.docker(&[
        "cp",
        "-L",
        "cpc:/tmp/tree/link",
        out_dir.join("followed").to_str().unwrap(),
    ]));
    assert!(!out_dir.join("followed").is_symlink());
    assert_eq!(
        std::fs::read_to_string(out_dir.join("followed")).unwrap(),
        "deep\n"
    );

    // A running container's own view: /etc/hostname is the container's, not the image's.
    ok(&d.docker(&[
        "cp",
        "cpc:/etc/hostname",
        out_dir.join("hostname").to_str().unwrap(),
    ]));
    let hostname = ok(&d.docker(&["inspect", "-f", "{{.Config.Hostname}}", "cpc"]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("hostname")).unwrap(),
        format!("{}\n", hostname.trim())
    );

    // Missing paths and containers: docker's messages and exit status.
    let out = d.docker(&["cp", "cpc:/nonexistent", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Could not find the file /nonexistent in container cpc"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&["cp", "nosuch:/etc/hostname", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nosuch"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&[
        "cp",
        h.join("hello.txt").to_str().unwrap(),
        "cpc:/no/such/file",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Could not find the file /no/such in container cpc"),
        "{}",
        text(&out.stderr)
    );
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_cp_a_keeps_owners_or_takes_the_container_user() {
    let d = Daemon::start();
    let host = tempfile::tempdir().unwrap();
    let f = host.path().join("owned");
    std::fs::write(&f, "data\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o604)).unwrap();
    nix::unistd::chown(
        &f,
        Some(nix::unistd::Uid::from_raw(1234)),
        Some(nix::unistd::Gid::from_raw(5678)),
    )
    .unwrap();
    let show = "cat /tmp/owned; stat -c '%u:%g %a' /tmp/owned";
    // A container with no user: the archive's owners either way.
    ok(&d.docker(&["create", "--name", "plain", "busybox", "sh", "-c", show]));
    ok(&d.docker(&["cp", "-a", f.to_str().unwrap(), "plain:/tmp/"]));
    assert_eq!(
        ok(&d.docker(&["start", "-a", "plain"])),
        "data\n1234:5678 604\n"
    );
    // A container with a user: -a gives the files to that user, as dockerd does.
    ok(&d.docker(&[
        "create",
        "--name",
        "user",
        "-u",
        "1000:1000",
        "busybox",
        "sh",
        "-c",
        show,
    ]));
    ok(&d.docker(&["cp", "-a", f.to_str().unwrap(), "user:/tmp/"]));
    assert_eq!(
        ok(&d.docker(&["start", "-a", "user"])),
        "data\n1000:1000 604\n"
    );
    ok(&d.docker(&[
        "create",
        "--name",
        "user2",
        "-u",
        "1000:1000",
        "busybox",
        "sh",
        "-c",
        show,
    ]));
    ok(&d.docker(&["cp", f.to_str().unwrap(), "user2:/tmp/"]));
    assert_eq!(
        ok(&d.docker(&["start", "-a", "user2"])),
        "data\n1234:5678 604\n"
    );
    // A user the container's /etc/passwd does not know is an error, not root.
    ok(&d.docker(&[
        "create",
        "--name",
        "ghost",
        "-u",
        "nobody-here",
        "busybox",
        "true",
    ]));
    let out = d.docker(&["cp", "-a", f.to_str().unwrap(), "ghost:/tmp/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unable to find user nobody-here"),
        "{}",
        text(&out.stderr)
    );
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_cp_works_on_stopped_containers_and_unmounts_after() {
    let d = Daemon::start();
    let host = tempfile::tempdir().unwrap();
    ok(&d.docker(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo made > /made",
    ]));
    let rootfs = d
        .data_root()
        .join("containers")
        .join(container_id(&d, "done"))
        .join("rootfs");
    let mounted = || berth_tests::mounts_under(&rootfs).contains(&rootfs);
    assert!(!mounted());
    let out = d.docker(&["cp", "done:/made", "-"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries = tar_entries(&out.stdout);
    assert_eq!(
        (entries[0].name.as_str(), entries[0].data.as_slice()),
        ("made", &b"made\n"[..])
    );
    std::fs::write(host.path().join("in"), "copied in while stopped\n").unwrap();
    ok(&d.docker(&["cp", host.path().join("in").to_str().unwrap(), "done:/"]));
    // The overlay was mounted for the copies only.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mounted() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!mounted(), "the stopped container's root stayed mounted");
    // And the container sees the file when it runs again.
    ok(&d.docker(&["create", "--name", "reader", "busybox", "cat", "/in"]));
    ok(&d.docker(&["cp", host.path().join("in").to_str().unwrap(), "reader:/"]));
    assert_eq!(
        ok(&d.docker(&["start", "-a", "reader"])),
        "copied in while stopped\n"
    );
    // Export of a stopped container: the whole file system, names without `./`.
    let tar = host.path().join("export.tar");
    ok(&d.docker(&["export", "-o", tar.to_str().unwrap(), "done"]));
    let listing = names(&std::fs::read(&tar).unwrap());
    for want in ["bin/", "bin/busybox", "etc/passwd", "made", "in", "tmp/"] {
        assert!(
            listing.iter().any(|n| n == want),
            "{want} missing from {listing:?}"
        );
    }
    assert!(listing
        .iter()
        .all(|n| !n.starts_with('/') && !n.starts_with("./")));
    assert!(!mounted());
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn cp_never_reaches_the_host() {
    let d = Daemon::start();
    let host = tempfile::tempdir().unwrap();
    let canary_dir = tempfile::Builder::new()
        .prefix("berth-canary-")
        .tempdir_in("/tmp")
        .unwrap();
    let canary = canary_dir.path().join("secret");
    std::fs::write(&canary, "host secret\n").unwrap();
    let canary_name = canary_dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let guarded = ["/etc/shadow", "/etc/passwd", "/etc/hostname"];
    let before: Vec<_> = guarded.iter().map(|p| sha256(Path::new(p))).collect();

    let script = format!(
        "echo container-shadow > /etc/shadow; mkdir -p /tmp/{canary_name}; \
         echo container-secret > /tmp/{canary_name}/secret; \
         ln -s / /hostroot; ln -s ../../../../../../../.. /tmp/up; \
         ln -s /tmp/{canary_name} /canary; touch /ready; sleep 300"
    );
    ok(&d.docker(&["run", "-d", "--name", "esc", "busybox", "sh", "-c", &script]));
    wait_for_path(&d, "esc", "/ready");

    // Reading through the container's own links to `/` gives the container's files.
    let out_dir = host.path();
    for (i, src) in [
        "esc:/hostroot/etc/shadow",
        "esc:../../../etc/shadow",
        "esc:/tmp/up/etc/shadow",
        "esc:/hostroot/hostroot/../../etc/shadow",
    ]
    .iter()
    .enumerate()
    {
        let dst = out_dir.join(format!("s{i}"));
        let out = d.docker(&["cp", src, dst.to_str().unwrap()]);
        assert!(out.status.success(), "{src}: {}", text(&out.stderr));
        assert_eq!(
            std::fs::read_to_string(&dst).unwrap(),
            "container-shadow\n",
            "{src}"
        );
    }
    let dst = out_dir.join("canary");
    ok(&d.docker(&["cp", "-L", "esc:/canary/secret", dst.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "container-secret\n");

    // The stat of a link to `/` resolves inside the container.
    let r = d
        .request(
            "HEAD",
            "/v1.41/containers/esc/archive?path=/hostroot",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let stat = decode_stat(r.header("X-Docker-Container-Path-Stat").unwrap());
    assert_eq!(stat["linkTarget"], "/");
    assert_eq!(stat["mode"].as_u64().unwrap() & (1 << 27), 1 << 27);

    // Writing through them lands in the container.
    std::fs::write(out_dir.join("planted"), "planted\n").unwrap();
    for dst in ["esc:/hostroot/etc/", "esc:/tmp/up/tmp/", "esc:/canary/"] {
        let out = d.docker(&["cp", out_dir.join("planted").to_str().unwrap(), dst]);
        assert!(out.status.success(), "{dst}: {}", text(&out.stderr));
    }
    let up = upper(&d, "esc");
    assert!(up.join("etc/planted").is_file());
    assert!(up.join("tmp/planted").is_file());
    assert!(up.join(format!("tmp/{canary_name}/planted")).is_file());
    assert!(!Path::new("/etc/planted").exists());
    assert!(!Path::new("/tmp/planted").exists());
    assert!(!canary_dir.path().join("planted").exists());

    // A hand-made archive that climbs out, or links out, is refused.
    for (entry, kind, link) in [
        (
            format!("../../../../../../tmp/{canary_name}/pwned"),
            b'0',
            "",
        ),
        ("hostlink".to_string(), b'1', "../../../../etc/shadow"),
        ("escape".to_string(), b'2', "../../../../../.."),
    ] {
        let tar = raw_tar(&entry, kind, link, b"pwned\n");
        let r = d
            .request(
                "PUT",
                "/v1.41/containers/esc/archive?path=/tmp",
                &[("Content-Type", "application/x-tar")],
                &tar,
            )
            .unwrap();
        assert_eq!(r.status, 400, "{entry}: {}", text(&r.body));
        let msg = json_error(&r);
        assert!(
            msg.contains("outside of")
                || msg.contains("invalid hardlink")
                || msg.contains("invalid symlink"),
            "{msg}"
        );
    }
    // Entries through the container's symlinks stay inside it.
    let tar = raw_tar(
        &format!("hostroot/tmp/{canary_name}/secret"),
        b'0',
        "",
        b"overwritten\n",
    );
    let r = d
        .request("PUT", "/v1.41/containers/esc/archive?path=/", &[], &tar)
        .unwrap();
    assert_eq!(r.status, 200, "{}", text(&r.body));
    assert_eq!(
        std::fs::read_to_string(up.join(format!("tmp/{canary_name}/secret"))).unwrap(),
        "overwritten\n"
    );
    // Kernel file systems are not the container's files.
    let tar = raw_tar("x", b'0', "", b"1\n");
    let r = d
        .request(
            "PUT",
            "/v1.41/containers/esc/archive?path=/proc/sys/kernel",
            &[],
            &tar,
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r.body));
    assert!(json_error(&r).contains("kernel file system"));

    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host secret\n");
    let names_now: Vec<_> = std::fs::read_dir(canary_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names_now, ["secret"]);
    let after: Vec<_> = guarded.iter().map(|p| sha256(Path::new(p))).collect();
    assert_eq!(before, after, "a host file changed");
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn tar_bombs_are_refused_and_berthd_keeps_serving() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "bomb", "busybox", "sleep", "300"]));
    let baseline = daemon_fds(&d);

    // A long-name member claiming 8 GiB: refused from its header, nothing buffered.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_size(8 << 30);
    h.set_cksum();
    let mut body = h.as_bytes().to_vec();
    body.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let r = d
        .request(
            "PUT",
            "/v1.41/containers/bomb/archive?path=/tmp",
            &[],
            &body,
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r.body));
    assert!(json_error(&r).contains("larger than"), "{}", json_error(&r));

    // More data than the destination can hold: the container's 64 MiB /dev/shm gets a
    // 100 MiB file, streamed; the upload is cut off with a clear error, not by ENOSPC.
    let size: u64 = 100 << 20;
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let t0 = Instant::now();
    let r = stream_put(
        &d,
        "/v1.41/containers/bomb/archive?path=/dev/shm",
        h.as_bytes(),
        size,
    );
    assert_eq!(r.status, 400, "{}", text(&r.body));
    let msg = json_error(&r);
    assert!(msg.contains("larger than the space left"), "{msg}");
    assert!(t0.elapsed() < Duration::from_secs(60));
    // What was written before the refusal stays, as with dockerd; the container still runs.
    let out = d.docker(&["top", "bomb"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Garbage and an empty body.
    let r = d
        .request(
            "PUT",
            "/v1.41/containers/bomb/archive?path=/tmp",
            &[],
            &[7u8; 4096],
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(json_error(&r).contains("invalid tar archive"));
    let r = d
        .request("PUT", "/v1.41/containers/bomb/archive?path=/tmp", &[], b"")
        .unwrap();
    assert_eq!(
        r.status,
        200,
        "an empty upload is an empty archive: {}",
        text(&r.body)
    );
    let after = fds_settle(&d, baseline + 2);
    assert!(
        after <= baseline + 2,
        "berthd holds {after} fds, {baseline} before"
    );
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn archive_api_answers_like_dockerd() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "api",
        "busybox",
        "sh",
        "-c",
        "echo 12345 > /tmp/f; ln -s /tmp/f /tmp/l; sleep 300",
    ]));
    wait_for_path(&d, "api", "/tmp/l");
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;

    let r = d
        .request(
            "HEAD",
            "/v1.41/containers/api/archive?path=/tmp/f",
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let stat = decode_stat(r.header("X-Docker-Container-Path-Stat").unwrap());
    assert_eq!(stat["name"], "f");
    assert_eq!(stat["size"], 6);
    assert_eq!(stat["mode"], 0o644);
    assert_eq!(stat["linkTarget"], "");
    assert!(stat["mtime"].as_str().unwrap().ends_with('Z'));
    let r = d
        .request("HEAD", "/v1.41/containers/api/archive?path=/tmp/", &[], b"")
        .unwrap();
    let stat = decode_stat(r.header("X-Docker-Container-Path-Stat").unwrap());
    assert_eq!(stat["name"], "tmp");
    assert_eq!(
        stat["mode"].as_u64().unwrap() >> 31,
        1,
        "a directory: {stat}"
    );
    let r = d
        .request(
            "HEAD",
            "/v1.41/containers/api/archive?path=/tmp/l",
            &[],
            b"",
        )
        .unwrap();
    let stat = decode_stat(r.header("X-Docker-Container-Path-Stat").unwrap());
    assert_eq!(stat["linkTarget"], "/tmp/f");

    // GET: the tar of a symlink is the link itself; the stat header comes along.
    let r = d
        .request("GET", "/v1.41/containers/api/archive?path=/tmp/l", &[], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert!(r.header("X-Docker-Container-Path-Stat").is_some());
    let e = tar_entries(&r.body);
    assert_eq!(
        (e[0].name.as_str(), e[0].kind, e[0].link.as_str()),
        ("l", tar::EntryType::Symlink, "/tmp/f")
    );

    // Missing things.
    let r = d
        .request("HEAD", "/v1.41/containers/api/archive?path=/nope", &[], b"")
        .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    let r = d
        .request("GET", "/v1.41/containers/api/archive?path=/nope", &[], b"")
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        json_error(&r),
        "Could not find the file /nope in container api"
    );
    let r = d
        .request("GET", "/v1.41/containers/nosuch/archive?path=/", &[], b"")
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(json_error(&r), "No such container: nosuch");
    let r = d
        .request("GET", "/v1.41/containers/api/archive", &[], b"")
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(json_error(&r).contains("path cannot be empty"));
    let r = d
        .request(
            "PUT",
            "/v1.41/containers/api/archive?path=/tmp/f",
            &[],
            &raw_tar("x", b'0', "", b"x"),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(json_error(&r), "extraction point is not a directory");
    let dir_over_file = raw_tar("f/", b'5', "", b"");
    let r = d
        .request(
            "PUT",
            "/v1.41/containers/api/archive?path=/tmp&noOverwriteDirNonDir=true",
            &[],
            &dir_over_file,
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r.body));
    assert!(
        json_error(&r).contains("cannot overwrite non-directory"),
        "{}",
        json_error(&r)
    );

    // A read-only root file system takes no copies (except into mounts).
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "ro",
        "--read-only",
        "busybox",
        "sleep",
        "300",
    ]));
    let r = d
        .request(
            "PUT",
            "/v1.41/containers/ro/archive?path=/tmp",
            &[],
            &raw_tar("x", b'0', "", b"x"),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r.body));
    assert_eq!(json_error(&r), "container rootfs is marked read-only");

    // The copies are container events, as with dockerd.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = d.docker(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=api",
        "--format",
        "{{.Action}}",
    ]);
    let actions = ok(&out);
    assert!(actions.lines().any(|a| a == "archive-path"), "{actions}");
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_client_that_goes_away_mid_archive_leaks_nothing() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "--name",
        "gone",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=32 2>/dev/null",
    ]));
    let rootfs = d
        .data_root()
        .join("containers")
        .join(container_id(&d, "gone"))
        .join("rootfs");
    let baseline = daemon_fds(&d);
    for path in ["/big", "/"] {
        for _ in 0..3 {
            let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
            write!(
                s,
                "GET /v1.41/containers/gone/archive?path={path} HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < 128 * 1024 {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the archive ended early");
                got += n;
            }
            drop(s);
        }
    }
    // An upload that stops half-way.
    for _ in 0..3 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("partial").unwrap();
        h.set_size(64 << 20);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        write!(
            s,
            "PUT /v1.41/containers/gone/archive?path=/tmp HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            (64 << 20) + 2048
        )
        .unwrap();
        s.write_all(h.as_bytes()).unwrap();
        s.write_all(&vec![0u8; 1 << 20]).unwrap();
        drop(s);
    }
    // Same for an export.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    write!(
        s,
        "GET /v1.41/containers/gone/export HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    assert!(s.read(&mut buf).unwrap() > 0);
    drop(s);

    let after = fds_settle(&d, baseline + 2);
    assert!(
        after <= baseline + 2,
        "berthd holds {after} fds, {baseline} before"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while berth_tests::mounts_under(&rootfs).contains(&rootfs) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !berth_tests::mounts_under(&rootfs).contains(&rootfs),
        "left mounted"
    );
    // A whole archive still comes out right afterwards.
    let out = d.docker(&["cp", "gone:/big", "-"]);
    assert!(out.status.success());
    let e = tar_entries(&out.stdout);
    assert_eq!((e[0].size, e[0].data.len()), (32 << 20, 32 << 20));
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_diff_lists_what_the_container_changed() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "mkdir /newdir && echo x > /newdir/f && echo extra >> /etc/passwd && rm /bin/true",
    ]));
    let out = ok(&d.docker(&["diff", "changed"]));
    assert_eq!(
        out, "C /bin\nD /bin/true\nC /etc/passwd\nA /newdir\nA /newdir/f\n",
        "{out}"
    );
    let r = d
        .request("GET", "/v1.41/containers/changed/changes", &[], b"")
        .unwrap();
    assert_eq!(
        r.json()[1],
        serde_json::json!({"Path": "/bin/true", "Kind": 2})
    );
    // Nothing changed: docker prints nothing (dockerd answers null).
    ok(&d.docker(&["create", "--name", "fresh", "busybox", "true"]));
    assert_eq!(ok(&d.docker(&["diff", "fresh"])), "");
    let r = d
        .request("GET", "/v1.41/containers/fresh/changes", &[], b"")
        .unwrap();
    assert_eq!(r.body, b"null");
    let out = d.docker(&["diff", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such container: nosuch"));
    still_serving(&d);
}

fn decode_stat(header: &str) -> serde_json::Value {
    let bytes = base64_decode(header);
    serde_json::from_slice(&bytes).unwrap()
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in chunk {
            n = (n << 6) | if c == b'=' { 0 } else { val(c) };
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

/// A one-entry tar archive written byte by byte (the tar crate refuses `..` in names).
fn raw_tar(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(0o644);
    h.set_size(if kind == b'0' { data.len() as u64 } else { 0 });
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    if kind == b'0' {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend([0u8; 1024]);
    out
}

/// PUTs `header` followed by `size` zero bytes, streamed, and reads the answer (which may
/// come before the whole body was taken).
fn stream_put(d: &Daemon, path: &str, header: &[u8], size: u64) -> berth_tests::HttpResponse {
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let total = header.len() as u64 + size.div_ceil(512) * 512 + 1024;
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut sent = 0;
    if s.write_all(header).is_ok() {
        let chunk = vec![0u8; 1 << 20];
        while sent < total - header.len() as u64 {
            let n = chunk
                .len()
                .min((total - header.len() as u64 - sent) as usize);
            if s.write_all(&chunk[..n]).is_err() {
                break;
            }
            sent += n as u64;
        }
    }
    // No half-close, as docker's and docker-py's clients do not: berthd (hyper) takes a
    // client's end of input before the answer as the client going away.
    berth_tests::read_response(&mut std::io::BufReader::new(s), false).unwrap()
}

berth_tests::both_modes! {
    /// `berth cp`, `diff`, `export` and `top` in docker's syntax, through berthd and
    /// daemonless alike.
    fn berth_cp_diff_export_and_top(mode: Mode) {
        let d = Daemon::start_in(mode);
        let host = tempfile::tempdir().unwrap();
        let h = host.path();
        ok(&d.berth(&[
            "run", "-d", "--name", "bc", "busybox", "sh", "-c",
            "echo made > /made; ln -s / /hostroot; echo container-shadow > /etc/shadow; \
             touch /ready; sleep 300",
        ]));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.berth(&["cp", "bc:/ready", "-"]).status.success() {
            assert!(Instant::now() < deadline, "the container never got ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let up = d
            .data_root()
            .join("containers")
            .join(ok(&d.berth(&["inspect", "-f", "{{.Id}}", "bc"])).trim())
            .join("diff");

        // In: a file with its owner, a directory, and a tar on stdin.
        std::fs::write(h.join("f.txt"), "file\n").unwrap();
        nix::unistd::chown(
            &h.join("f.txt"),
            Some(nix::unistd::Uid::from_raw(1234)),
            Some(nix::unistd::Gid::from_raw(5678)),
        )
        .unwrap();
        std::fs::create_dir_all(h.join("tree/sub")).unwrap();
        std::fs::write(h.join("tree/sub/file"), "deep\n").unwrap();
        std::os::unix::fs::symlink("sub/file", h.join("tree/link")).unwrap();
        ok(&d.berth(&["cp", "-a", h.join("f.txt").to_str().unwrap(), "bc:/tmp/"]));
        let m = std::fs::metadata(up.join("tmp/f.txt")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        ok(&d.berth(&["cp", h.join("tree").to_str().unwrap(), "bc:/tmp/"]));
        ok(&d.berth(&["cp", h.join("tree").to_str().unwrap(), "bc:/tmp/renamed"]));
        assert_eq!(std::fs::read_to_string(up.join("tmp/tree/sub/file")).unwrap(), "deep\n");
        assert_eq!(std::fs::read_to_string(up.join("tmp/renamed/sub/file")).unwrap(), "deep\n");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(6);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, "from-stdin", &b"stdin\n"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mut cmd = d.berth_cmd(&["cp", "-", "bc:/tmp"]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&tar).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(std::fs::read_to_string(up.join("tmp/from-stdin")).unwrap(), "stdin\n");

        // Out: renamed, contents only, a followed link, through a link to `/`, as a tar.
        let o = h.join("out");
        std::fs::create_dir(&o).unwrap();
        ok(&d.berth(&["cp", "bc:/tmp/tree", o.join("t2").to_str().unwrap()]));
        assert_eq!(std::fs::read_to_string(o.join("t2/sub/file")).unwrap(), "deep\n");
        assert!(o.join("t2/link").is_symlink());
        ok(&d.berth(&["cp", "bc:/tmp/tree/.", o.join("contents").to_str().unwrap()]));
        assert!(o.join("contents/sub/file").is_file());
        ok(&d.berth(&["cp", "-L", "bc:/tmp/tree/link", o.join("followed").to_str().unwrap()]));
        assert!(!o.join("followed").is_symlink());
        assert_eq!(std::fs::read_to_string(o.join("followed")).unwrap(), "deep\n");
        ok(&d.berth(&["cp", "bc:/hostroot/etc/shadow", o.to_str().unwrap()]));
        assert_eq!(std::fs::read_to_string(o.join("shadow")).unwrap(), "container-shadow\n");
        // Without -a the files are the caller's; with -a the container's owners stay.
        ok(&d.berth(&["cp", "bc:/tmp/f.txt", o.join("mine").to_str().unwrap()]));
        assert_eq!(std::fs::metadata(o.join("mine")).unwrap().uid(), 0);
        ok(&d.berth(&["cp", "-a", "bc:/tmp/f.txt", o.join("theirs").to_str().unwrap()]));
        assert_eq!(std::fs::metadata(o.join("theirs")).unwrap().uid(), 1234);
        let out = d.berth(&["cp", "bc:/made", "-"]);
        assert!(out.status.success());
        let e = tar_entries(&out.stdout);
        assert_eq!((e[0].name.as_str(), e[0].data.as_slice()), ("made", &b"made\n"[..]));
        let out = d.berth(&["cp", "bc:/nonexistent", o.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("Could not find the file /nonexistent in container bc"),
            "{}",
            text(&out.stderr)
        );
        let out = d.berth(&["cp", h.join("tree").to_str().unwrap(), "bc:/tmp/f.txt"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("cannot copy directory"), "{}", text(&out.stderr));

        // diff, export and top.
        let diff = ok(&d.berth(&["diff", "bc"]));
        for line in ["A /made", "A /hostroot", "C /tmp", "A /tmp/f.txt", "A /tmp/tree/sub/file"] {
            assert!(diff.lines().any(|l| l == line), "{line} missing from:\n{diff}");
        }
        let exported = h.join("e.tar");
        ok(&d.berth(&["export", "-o", exported.to_str().unwrap(), "bc"]));
        let listing = names(&std::fs::read(&exported).unwrap());
        assert!(listing.iter().any(|n| n == "made"), "{listing:?}");
        assert!(listing.iter().any(|n| n == "tmp/tree/sub/file"), "{listing:?}");
        let top = ok(&d.berth(&["top", "bc", "-o", "pid,comm"]));
        let mut lines = top.lines();
        assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["PID", "COMMAND"]);
        assert!(lines.any(|l| l.ends_with("sleep")), "{top}");
        let stats = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", "bc"]));
        let f: Vec<&str> = stats.split_whitespace().collect();
        assert_eq!((f[0], f[1], f[3]), ("bc", "1", "/"), "{stats}");
        ok(&d.berth(&["rm", "-f", "bc"]));
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn berth_and_docker_show_the_same() {
    let d = Daemon::start();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "same",
        "busybox",
        "sh",
        "-c",
        "mkdir /newdir && echo x > /newdir/f && rm /bin/true && sleep 301 & sleep 302; echo done",
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok(&d.docker(&["diff", "same"])).contains("/newdir/f") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        ok(&d.berth(&["diff", "same"])),
        ok(&d.docker(&["diff", "same"]))
    );
    assert_eq!(
        ok(&d.berth(&["top", "same", "-o", "pid,ppid,args"])),
        ok(&d.docker(&["top", "same", "-o", "pid,ppid,args"]))
    );
    let host = tempfile::tempdir().unwrap();
    for (tool, dir) in [("berth", "b"), ("docker", "d")] {
        let dst = host.path().join(dir);
        let out = if tool == "berth" {
            d.berth(&["cp", "same:/newdir", dst.to_str().unwrap()])
        } else {
            d.docker(&["cp", "same:/newdir", dst.to_str().unwrap()])
        };
        assert!(out.status.success(), "{tool}: {}", text(&out.stderr));
    }
    assert_eq!(
        std::fs::read(host.path().join("b/f")).unwrap(),
        std::fs::read(host.path().join("d/f")).unwrap()
    );
    let b = ok(&d.berth(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.ID}} {{.Name}} {{.PIDs}}",
        "same",
    ]));
    let k = ok(&d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.ID}} {{.Name}} {{.PIDs}}",
        "same",
    ]));
    assert_eq!(b, k);
    assert_eq!(
        ok(&d.berth(&["stats", "--no-stream", "same"]))
            .lines()
            .next(),
        ok(&d.docker(&["stats", "--no-stream", "same"]))
            .lines()
            .next()
    );
}

berth_tests::both_modes! {
    /// A stopped container's root is mounted for a copy and unmounted by the time the
    /// command returns (a daemonless command exits right after), and copies are events.
    fn copies_of_stopped_containers_leave_nothing_mounted(mode: Mode) {
        let d = Daemon::start_in(mode);
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 1;
        ok(&d.berth(&["run", "--name", "stopped", "busybox", "sh", "-c", "echo made > /made"]));
        let id = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "stopped"])).trim().to_string();
        let rootfs = d.data_root().join("containers").join(&id).join("rootfs");
        let mounted = || berth_tests::mounts_under(&rootfs).contains(&rootfs);
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("in"), "in\n").unwrap();
        for _ in 0..3 {
            let out = d.berth(&["cp", "stopped:/made", "-"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(!mounted(), "mounted after a copy out");
            ok(&d.berth(&["cp", host.path().join("in").to_str().unwrap(), "stopped:/"]));
            assert!(!mounted(), "mounted after a copy in");
            let out = d.berth(&["cp", "stopped:/nope", "-"]);
            assert_eq!(out.status.code(), Some(1));
            assert!(!mounted(), "mounted after a failed copy");
        }
        let out = d.berth(&["export", "-o", host.path().join("e.tar").to_str().unwrap(), "stopped"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!mounted(), "mounted after an export");
        // The container still starts, and sees what was copied in.
        ok(&d.berth(&["start", "stopped"]));
        let out = d.berth(&["cp", "stopped:/in", "-"]);
        assert_eq!(tar_entries(&out.stdout)[0].data, b"in\n");
        let until = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1;
        let actions = ok(&d.berth(&[
            "events", "--since", &t0.to_string(), "--until", &until.to_string(),
            "--filter", "container=stopped", "--format", "{{.Action}}",
        ]));
        for want in ["archive-path", "extract-to-dir", "export"] {
            assert!(actions.lines().any(|a| a == want), "no {want} event in:\n{actions}");
        }
    }
}

/// An upload the engine refuses early is answered, not cut off: the client, still
/// writing, reads berthd's error instead of "broken pipe" (hyper would close the
/// connection under it if berthd did not drain what is left).
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn refused_uploads_are_answered_not_cut_off() {
    let d = Daemon::start();
    ok(&d.docker(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]));
    let host = tempfile::tempdir().unwrap();
    let big = host.path().join("big");
    std::fs::write(&big, vec![b'x'; 16 << 20]).unwrap();
    for _ in 0..3 {
        let out = d.docker(&["cp", big.to_str().unwrap(), "up:/no/such/file"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("Could not find the file /no/such in container up"),
            "{}",
            text(&out.stderr)
        );
    }
    // An archive that is not one: docker load reports the engine's error.
    let out = d.docker(&["load", "-i", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(!err.contains("broken pipe"), "{err}");
    assert!(err.contains("Error response from daemon"), "{err}");
    still_serving(&d);
}

/// Copies from a container that is ending as they run: the record may still say running
/// while its root is already unmounted. Each copy must see the container's files (from a
/// root mounted for the copy if need be), and nothing stays mounted afterwards.
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn copies_racing_the_end_of_a_container() {
    let d = Daemon::start();
    ok(&d.berth(&[
        "run",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "echo made > /made",
    ]));
    let id = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "brief"]))
        .trim()
        .to_string();
    let rootfs = d.data_root().join("containers").join(&id).join("rootfs");
    for i in 0..25 {
        ok(&d.berth(&["start", "brief"]));
        let out = d.berth(&["cp", "brief:/made", "-"]);
        assert!(out.status.success(), "copy {i}: {}", text(&out.stderr));
        assert_eq!(tar_entries(&out.stdout)[0].data, b"made\n", "copy {i}");
    }
    ok(&d.berth(&["wait", "brief"]));
    assert!(
        berth_tests::eventually(Duration::from_secs(10), || {
            !berth_tests::mounts_under(&rootfs).contains(&rootfs)
        }),
        "the root stayed mounted"
    );
}
