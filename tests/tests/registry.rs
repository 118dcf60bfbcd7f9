//! Pull, push, login and distribution against registries on loopback: Debian's
//! docker-registry (plain and with htpasswd Basic auth) and a fake registry that stalls,
//! drops connections and lies, driven by berth (both modes), the docker CLI and docker-py.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_tests::registry::{
    count_entries, digest, FakeContent, FakeRegistry, Registry, Serve, TokenServer,
};
use berth_tests::{
    both_modes, busybox_archive, ok, repo_root, run_with_timeout, text, Daemon, Mode,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The busybox layer (uncompressed tar) of the test image.
fn busybox_layer() -> Vec<u8> {
    let mut archive = tar::Archive::new(std::fs::File::open(busybox_archive()).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("layer.tar") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("no layer in the busybox archive");
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn config_for(arch: &str, diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest(blob), "size": blob.len()})
}

/// A manifest of `config` and `layers` (media type, blob).
fn manifest(media_type: &str, config: &[u8], layers: &[(&str, &[u8])]) -> Vec<u8> {
    let config_type = if media_type == OCI_MANIFEST {
        "application/vnd.oci.image.config.v1+json"
    } else {
        "application/vnd.docker.container.image.v1+json"
    };
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": layers.iter().map(|(t, b)| descriptor(t, b)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// `berth` with `$DOCKER_CONFIG` in the test's root.
fn berth_cfg(d: &Daemon, args: &[&str]) -> Command {
    let mut c = d.berth_cmd(args);
    c.env("DOCKER_CONFIG", d.root.path().join("docker-config"));
    c
}

fn wait_cmd(cmd: Command) -> Output {
    run_with_timeout(cmd, Duration::from_secs(180))
}

fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure:\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// Layers, scratch entries and tags of a store: what a failed pull must not change.
fn store_state(d: &Daemon) -> (usize, usize, String) {
    let image = d.data_root().join("image");
    (
        count_entries(&image.join("layers")),
        count_entries(&image.join("tmp")),
        std::fs::read_to_string(image.join("repositories.json")).unwrap_or_default(),
    )
}

both_modes! {
    fn push_twice_then_pull_by_tag_and_digest(mode: Mode) {
        let reg = Registry::start();
        let d = Daemon::start_in(mode);
        let name = format!("{}/bb:v1", reg.addr);
        ok(&d.berth(&["tag", "busybox", &name]));
        let out = ok(&d.berth(&["push", &name]));
        assert!(out.contains(&format!("The push refers to repository [{}/bb]", reg.addr)), "{out}");
        assert!(out.contains(": Pushed"), "{out}");
        let digest_line = out.lines().find(|l| l.starts_with("v1: digest: sha256:")).unwrap_or_else(|| panic!("{out}"));
        let pushed_digest = digest_line.split_whitespace().nth(2).unwrap().to_string();

        // Again: the registry has every blob, so only HEADs (and the manifest PUT).
        let before = reg.requests().len();
        let out = ok(&d.berth(&["push", &name]));
        assert!(out.contains(": Layer already exists"), "{out}");
        assert!(!out.contains(": Pushed"), "{out}");
        let again: Vec<String> = reg.requests()[before..].to_vec();
        assert!(again.iter().any(|r| r.starts_with("HEAD /v2/bb/blobs/")), "{again:?}");
        assert!(
            again.iter().all(|r| r == "GET /v2/" || r.starts_with("HEAD /v2/bb/blobs/") || r == "PUT /v2/bb/manifests/v1"),
            "the second push uploaded: {again:?}"
        );
        let digests = d.inspect(&name, "{{json .RepoDigests}}");
        assert!(digests.contains(&format!("{}/bb@{pushed_digest}", reg.addr)), "{digests}");

        // A fresh store pulls it back, every layer downloaded.
        let d2 = Daemon::start_in(mode);
        ok(&d2.berth(&["rmi", "busybox"]));
        let out = ok(&d2.berth(&["pull", &name]));
        assert!(out.contains("v1: Pulling from bb"), "{out}");
        assert!(out.contains(": Pull complete"), "{out}");
        assert!(out.contains(&format!("Digest: {pushed_digest}")), "{out}");
        assert!(out.contains(&format!("Status: Downloaded newer image for {name}")), "{out}");
        assert_eq!(out.lines().last(), Some(name.as_str()), "{out}");
        let run_out = ok(&d2.berth(&["run", "--rm", &name, "echo", "pulled"]));
        assert_eq!(run_out, "pulled\n");
        assert_eq!(d2.inspect(&name, "{{.Id}}"), d.inspect(&name, "{{.Id}}"));
        let digests = d2.inspect(&name, "{{json .RepoDigests}}");
        assert!(digests.contains(&format!("{}/bb@{pushed_digest}", reg.addr)), "{digests}");

        // By digest: the same image, up to date.
        let by_digest = format!("{}/bb@{pushed_digest}", reg.addr);
        let out = ok(&d2.berth(&["pull", &by_digest]));
        assert!(out.contains("Status: Image is up to date for"), "{out}");
        assert_eq!(d2.inspect(&by_digest, "{{.Id}}"), d.inspect(&name, "{{.Id}}"));
        assert_eq!(count_entries(&d2.data_root().join("image/tmp")), 0);

        // Pushing to another repository of the registry mounts the layer from the first.
        let other = format!("{}/other:v1", reg.addr);
        ok(&d2.berth(&["tag", &name, &other]));
        let out = ok(&d2.berth(&["push", &other]));
        assert!(out.contains(": Mounted from bb"), "{out}");
    }

    fn an_oci_index_gives_the_platform_asked_for(mode: Mode) {
        let reg = Registry::start();
        let d = Daemon::start_in(mode);
        ok(&d.berth(&["rmi", "busybox"]));
        let base = gzip(&busybox_layer());
        let base_diff = digest(&busybox_layer());
        // The host's image: busybox plus an uncompressed layer; another platform's: a zstd one.
        let host_tar = tar_of(&[("platform", host_arch().as_bytes())]);
        let other_arch = if host_arch() == "arm64" { "amd64" } else { "arm64" };
        let other_tar = tar_of(&[("platform", other_arch.as_bytes())]);
        let other_zst = ruzstd::encoding::compress_to_vec(&other_tar[..], ruzstd::encoding::CompressionLevel::Fastest);
        let host_cfg = config_for(host_arch(), &[base_diff.clone(), digest(&host_tar)]);
        let other_cfg = config_for(other_arch, &[base_diff.clone(), digest(&other_tar)]);
        for blob in [&base, &host_tar, &other_zst, &host_cfg, &other_cfg] {
            reg.put_blob("multi", blob);
        }
        let host_m = manifest(OCI_MANIFEST, &host_cfg, &[(GZIP_LAYER, &base), ("application/vnd.oci.image.layer.v1.tar", &host_tar)]);
        let other_m = manifest(OCI_MANIFEST, &other_cfg, &[(GZIP_LAYER, &base), ("application/vnd.oci.image.layer.v1.tar+zstd", &other_zst)]);
        reg.put_manifest("multi", &digest(&host_m), OCI_MANIFEST, &host_m);
        reg.put_manifest("multi", &digest(&other_m), OCI_MANIFEST, &other_m);
        let mut host_d = descriptor(OCI_MANIFEST, &host_m);
        host_d["platform"] = serde_json::json!({"os": "linux", "architecture": host_arch()});
        let mut other_d = descriptor(OCI_MANIFEST, &other_m);
        other_d["platform"] = serde_json::json!({"os": "linux", "architecture": other_arch});
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [other_d, host_d],
        })).unwrap();
        reg.put_manifest("multi", "1", OCI_INDEX, &index);

        let name = format!("{}/multi:1", reg.addr);
        ok(&d.berth(&["pull", &name]));
        assert_eq!(d.inspect(&name, "{{.Architecture}}"), host_arch());
        assert_eq!(ok(&d.berth(&["run", "--rm", &name, "cat", "/platform"])), host_arch());
        // The repository digest is the index's, as dockerd records it.
        let digests = d.inspect(&name, "{{json .RepoDigests}}");
        assert!(digests.contains(&digest(&index)), "{digests}");

        let out = ok(&d.berth(&["pull", "--platform", &format!("linux/{other_arch}"), &name]));
        assert!(out.contains(": Already exists"), "the shared base layer is not fetched again: {out}");
        assert_eq!(d.inspect(&name, "{{.Architecture}}"), other_arch);
        assert_eq!(d.inspect(&name, "{{len .RootFS.Layers}}"), "2");

        let err = fails(&d.berth(&["pull", "--platform", "linux/s390x", &name]));
        assert!(err.contains("no matching manifest for linux/s390x in the manifest list entries"), "{err}");
        let by_digest = format!("{}/multi@{}", reg.addr, digest(&index));
        ok(&d.berth(&["pull", &by_digest]));
        assert_eq!(d.inspect(&by_digest, "{{.Architecture}}"), host_arch());
    }

    fn basic_auth_login_push_pull_logout(mode: Mode) {
        let reg = Registry::start_basic("alice", "s3cret pass");
        let d = Daemon::start_in(mode);
        let name = format!("{}/private:1", reg.addr);
        ok(&d.berth(&["tag", "busybox", &name]));
        let err = fails(&wait_cmd(berth_cfg(&d, &["pull", &name])));
        assert!(err.contains("unauthorized: authentication required"), "{err}");
        let err = fails(&wait_cmd(berth_cfg(&d, &["push", &name])));
        assert!(err.contains("unauthorized: authentication required"), "{err}");

        let err = fails(&wait_cmd(berth_cfg(&d, &["login", "-u", "alice", "-p", "wrong", &reg.addr])));
        assert!(err.contains("401 Unauthorized"), "{err}");
        let mut login = berth_cfg(&d, &["login", "-u", "alice", "--password-stdin", &reg.addr]);
        login.stdin(Stdio::piped());
        let out = berth_tests::with_input(login, b"s3cret pass\n");
        assert!(text(&out.stdout).contains("Login Succeeded"), "{}", text(&out.stderr));
        let config = std::fs::read_to_string(d.root.path().join("docker-config/config.json")).unwrap();
        assert!(config.contains(&reg.addr), "{config}");

        ok(&wait_cmd(berth_cfg(&d, &["push", &name])));
        ok(&d.berth(&["rmi", &name]));
        ok(&wait_cmd(berth_cfg(&d, &["pull", &name])));
        let out = ok(&wait_cmd(berth_cfg(&d, &["logout", &reg.addr])));
        assert!(out.contains(&format!("Removing login credentials for {}", reg.addr)), "{out}");
        let err = fails(&wait_cmd(berth_cfg(&d, &["pull", &name])));
        assert!(err.contains("unauthorized: authentication required"), "{err}");
    }

    fn token_auth_login_push_mount_pull(mode: Mode) {
        let tokens = TokenServer::start("dave", "tok pw");
        let reg = Registry::start_token(&tokens);
        let d = Daemon::start_in(mode);
        let name = format!("{}/tok:1", reg.addr);
        ok(&d.berth(&["tag", "busybox", &name]));
        let err = fails(&wait_cmd(berth_cfg(&d, &["pull", &name])));
        assert!(err.contains("unauthorized: authentication required"), "{err}");
        let err = fails(&wait_cmd(berth_cfg(&d, &["login", "-u", "dave", "-p", "wrong", &reg.addr])));
        assert!(err.contains("401 Unauthorized"), "{err}");
        let mut login = berth_cfg(&d, &["login", "-u", "dave", "--password-stdin", &reg.addr]);
        login.stdin(Stdio::piped());
        let out = berth_tests::with_input(login, b"tok pw\n");
        assert!(text(&out.stdout).contains("Login Succeeded"), "{}", text(&out.stderr));

        let out = ok(&wait_cmd(berth_cfg(&d, &["push", &name])));
        assert!(out.contains(": Pushed"), "{out}");
        // Another repository: the token must cover pulling from the first to mount from it.
        let other = format!("{}/tok2:1", reg.addr);
        ok(&d.berth(&["tag", &name, &other]));
        let out = ok(&wait_cmd(berth_cfg(&d, &["push", &other])));
        assert!(out.contains(": Mounted from tok"), "{out}");
        ok(&d.berth(&["rmi", "busybox", &name, &other]));
        ok(&wait_cmd(berth_cfg(&d, &["pull", &name])));
        assert_eq!(ok(&d.berth(&["run", "--rm", &name, "echo", "token"])), "token\n");
        let asked = tokens.requests();
        assert!(asked.iter().any(|r| r.contains("repository:tok:pull,push") && r.ends_with("account=dave")), "{asked:?}");
        assert!(asked.iter().any(|r| r.contains("repository:tok2:pull,push") && r.contains("repository:tok:pull")), "{asked:?}");
    }

    fn bad_references_are_refused(mode: Mode) {
        let d = Daemon::start_in(mode);
        let err = fails(&d.berth(&["pull", "127.0.0.1:5000/Upper:1"]));
        assert!(err.contains("invalid reference format"), "{err}");
        let err = fails(&d.berth(&["pull", "a b"]));
        assert!(err.contains("invalid reference format"), "{err}");
        let err = fails(&d.berth(&["push", "127.0.0.1:9/nothing-here:1"]));
        assert!(err.contains("An image does not exist locally with the tag: 127.0.0.1:9/nothing-here:1"), "{err}");
        let err = fails(&d.berth(&["pull", "127.0.0.1:9/x:1"]));
        assert!(err.contains("connection refused"), "{err}");
    }

    fn a_registry_that_drops_or_stalls_is_resumed(mode: Mode) {
        let base_tar = busybox_layer();
        let base = gzip(&base_tar);
        let small_tar = tar_of(&[("hello", b"resumed\n")]);
        let small = gzip(&small_tar);
        let cfg = config_for(host_arch(), &[digest(&base_tar), digest(&small_tar)]);
        let m = manifest(DOCKER_MANIFEST, &cfg, &[(GZIP_LAYER, &base), (GZIP_LAYER, &small)]);
        let mut content = FakeContent::default();
        content.manifests.insert("app/manifests/1".into(), (DOCKER_MANIFEST.into(), m));
        content.blobs.insert(digest(&cfg), (cfg.clone(), Serve::Whole));
        content.blobs.insert(digest(&base), (base.clone(), Serve::CloseOnce));
        content.blobs.insert(digest(&small), (small.clone(), Serve::StallOnce));
        let fake = FakeRegistry::start(content);
        let d = Daemon::start_in_env(mode, &[("BERTH_REGISTRY_TIMEOUT", "1"), ("BERTH_REGISTRY_ATTEMPTS", "3")]);
        ok(&d.berth(&["rmi", "busybox"]));
        let name = format!("{}/app:1", fake.addr);
        let out = ok(&d.berth(&["pull", &name]));
        assert!(out.contains("Status: Downloaded newer image"), "{out}");
        let requests = fake.requests();
        for blob in [&base, &small] {
            let resumed = format!("GET /v2/app/blobs/{} range=", digest(blob));
            assert!(requests.iter().any(|r| r.starts_with(&resumed)), "no resume of {}: {requests:?}", digest(blob));
        }
        assert_eq!(ok(&d.berth(&["run", "--rm", &name, "cat", "/hello"])), "resumed\n");
        assert_eq!(count_entries(&d.data_root().join("image/tmp")), 0);
    }

    fn bad_registries_leave_nothing_behind(mode: Mode) {
        let good_tar = tar_of(&[("good", b"1")]);
        let good = gzip(&good_tar);
        let stalled_tar = tar_of(&[("stalled", b"2")]);
        let stalled = gzip(&stalled_tar);
        let lying = gzip(&tar_of(&[("lie", b"3")]));
        let not_gzip = b"\x1f\x8b this is no gzip stream at all".to_vec();
        let mut content = FakeContent::default();
        let mut add_image = |tag: &str, layers: Vec<(Vec<u8>, String, Serve)>| {
            // (bytes served, digest claimed, how); the diff IDs are those of the tars.
            let diff_ids: Vec<String> = layers
                .iter()
                .map(|(b, _, _)| {
                    let mut tar = Vec::new();
                    match flate2::read::GzDecoder::new(&b[..]).read_to_end(&mut tar) {
                        Ok(_) => digest(&tar),
                        Err(_) => digest(b),
                    }
                })
                .collect();
            let cfg = config_for(host_arch(), &diff_ids);
            let descs: Vec<serde_json::Value> = layers
                .iter()
                .map(|(b, d, _)| serde_json::json!({"mediaType": GZIP_LAYER, "digest": d, "size": b.len()}))
                .collect();
            let m = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": descriptor("application/vnd.docker.container.image.v1+json", &cfg),
                "layers": descs,
            })).unwrap();
            content.blobs.insert(digest(&cfg), (cfg, Serve::Whole));
            for (b, d, how) in layers {
                content.blobs.insert(d, (b, how));
            }
            content.manifests.insert(format!("bad/manifests/{tag}"), (DOCKER_MANIFEST.into(), m));
        };
        add_image("stall", vec![(good.clone(), digest(&good), Serve::Whole), (stalled.clone(), digest(&stalled), Serve::StallAlways)]);
        let claimed = digest(b"what the manifest says");
        add_image("lie", vec![(good.clone(), digest(&good), Serve::Whole), (lying.clone(), claimed.clone(), Serve::Whole)]);
        add_image("notgzip", vec![(not_gzip.clone(), digest(&not_gzip), Serve::Whole)]);
        let fake = FakeRegistry::start(content);
        let d = Daemon::start_in_env(mode, &[("BERTH_REGISTRY_TIMEOUT", "1"), ("BERTH_REGISTRY_ATTEMPTS", "2")]);
        let before = store_state(&d);

        let err = fails(&d.berth(&["pull", &format!("{}/bad:stall", fake.addr)]));
        assert!(err.contains(&format!("failed to download layer {} after 2 attempts", digest(&stalled))), "{err}");
        assert!(err.contains("timed out"), "{err}");
        assert_eq!(store_state(&d), before, "a failed pull left something");

        let err = fails(&d.berth(&["pull", &format!("{}/bad:lie", fake.addr)]));
        assert!(err.contains(&format!("filesystem layer verification failed for digest {claimed}")), "{err}");
        assert_eq!(store_state(&d), before, "a failed pull left something");

        let err = fails(&d.berth(&["pull", &format!("{}/bad:notgzip", fake.addr)]));
        assert!(err.contains("invalid layer tar"), "{err}");
        assert_eq!(store_state(&d), before, "a failed pull left something");

        let err = fails(&d.berth(&["pull", &format!("{}/bad:missing", fake.addr)]));
        assert!(err.contains("manifest unknown"), "{err}");
    }

    fn concurrent_pulls_unpack_a_layer_once(mode: Mode) {
        let reg = Registry::start();
        let d = Daemon::start_in(mode);
        let name = format!("{}/conc:1", reg.addr);
        ok(&d.berth(&["tag", "busybox", &name]));
        ok(&d.berth(&["push", &name]));
        ok(&d.berth(&["rmi", "busybox", &name]));
        assert_eq!(count_entries(&d.data_root().join("image/layers")), 0);
        let children: Vec<_> = (0..3)
            .map(|_| d.berth_cmd(&["pull", "-q", &name]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            ok(&out);
        }
        assert_eq!(count_entries(&d.data_root().join("image/layers")), 1);
        assert_eq!(count_entries(&d.data_root().join("image/tmp")), 0);
        assert_eq!(ok(&d.berth(&["run", "--rm", &name, "echo", "once"])), "once\n");
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn the_docker_cli_pushes_through_berthd_and_berth_pulls_back() {
    let reg = Registry::start();
    let d = Daemon::start();
    let name = format!("{}/fromdocker:1", reg.addr);
    ok(&d.docker(&["tag", "busybox", &name]));
    let out = ok(&d.docker(&["push", &name]));
    assert!(out.contains("digest: sha256:"), "{out}");

    // Daemonless on another root pulls it.
    let other = Daemon::start_in(Mode::Daemonless);
    ok(&other.berth(&["rmi", "busybox"]));
    ok(&other.berth(&["pull", &name]));
    assert_eq!(
        ok(&other.berth(&["run", "--rm", &name, "echo", "via-berth"])),
        "via-berth\n"
    );

    // And the other way: berth --daemonless pushes, the docker CLI pulls through berthd.
    let back = format!("{}/fromberth:2", reg.addr);
    ok(&other.berth(&["tag", &name, &back]));
    ok(&other.berth(&["push", &back]));
    ok(&d.docker(&["rmi", "busybox", &name]));
    let out = ok(&d.docker(&["pull", &back]));
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {back}")),
        "{out}"
    );
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", &back, "echo", "via-docker"])),
        "via-docker\n"
    );
    let digests = d.docker_inspect(&back, "{{json .RepoDigests}}");
    assert!(
        digests.contains(&format!("{}/fromberth@sha256:", reg.addr)),
        "{digests}"
    );

    // docker login through berthd, against a registry with Basic auth.
    let private = Registry::start_basic("bob", "hunter2");
    let mut login = d.docker_cmd(&["login", "-u", "bob", "--password-stdin", &private.addr]);
    login.stdin(Stdio::piped());
    let out = berth_tests::with_input(login, b"hunter2\n");
    assert!(
        text(&out.stdout).contains("Login Succeeded"),
        "{}",
        text(&out.stderr)
    );
    let secret = format!("{}/secret:1", private.addr);
    ok(&d.docker(&["tag", &back, &secret]));
    ok(&d.docker(&["push", &secret]));
    let mut bad = d.docker_cmd(&["login", "-u", "bob", "--password-stdin", &private.addr]);
    bad.stdin(Stdio::piped());
    let out = berth_tests::with_input(bad, b"wrong\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("401 Unauthorized"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_py_logs_in_pushes_and_pulls() {
    let reg = Registry::start_basic("carol", "pw");
    let d = Daemon::start();
    let python = repo_root().join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("tests/py/registry.py"))
        .env("DOCKER_HOST", d.host())
        .env("REGISTRY", &reg.addr)
        .env("DOCKER_CONFIG", d.root.path().join("py-config"))
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    let out = ok(&wait_cmd(cmd));
    assert_eq!(out.trim_end().lines().last(), Some("ok"), "{out}");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_full_disk_during_unpack_leaves_nothing_behind() {
    let reg = Registry::start();
    // A layer bigger than the data root: 6 MB that do not compress.
    let mut noise = vec![0u8; 6 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let layer_tar = tar_of(&[("noise", &noise)]);
    let layer = gzip(&layer_tar);
    let cfg = config_for(host_arch(), &[digest(&layer_tar)]);
    reg.put_blob("big", &layer);
    reg.put_blob("big", &cfg);
    let m = manifest(DOCKER_MANIFEST, &cfg, &[(GZIP_LAYER, &layer)]);
    reg.put_manifest("big", "1", DOCKER_MANIFEST, &m);

    let root = tempfile::Builder::new()
        .prefix("berth-e2e-full-")
        .tempdir()
        .unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs");
    let _mount = Tmpfs(data.clone());
    let out = run_with_timeout(
        {
            let mut c = Command::new(berth_tests::bin_dir().join("berth"));
            c.args(["--daemonless", "--data-root"])
                .arg(&data)
                .arg("--exec-root")
                .arg(root.path().join("exec"))
                .args(["pull", &format!("{}/big:1", reg.addr)])
                .stdin(Stdio::null());
            c
        },
        Duration::from_secs(120),
    );
    let err = fails(&out);
    assert!(
        err.contains("No space left on device") || err.contains("no space left on device"),
        "{err}"
    );
    let image = data.join("image");
    assert_eq!(count_entries(&image.join("layers")), 0);
    assert_eq!(count_entries(&image.join("tmp")), 0);
    let index = std::fs::read_to_string(image.join("repositories.json")).unwrap_or_default();
    assert!(!index.contains("big"), "{index}");
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn insecure_registries_are_a_daemonless_flag_too() {
    let d = Daemon::start_in(Mode::Daemonless);
    let out = ok(&d.berth(&[
        "--insecure-registry",
        "10.0.0.0/8",
        "--insecure-registry",
        "registry.example:5000",
        "info",
        "--format",
        "{{json .RegistryConfig}}",
    ]));
    let config: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        config["InsecureRegistryCIDRs"],
        serde_json::json!(["127.0.0.0/8", "10.0.0.0/8"])
    );
    assert_eq!(
        config["IndexConfigs"]["registry.example:5000"]["Secure"],
        false
    );
    // Through berthd its own --insecure-registry decides: the CLI flag is refused.
    let mut c = Command::new(berth_tests::bin_dir().join("berth"));
    c.args(["--insecure-registry", "x", "info"])
        .env_remove("BERTH_DAEMONLESS")
        .stdin(Stdio::null());
    let out = run_with_timeout(c, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--daemonless"),
        "{}",
        text(&out.stderr)
    );
}
