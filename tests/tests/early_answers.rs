//! Answers berthd gives before reading a request's body (a route it does not serve, an API
//! version it refuses, a body too large to read) still take the whole body first, so the
//! client reads the answer instead of "broken pipe": with raw HTTP, and with the docker CLI
//! on a route berthd does not serve.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use berth_tests::{read_response, text, Daemon};

/// Sends `method path` with a body of `size` bytes, every byte of which must be taken,
/// and returns the answer.
fn post_big(d: &Daemon, method: &str, path: &str, size: usize) -> berth_tests::HttpResponse {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 << 10];
    let mut sent = 0;
    while sent < size {
        let n = chunk.len().min(size - sent);
        s.write_all(&chunk[..n])
            .unwrap_or_else(|e| panic!("{path}: berthd stopped taking the body at {sent}: {e}"));
        sent += n;
    }
    read_response(&mut BufReader::new(s), false).unwrap()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn early_answers_take_the_whole_body_first() {
    let d = Daemon::start();
    let size = 16 << 20;
    // A route berthd does not serve.
    let r = post_big(&d, "POST", "/v1.41/swarm/init", size);
    assert_eq!(r.status, 404, "{}", text(&r.body));
    assert_eq!(r.json()["message"], "page not found");
    // A version berthd refuses, too new and too old.
    let r = post_big(&d, "POST", "/v1.99/containers/create", size);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.41"
    );
    let r = post_big(&d, "POST", "/v1.23/containers/create", size);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
    );
    // A JSON body larger than berthd reads.
    let r = post_big(&d, "POST", "/v1.41/containers/create", size);
    assert_eq!(r.status, 413, "{}", text(&r.body));
    // The connection served them all: berthd is still there for the next request.
    let r = d.request("GET", "/_ping", &[], b"").unwrap();
    assert_eq!((r.status, text(&r.body)), (200, "OK".to_string()));
}

/// The docker CLI on a route berthd does not serve sends a body: it reads berthd's answer.
/// (Before berthd read such bodies, about one try in three ended in "write: broken pipe":
/// twenty tries miss that one time in thousands.)
#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn the_docker_cli_reads_page_not_found() {
    let d = Daemon::start();
    let file = d.root.path().join("secret.txt");
    std::fs::write(&file, "s3cret").unwrap();
    for _ in 0..10 {
        for args in [
            &["swarm", "init"][..],
            &["secret", "create", "s1", file.to_str().unwrap()][..],
        ] {
            let out = d.docker(args);
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{args:?}");
            assert_eq!(
                err.trim(),
                "Error response from daemon: page not found",
                "{args:?}"
            );
        }
    }
}
