//! Loads archives made by `scripts/make-busybox-image.sh`, in both layouts, the way the
//! end-to-end tests and users get their busybox image.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::blob::sha256_digest;
use super::testutil::TarMaker;
use super::{ImageStore, LoadedImage};

const BUSYBOX: &str = "/bin/busybox";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-image.sh")
}

/// Runs the script. The tests calling it are ignored by default: they need busybox-static.
fn make(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: scripts/install-deps.sh installs busybox-static"
    );
    let out = dir.join(name);
    let status = Command::new("bash")
        .arg(script())
        .arg(&out)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "make-busybox-image.sh {args:?} failed");
    std::fs::read(out).unwrap()
}

/// The archive without `manifest.json` and `repositories`: a pure OCI layout.
fn only_oci(archive: &[u8]) -> Vec<u8> {
    let mut t = TarMaker::default();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if entry.header().entry_type().is_file()
            && path != "manifest.json"
            && path != "repositories"
        {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            t.file(&path, &data);
        }
    }
    t.finish()
}

#[test]
#[ignore = "needs busybox-static (scripts/install-deps.sh installs it)"]
fn the_script_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make(tmp.path(), "a.tar", &[]);
    let b = make(tmp.path(), "b.tar", &[]);
    assert_eq!(sha256_digest(&a), sha256_digest(&b));
    let c = make(tmp.path(), "c.tar", &["--oci"]);
    let d = make(tmp.path(), "d.tar", &["--oci"]);
    assert_eq!(sha256_digest(&c), sha256_digest(&d));
}

#[test]
#[ignore = "needs root and busybox-static (run scripts/test.sh as root)"]
fn script_archives_load_in_both_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let legacy = make(tmp.path(), "legacy.tar", &[]);
    let oci = make(
        tmp.path(),
        "oci.tar",
        &["--oci", "--tag", "localhost:5000/bb:v1"],
    );
    let pure = only_oci(&make(
        tmp.path(),
        "pure.tar",
        &["--oci", "--tag", "docker.io/library/ck-bb:oci"],
    ));
    let store = ImageStore::open(&tmp.path().join("image")).unwrap();

    let loaded = store.load(&mut &legacy[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags, ["busybox:latest"]);
    let id = loaded[0].id.clone();

    let image = store.resolve("busybox").unwrap();
    assert_eq!(image.id, id);
    assert_eq!(image.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(
        image.config.env,
        Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
        ])
    );
    assert_eq!(image.layer_dirs.len(), 1);
    let rootfs = &image.layer_dirs[0];
    let bin = std::fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert_eq!(
        (bin.mode() & 0o7777, bin.len()),
        (0o755, std::fs::metadata(BUSYBOX).unwrap().len())
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("usr/bin/env")).unwrap(),
        Path::new("/bin/busybox")
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("berth:x:1000:1000:"), "{passwd}");
    assert!(std::fs::read_to_string(rootfs.join("etc/group"))
        .unwrap()
        .contains("berth:x:1000:"));
    assert_eq!(
        std::fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("home/berth")).unwrap().uid(),
        1000
    );
    for dir in ["proc", "sys", "dev", "etc", "root", "var"] {
        assert!(rootfs.join(dir).is_dir(), "{dir}");
    }
    let inspect = store.inspect("busybox:latest").unwrap();
    assert_eq!(
        (inspect.os.as_str(), inspect.created.as_str()),
        ("linux", "2024-01-01T00:00:00Z")
    );
    assert!(inspect.size > 1_000_000);

    // Docker >= 25's layout: the same config, so the same image and the same layer.
    let loaded = store.load(&mut &oci[..]).unwrap();
    assert_eq!(
        loaded,
        [LoadedImage {
            id: id.clone(),
            tags: vec!["localhost:5000/bb:v1".into()]
        }]
    );
    assert_eq!(
        store.resolve("localhost:5000/bb:v1").unwrap().layer_dirs,
        image.layer_dirs
    );

    // A pure OCI layout, read through index.json and its annotations.
    let loaded = store.load(&mut &pure[..]).unwrap();
    assert_eq!(
        loaded,
        [LoadedImage {
            id: id.clone(),
            tags: vec!["ck-bb:oci".into()]
        }]
    );
    assert_eq!(
        store.inspect(&id).unwrap().repo_tags,
        ["busybox:latest", "ck-bb:oci", "localhost:5000/bb:v1"]
    );
    assert_eq!(store.count(), 1);
    assert_eq!(
        std::fs::read_dir(store.root().join("layers"))
            .unwrap()
            .count(),
        1
    );
}
