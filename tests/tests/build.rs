//! Dockerfile builds through the real docker CLI's classic builder (`DOCKER_BUILDKIT=0` and
//! docker 28's fallback without buildx), `berth build` in both modes, raw HTTP for contexts
//! a client would not send, and the build cache across a berthd restart.

use std::path::Path;
use std::process::Command;

use berth_tests::{both_modes, ok, text, Daemon};

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Entries of the image store's scratch space (a build's temp directories).
fn scratch_entries(d: &Daemon) -> usize {
    std::fs::read_dir(d.data_root().join("image/tmp"))
        .map(|r| r.count())
        .unwrap_or(0)
}

fn image_count(d: &Daemon) -> usize {
    ok(&d.berth(&["images", "-a", "-q", "--no-trunc"]))
        .lines()
        .count()
}

fn legacy(d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut cmd = d.docker_cmd(args);
    cmd.env("DOCKER_BUILDKIT", "0");
    berth_tests::run_with_timeout(cmd, std::time::Duration::from_secs(180))
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn docker_cli_classic_builder_builds_caches_and_fails_like_dockerd() {
    let d = Daemon::start();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "msg.txt", "from the context\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nENV CK=1\nCOPY msg.txt /msg.txt\nRUN echo hello from build && cat /msg.txt > /copied\nCMD [\"cat\", \"/copied\"]\n",
    );
    let out = legacy(
        &d,
        &["build", "-t", "ck-build:v1", ctx.path().to_str().unwrap()],
    );
    let stdout = ok(&out);
    assert!(
        text(&out.stderr).contains("BuildKit is currently disabled"),
        "{}",
        text(&out.stderr)
    );
    for want in [
        "Step 1/5 : FROM busybox",
        "Step 2/5 : ENV CK=1",
        "Step 4/5 : RUN echo hello from build",
        " ---> Running in ",
        "hello from build",
        "Removing intermediate container ",
        "Successfully built ",
        "Successfully tagged ck-build:v1",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "ck-build:v1"])),
        "from the context\n"
    );
    assert_eq!(
        d.docker_inspect("ck-build:v1", "{{index .Config.Env 1}}"),
        "CK=1"
    );

    // Again: every step from the cache, the same image.
    let id = d.docker_inspect("ck-build:v1", "{{.Id}}");
    let again = ok(&legacy(
        &d,
        &[
            "build",
            "-q",
            "-t",
            "ck-build:v2",
            ctx.path().to_str().unwrap(),
        ],
    ));
    assert_eq!(again.trim(), id);
    let stdout = ok(&legacy(&d, &["build", ctx.path().to_str().unwrap()]));
    assert_eq!(stdout.matches(" ---> Using cache").count(), 4, "{stdout}");

    // docker 28 without buildx and without DOCKER_BUILDKIT falls back to the same API.
    let mut cmd = d.docker_cmd(&["build", "-q", ctx.path().to_str().unwrap()]);
    cmd.env_remove("DOCKER_BUILDKIT");
    let out = berth_tests::run_with_timeout(cmd, std::time::Duration::from_secs(180));
    assert_eq!(ok(&out).trim(), id);

    // A failing RUN: dockerd's message, its exit code.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo failing && exit 4\n",
    );
    let tags_before = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let out = legacy(
        &d,
        &[
            "build",
            "--force-rm",
            "-t",
            "broken:v1",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "The command '/bin/sh -c echo failing && exit 4' returned a non-zero code: 4"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("failing"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])),
        tags_before
    );
    assert!(
        d.container_ids().is_empty(),
        "--force-rm removes the failed container"
    );
    assert_eq!(scratch_entries(&d), 0);
}

