//! Bad input gets Docker's status and a clear message; the daemon and its state stay intact.

use berth_tests::{ok, Daemon};

fn still_serving(d: &Daemon) {
    let r = d
        .request("GET", "/_ping", &[], b"")
        .expect("berthd stopped answering");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"OK");
}

fn json_error(r: &berth_tests::HttpResponse) -> String {
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()["message"].as_str().unwrap().to_string()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn malformed_and_mistyped_json_is_a_400() {
    let d = Daemon::start();
    let h = [("Content-Type", "application/json")];
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create",
            &h,
            b"{\"Image\": \"busybox\"",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(json_error(&r).contains("invalid JSON body"));
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create",
            &h,
            br#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#,
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(json_error(&r).contains("Memory") || json_error(&r).contains("invalid type"));
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create",
            &[("Content-Type", "text/plain")],
            br#"{"Image":"busybox"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        json_error(&r),
        "Content-Type specified (text/plain) must be 'application/json'"
    );
    assert!(d.container_ids().is_empty());
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn a_2gb_body_is_refused_without_reading_it() {
    let d = Daemon::start();
    let t0 = std::time::Instant::now();
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create",
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", "2147483648"),
            ],
            b"{",
        )
        .unwrap();
    assert_eq!(r.status, 413);
    assert!(json_error(&r).contains("larger than"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    still_serving(&d);
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn version_prefixes_and_unknown_routes() {
    let d = Daemon::start();
    let r = d.request("GET", "/v1.24/version", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("api-version"), Some("1.41"));
    let r = d.request("GET", "/v1.99/version", &[], b"").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        json_error(&r),
        "client version 1.99 is too new. Maximum supported API version is 1.41"
    );
    let r = d.request("GET", "/v1.41/nothing/here", &[], b"").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(json_error(&r), "page not found");
    let r = d.request("HEAD", "/_ping", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ostype"), Some("linux"));
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn bad_names_references_and_signals() {
    let d = Daemon::start();
    let h = [("Content-Type", "application/json")];
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create?name=bad/name",
            &h,
            br#"{"Image":"busybox","Cmd":["true"]}"#,
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        json_error(&r),
        "Invalid container name (bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    );
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create",
            &h,
            br#"{"Image":"busy box","Cmd":["true"]}"#,
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(json_error(&r).contains("invalid reference format"));
    ok(&d.berth(&["create", "--name", "dup", "busybox", "true"]));
    let r = d
        .request(
            "POST",
            "/v1.41/containers/create?name=dup",
            &h,
            br#"{"Image":"busybox","Cmd":["true"]}"#,
        )
        .unwrap();
    assert_eq!(r.status, 409);
    let id = ok(&d.berth(&["run", "-d", "busybox", "sleep", "300"]));
    let r = d
        .request(
            "POST",
            &format!("/v1.41/containers/{}/kill?signal=NOSUCH", id.trim()),
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(json_error(&r), "Invalid signal: NOSUCH");
    let r = d
        .request("POST", "/v1.41/containers/nosuch/kill", &[], b"")
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        json_error(&r),
        "Cannot kill container: nosuch: No such container: nosuch"
    );
    assert_eq!(d.container_ids().len(), 2, "state intact");
    still_serving(&d);
}

/// A tar archive in memory.
fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data, link) in entries {
        let mut h = tar::Header::new_old();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Write the raw name so `..` survives (the builder would refuse it).
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn hostile_tarballs_cannot_write_outside_the_layer() {
    let d = Daemon::start();
    let before = std::fs::read("/etc/passwd").unwrap();
    let escape = tar_with(&[(
        "../../etc/passwd",
        tar::EntryType::Regular,
        b"pwned\n",
        None,
    )]);
    let r = d
        .request(
            "POST",
            "/v1.41/images/create?fromSrc=-&repo=evil1",
            &[("Content-Type", "text/plain")],
            &escape,
        )
        .unwrap();
    let symlink = tar_with(&[
        ("root", tar::EntryType::Symlink, b"", Some("/")),
        ("root/etc/passwd", tar::EntryType::Regular, b"pwned\n", None),
    ]);
    let r2 = d
        .request(
            "POST",
            "/v1.41/images/create?fromSrc=-&repo=evil2",
            &[("Content-Type", "text/plain")],
            &symlink,
        )
        .unwrap();
    assert_eq!(
        std::fs::read("/etc/passwd").unwrap(),
        before,
        "the host's /etc/passwd changed"
    );
    for r in [&r, &r2] {
        // Either refused with a clear error or contained inside the layer.
        assert!(
            r.status == 200 || r.status == 400 || r.status == 500,
            "status {}",
            r.status
        );
        if r.status != 200 {
            assert!(!json_error(r).is_empty());
        }
    }
    still_serving(&d);
    assert!(ok(&d.berth(&["images", "--format", "{{.Repository}}"])).contains("busybox"));
}
