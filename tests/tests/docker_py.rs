//! docker-py (7.1.0, from the venv `scripts/install-deps.sh` makes) against berthd.

use std::path::PathBuf;
use std::process::Command;

use berth_tests::{ok, repo_root, run_with_timeout, Daemon};

fn python() -> PathBuf {
    let p = repo_root().join("target/pyenv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-deps.sh",
        p.display()
    );
    p
}

/// Runs one script of tests/py against a fresh daemon; it prints `ok` at the end.
fn run_script(d: &Daemon, name: &str) {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/py").join(name))
        .env("DOCKER_HOST", d.host())
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    let out = ok(&run_with_timeout(cmd, std::time::Duration::from_secs(120)));
    assert_eq!(out.trim_end().lines().last(), Some("ok"), "{out}");
}

#[test]
#[ignore = "needs root and docker-py (run scripts/test.sh as root)"]
fn docker_py_exec_and_attach() {
    let d = Daemon::start();
    run_script(&d, "exec_attach.py");
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root and docker-py (run scripts/test.sh as root)"]
fn docker_py_basics() {
    let d = Daemon::start();
    run_script(&d, "basics.py");
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root and docker-py (run scripts/test.sh as root)"]
fn docker_py_archive_export_and_diff() {
    let d = Daemon::start();
    run_script(&d, "archive.py");
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root and docker-py (run scripts/test.sh as root)"]
fn docker_py_stats_and_top() {
    let d = Daemon::start();
    run_script(&d, "observe.py");
    assert!(d.container_ids().is_empty());
}

#[test]
#[ignore = "needs root and docker-py (run scripts/test.sh as root)"]
fn docker_py_build_save_commit_prune_and_df() {
    let d = Daemon::start();
    run_script(&d, "images_build.py");
    assert!(d.container_ids().is_empty());
}