both_modes! {
    fn multi_stage_build_with_the_flags_docker_has(mode: Mode) {
        let d = Daemon::start_in(mode);
        let ctx = tempfile::tempdir().unwrap();
        write(ctx.path(), "src/a.txt", "A\n");
        write(ctx.path(), "src/b.txt", "B\n");
        write(ctx.path(), "src/skip.log", "never\n");
        write(ctx.path(), ".dockerignore", "**/*.log\n");
        // A tar for ADD to unpack.
        let tarball = ctx.path().join("bundle.tar");
        let st = Command::new("tar")
            .args(["-cf", tarball.to_str().unwrap(), "-C", ctx.path().join("src").to_str().unwrap(), "a.txt"])
            .status()
            .unwrap();
        assert!(st.success());
        let elsewhere = tempfile::tempdir().unwrap();
        let dockerfile = elsewhere.path().join("Build.dockerfile");
        std::fs::write(
            &dockerfile,
            concat!(
                "# syntax=docker/dockerfile:1\n",
                "ARG BASE=busybox\n",
                "FROM ${BASE} AS builder\n",
                "ARG FLAVOUR=plain\n",
                "WORKDIR /work\n",
                "COPY src/*.txt ./\n",
                "RUN cat a.txt b.txt > joined && echo \"${FLAVOUR:-none}\" > flavour \\\n",
                "    && ls /work > listing\n",
                "FROM busybox AS final\n",
                "COPY --from=builder /work/joined /work/flavour /work/listing /out/\n",
                "ADD bundle.tar /unpacked/\n",
                "COPY --chown=1000:1000 --chmod=600 src/a.txt /owned\n",
                "USER berth\n",
                "ENTRYPOINT [\"cat\"]\n",
                "CMD [\"/out/joined\"]\n",
                "FROM final AS extra\n",
                "RUN false\n",
            ),
        )
        .unwrap();
        let iid = elsewhere.path().join("iid");
        let out = d.berth(&[
            "build", "-q", "--target", "final",
            "-f", dockerfile.to_str().unwrap(),
            "--build-arg", "FLAVOUR=spicy", "--build-arg", "UNUSED=1",
            "--label", "team=img", "-t", "multi:v1", "-t", "multi:latest",
            "--iidfile", iid.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ]);
        let id = ok(&out).trim().to_string();
        assert!(id.starts_with("sha256:"), "{id}");
        assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
        assert_eq!(d.inspect("multi:latest", "{{.Id}}"), id);
        assert_eq!(d.inspect("multi:v1", "{{.Config.Labels.team}}"), "img");
        assert_eq!(ok(&d.berth(&["run", "--rm", "multi:v1"])), "A\nB\n");
        assert_eq!(ok(&d.berth(&["run", "--rm", "multi:v1", "/out/flavour"])), "spicy\n");
        // The .dockerignore'd file never reached the build.
        assert_eq!(
            ok(&d.berth(&["run", "--rm", "multi:v1", "/out/listing"])),
            "a.txt\nb.txt\nflavour\njoined\nlisting\n"
        );
        assert_eq!(ok(&d.berth(&["run", "--rm", "multi:v1", "/unpacked/a.txt"])), "A\n");
        let owned = ok(&d.berth(&["run", "--rm", "--entrypoint", "stat", "multi:v1", "-c", "%u:%g %a", "/owned"]));
        assert_eq!(owned.trim(), "1000:1000 600");
        assert_eq!(d.inspect("multi:v1", "{{.Config.User}}"), "berth");
        // Unknown instruction: the line named, nothing tagged, no scratch left.
        let mut df = String::from("FROM busybox\n");
        for _ in 0..38 {
            df.push_str("LABEL x=y\n");
        }
        df.push_str("FROBNICATE now\n");
        write(ctx.path(), "Dockerfile", &df);
        let out = d.berth(&["build", "-t", "never:v1", ctx.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr).trim(),
            "Error response from daemon: dockerfile parse error line 40: unknown instruction: FROBNICATE",
            "{}",
            text(&out.stderr)
        );
        // --pull needs registries, which berth cannot reach yet: refused, not ignored.
        let out = d.berth(&["build", "--pull", ctx.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).starts_with("Error response from daemon: --pull is not available"),
            "{}",
            text(&out.stderr)
        );
        // COPY ../x: refused with dockerd's words; the step's layer never made.
        let before = image_count(&d);
        write(ctx.path(), "Dockerfile", "FROM busybox\nCOPY ../x /x\n");
        let out = d.berth(&["build", "-t", "never:v1", ctx.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("COPY failed: forbidden path outside the build context: ../x ()"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(image_count(&d), before);
        assert!(!d.berth(&["image", "inspect", "never:v1"]).status.success());
        assert_eq!(scratch_entries(&d), 0);
        assert!(d.container_ids().is_empty());
        // A .dockerignore that excludes the Dockerfile: the build reads it, COPY cannot.
        write(ctx.path(), ".dockerignore", "Dockerfile\n");
        write(ctx.path(), "Dockerfile", "FROM busybox\nRUN echo ok\n");
        ok(&d.berth(&["build", "-t", "ignored:v1", ctx.path().to_str().unwrap()]));
        write(ctx.path(), "Dockerfile", "FROM busybox\nCOPY Dockerfile /\n");
        let out = d.berth(&["build", ctx.path().to_str().unwrap()]);
        assert!(
            text(&out.stderr).contains("COPY failed: file not found in build context or excluded by .dockerignore: stat Dockerfile: file does not exist"),
            "{}",
            text(&out.stderr)
        );
        // Heredocs and a failing RUN's exit code.
        std::fs::remove_file(ctx.path().join(".dockerignore")).unwrap();
        write(ctx.path(), "Dockerfile", "FROM busybox\nRUN <<EOF\necho one > /here\necho two >> /here\nEOF\nRUN exit 7\n");
        let out = d.berth(&["build", "--force-rm", ctx.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("returned a non-zero code: 7"), "{}", text(&out.stderr));
        assert!(d.container_ids().is_empty());
    }

    fn a_late_copy_change_rebuilds_only_what_follows(mode: Mode) {
        let d = Daemon::start_in(mode);
        let ctx = tempfile::tempdir().unwrap();
        write(ctx.path(), "early.txt", "early\n");
        write(ctx.path(), "late.txt", "v1\n");
        write(
            ctx.path(),
            "Dockerfile",
            "FROM busybox\nCOPY early.txt /\nRUN cp /early.txt /early.copy\nENV A=1\nCOPY late.txt /\nRUN cat /late.txt > /late.copy\n",
        );
        ok(&d.berth(&["build", "-t", "late:v1", ctx.path().to_str().unwrap()]));
        write(ctx.path(), "late.txt", "v2\n");
        let out = ok(&d.berth(&["build", "-t", "late:v2", ctx.path().to_str().unwrap()]));
        assert_eq!(out.matches(" ---> Using cache").count(), 3, "{out}");
        assert_eq!(out.matches(" ---> Running in ").count(), 1, "{out}");
        assert_eq!(ok(&d.berth(&["run", "--rm", "late:v2", "cat", "/late.copy"])), "v2\n");
        // The steps' images are there (images -a) but not listed as dangling images.
        let listed = ok(&d.berth(&["images", "--format", "{{.Repository}}"]));
        assert!(!listed.contains("<none>"), "{listed}");
        let all = ok(&d.berth(&["images", "-a", "--format", "{{.Repository}}"]));
        assert_eq!(all.lines().filter(|l| *l == "<none>").count(), 5, "{all}");
        // --no-cache runs everything again.
        let out = ok(&d.berth(&["build", "--no-cache", ctx.path().to_str().unwrap()]));
        assert_eq!(out.matches("Using cache").count(), 0, "{out}");
        // builder prune drops the steps no tagged image needs (the --no-cache ones).
        let pruned = ok(&d.berth(&["builder", "prune", "-f"]));
        assert!(pruned.starts_with("Deleted build cache objects:\n"), "{pruned}");
        assert!(d.inspect("late:v1", "{{.Id}}").starts_with("sha256:"));
        let df = ok(&d.berth(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"]));
        let cache = df.lines().find(|l| l.starts_with("Build Cache")).unwrap();
        assert_ne!(cache, "Build Cache 0 0", "{df}");
    }
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn the_cache_outlives_berthd_and_is_shared_with_daemonless() {
    let mut d = Daemon::start();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "f", "x\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n",
    );
    ok(&d.berth(&["build", "-t", "kept:v1", ctx.path().to_str().unwrap()]));
    d.stop_daemon();
    let out = ok(&d.daemonless(&["build", ctx.path().to_str().unwrap()]));
    assert_eq!(out.matches(" ---> Using cache").count(), 2, "{out}");
    d.spawn();
    let out = ok(&d.berth(&["build", ctx.path().to_str().unwrap()]));
    assert_eq!(out.matches(" ---> Using cache").count(), 2, "{out}");
}

/// A raw `POST /build` with the given context tar.
fn post_build(d: &Daemon, context: &[u8]) -> berth_tests::HttpResponse {
    d.request(
        "POST",
        "/v1.41/build?t=raw%3Av1",
        &[("Content-Type", "application/x-tar")],
        context,
    )
    .unwrap()
}

fn tar_with(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn contexts_that_lead_outside_are_refused_and_gzip_is_read() {
    let d = Daemon::start();
    let df: &[u8] = b"FROM busybox\nCOPY a /a\n";
    let reg = tar::EntryType::Regular;
    for (entries, want) in [
        (
            vec![
                ("Dockerfile", reg, "", df),
                ("../escape", reg, "", &b"x"[..]),
            ],
            "\"../escape\" is outside of",
        ),
        (
            vec![
                ("Dockerfile", reg, "", df),
                (
                    "a",
                    tar::EntryType::Symlink,
                    "../../../etc/passwd",
                    &b""[..],
                ),
            ],
            "invalid symlink",
        ),
    ] {
        let r = post_build(&d, &tar_with(&entries));
        assert_eq!(r.status, 400, "{}", text(&r.body));
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with("Error processing tar file: "),
            "{message}"
        );
        assert!(message.contains(want), "{message}");
        assert!(!message.contains("/tmp/"), "no host paths: {message}");
    }
    assert_eq!(scratch_entries(&d), 0);
    // An absolute name lands inside the context; gzip contexts are read.
    let tar = tar_with(&[("Dockerfile", reg, "", df), ("/a", reg, "", b"abs\n")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let r = post_build(&d, &gz.finish().unwrap());
    assert_eq!(r.status, 200, "{}", text(&r.body));
    assert!(
        text(&r.body).contains("Successfully tagged raw:v1"),
        "{}",
        text(&r.body)
    );
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "raw:v1", "cat", "/a"])),
        "abs\n"
    );
}

#[test]
#[ignore = "needs root (run scripts/test.sh as root)"]
fn config_instructions_and_onbuild_triggers() {
    let d = Daemon::start();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        concat!(
            "FROM busybox\n",
            "MAINTAINER someone <s@example.com>\n",
            "SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n",
            "RUN echo shell > /shell\n",
            "EXPOSE 8080/tcp 53/udp\n",
            "VOLUME [\"/data\"]\n",
            "STOPSIGNAL SIGUSR1\n",
            "HEALTHCHECK --interval=5s CMD true\n",
            "ONBUILD RUN echo triggered > /trigger\n",
        ),
    );
    ok(&d.berth(&[
        "build",
        "-t",
        "base-onbuild:v1",
        ctx.path().to_str().unwrap(),
    ]));
    let f = "{{.Author}}|{{json .Config.ExposedPorts}}|{{json .Config.Volumes}}|{{.Config.StopSignal}}|{{.Config.Healthcheck.Interval}}|{{json .Config.OnBuild}}|{{json .Config.Shell}}";
    assert_eq!(
        d.inspect("base-onbuild:v1", f),
        "someone <s@example.com>|{\"53/udp\":{},\"8080/tcp\":{}}|{\"/data\":{}}|SIGUSR1|5000000000|[\"RUN echo triggered \\u003e /trigger\"]|[\"/bin/sh\",\"-e\",\"-c\"]"
    );
    let h = ok(&d.berth(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "base-onbuild:v1",
    ]));
    assert!(h.contains("/bin/sh -e -c echo shell > /shell"), "{h}");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM base-onbuild:v1\nRUN cat /trigger\n",
    );
    let out = ok(&d.berth(&[
        "build",
        "-t",
        "child-onbuild:v1",
        ctx.path().to_str().unwrap(),
    ]));
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert!(out.contains("triggered\n"), "{out}");
    assert_eq!(
        d.inspect("child-onbuild:v1", "{{json .Config.OnBuild}}"),
        "null"
    );
    // Another platform cannot be built here.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM --platform=linux/s390x busybox\n",
    );
    let out = d.berth(&["build", ctx.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("platform linux/s390x is not supported"),
        "{}",
        text(&out.stderr)
    );
}
