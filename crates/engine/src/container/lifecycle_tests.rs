//! The container life cycle — create, start, exit, stop, remove, restore — against the
//! recorded fake kernel, in both of the engine's modes, as any user.

use std::sync::Arc;
use std::time::Duration;

use api_types::{ContainerConfig, ContainerCreateRequest};

use super::{ListOptions, Status, WaitCondition};
use crate::engine::{Engine, EngineError};
use crate::image::ImportOptions;
use crate::kernel::fake::FakeKernel;
use crate::store::Sharing;
use crate::{Caller, EngineConfig};

/// An engine on temporary roots with the fake kernel and an image, `busybox:latest`.
struct Rig {
    tmp: tempfile::TempDir,
    kernel: FakeKernel,
    engine: Arc<Engine>,
}

impl Rig {
    async fn new(sharing: Sharing) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::new();
        let engine = open(&tmp, sharing, &kernel).await;
        let rootfs = crate::image::unpack::tests::TarMaker::default()
            .dir("bin")
            .file("bin/sh", b"#!")
            .dir("etc")
            .finish();
        engine
            .images
            .import(
                &mut rootfs.as_slice(),
                &ImportOptions {
                    repo_tag: Some("busybox:latest".into()),
                    changes: vec![r#"CMD ["sh"]"#.into()],
                    message: String::new(),
                },
            )
            .unwrap();
        Self {
            tmp,
            kernel,
            engine,
        }
    }

    /// Another engine on the same roots and kernel (another process, or berthd again).
    async fn reopen(&self, sharing: Sharing) -> Arc<Engine> {
        open(&self.tmp, sharing, &self.kernel).await
    }

    async fn create(&self, engine: &Engine, name: &str) -> String {
        let request = ContainerCreateRequest {
            config: ContainerConfig {
                image: "busybox".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        engine
            .create_container(&caller(), Some(name), request)
            .await
            .unwrap()
            .id
    }

    async fn run(&self, engine: &Engine, name: &str) -> String {
        let id = self.create(engine, name).await;
        engine.start_container(&caller(), &id).await.unwrap();
        id
    }

    fn actions(&self, engine: &Engine, id: &str) -> Vec<String> {
        engine
            .events()
            .journal()
            .read_since(0)
            .into_iter()
            .filter(|e| e.id == id)
            .map(|e| match e.attributes.get("exitCode") {
                Some(code) => format!("{}:{code}", e.action),
                None => e.action,
            })
            .collect()
    }
}

async fn open(tmp: &tempfile::TempDir, sharing: Sharing, kernel: &FakeKernel) -> Arc<Engine> {
    let mut config = EngineConfig::new(&tmp.path().join("data"), &tmp.path().join("exec"));
    config.shim_binary = "/nonexistent/berth-shim".into();
    Engine::open_with(config, sharing, None, Arc::new(kernel.clone()))
        .await
        .unwrap()
}

fn caller() -> Caller {
    Caller::current()
}

async fn status(engine: &Engine, id: &str) -> (Status, i64) {
    let rec = engine.inspect_container(&caller(), id).await.unwrap();
    let state = rec.state;
    let status = match state.status.as_str() {
        "created" => Status::Created,
        "running" => Status::Running,
        "exited" => Status::Exited,
        "removing" => Status::Removing,
        other => panic!("unexpected status {other}"),
    };
    (status, state.exit_code)
}

async fn wait_exit(engine: &Engine, id: &str) -> i64 {
    let wait = engine
        .wait_container(&caller(), id, WaitCondition::NotRunning)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the exit is noticed")
        .status_code
}

fn is_not_found(e: &EngineError) -> bool {
    e.kind() == crate::ErrorKind::NotFound
}

async fn both_modes<F, Fut>(test: F)
where
    F: Fn(Sharing) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(Sharing::Owned).await;
    test(Sharing::Shared).await;
}

#[tokio::test]
async fn a_started_container_exits_and_is_recorded() {
    both_modes(|sharing| async move {
        let rig = Rig::new(sharing).await;
        let e = &rig.engine;
        let id = rig.run(e, "web").await;
        let root = e.containers.dir().join(&id).join("rootfs");
        assert!(
            rig.kernel.is_mounted(&root),
            "{sharing:?}: the root is mounted"
        );
        assert_eq!(rig.kernel.calls_of("spawn"), [format!("spawn {id}")]);
        assert_eq!(status(e, &id).await, (Status::Running, 0));

        rig.kernel.exit(&id, 3);
        assert_eq!(wait_exit(e, &id).await, 3, "{sharing:?}");
        assert_eq!(status(e, "web").await, (Status::Exited, 3));
        assert!(
            !rig.kernel.is_mounted(&root),
            "{sharing:?}: unmounted at exit"
        );
        assert_eq!(rig.actions(e, &id), ["create", "start", "die:3"]);
        // A second start is a new run.
        e.start_container(&caller(), "web").await.unwrap();
        assert_eq!(rig.kernel.calls_of("spawn").len(), 2);
    })
    .await;
}

#[tokio::test]
async fn stop_signals_the_container_then_records_its_exit() {
    both_modes(|sharing| async move {
        let rig = Rig::new(sharing).await;
        let e = &rig.engine;
        let id = rig.run(e, "web").await;
        e.stop_container(&caller(), "web", Some(1), None)
            .await
            .unwrap();
        assert_eq!(
            rig.kernel.calls_of("signal"),
            [format!("signal {id} SIGTERM")]
        );
        assert_eq!(status(e, &id).await, (Status::Exited, 143));
        // Stopping a stopped container is "not modified", and changes nothing.
        let again = e.stop_container(&caller(), "web", Some(1), None).await;
        assert_eq!(again.unwrap_err().kind(), crate::ErrorKind::NotModified);
        assert_eq!(rig.kernel.calls_of("signal").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn rm_force_kills_unmounts_and_forgets() {
    both_modes(|sharing| async move {
        let rig = Rig::new(sharing).await;
        let e = &rig.engine;
        let id = rig.run(e, "web").await;
        let refused = e.remove_container(&caller(), "web", false).await;
        assert_eq!(refused.unwrap_err().kind(), crate::ErrorKind::Conflict);
        e.remove_container(&caller(), "web", true).await.unwrap();
        assert_eq!(
            rig.kernel.calls_of("signal"),
            [format!("signal {id} SIGKILL")]
        );
        assert_eq!(
            rig.kernel.calls_of("remove-cgroups"),
            [format!("remove-cgroups {id}")]
        );
        assert!(!e.containers.dir().join(&id).exists());
        assert!(is_not_found(
            &e.inspect_container(&caller(), &id).await.unwrap_err()
        ));
        assert_eq!(rig.actions(e, &id).last().unwrap(), "destroy");
        // The name is free again.
        rig.create(e, "web").await;
    })
    .await;
}

#[tokio::test]
async fn an_exit_while_nobody_watches_is_noticed_when_looked_at() {
    let rig = Rig::new(Sharing::Shared).await;
    let e = &rig.engine;
    let id = rig.run(e, "web").await;
    rig.kernel.exit(&id, 0);
    // Another daemonless command's listing notices it and records it for everyone.
    let other = rig.reopen(Sharing::Shared).await;
    let listed = other
        .list_containers(
            &caller(),
            &ListOptions {
                all: true,
                limit: None,
                filters: Default::default(),
                size: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed[0].state, "exited");
    assert_eq!(rig.actions(&other, &id), ["create", "start", "die:0"]);
    assert_eq!(status(e, &id).await, (Status::Exited, 0));
}

/// berthd starting on a root daemonless commands used: a container whose shim is still
/// there is watched again, one whose shim died without a word is recorded as exited (255),
/// and an auto-remove container that exited meanwhile is removed.
#[tokio::test]
async fn berthd_restores_what_it_finds_on_start() {
    let rig = Rig::new(Sharing::Shared).await;
    let daemonless = &rig.engine;
    let alive = rig.run(daemonless, "alive").await;
    let killed = rig.run(daemonless, "killed").await;
    rig.kernel.kill_shim(&killed);

    let berthd = rig.reopen(Sharing::Owned).await;
    assert_eq!(status(&berthd, &killed).await, (Status::Exited, 255));
    assert_eq!(status(&berthd, &alive).await, (Status::Running, 0));
    assert!(!rig.kernel.calls_of("remove-orphan-cgroups").is_empty());
    // Watched again: its exit is handled as it happens, without anyone asking.
    let mut life = berthd.find(&alive).unwrap().lifecycle.subscribe();
    rig.kernel.exit(&alive, 7);
    tokio::time::timeout(
        Duration::from_secs(10),
        life.wait_for(|l| l.status == Status::Exited),
    )
    .await
    .expect("berthd handles the exit")
    .unwrap();
    assert_eq!(status(&berthd, &alive).await, (Status::Exited, 7));
}

/// A removal whose unmount fails stops there: the container's directory, its record and
/// what is mounted below stay, the error says why, and the next `rm` (once the unmount
/// works) finishes the job.
#[tokio::test]
async fn a_failed_unmount_stops_the_removal_and_keeps_the_directory() {
    both_modes(|sharing| async move {
        let rig = Rig::new(sharing).await;
        let e = &rig.engine;
        let id = rig.run(e, "web").await;
        let dir = e.containers.dir().join(&id);
        rig.kernel.make_unmount_fail(&dir);
        let err = e
            .remove_container(&caller(), "web", true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unmount"), "{sharing:?}: {err}");
        assert!(dir.join("container.json").exists(), "{sharing:?}");
        assert!(dir.join("rootfs").is_dir());
        // Half-removed: whoever takes it next finishes, once the kernel lets it.
        assert_eq!(status(e, &id).await.0, Status::Removing);
        rig.kernel.unstick();
        e.remove_container(&caller(), "web", true).await.unwrap();
        assert!(!dir.exists(), "{sharing:?}: finished");
        assert!(is_not_found(
            &e.inspect_container(&caller(), &id).await.unwrap_err()
        ));
    })
    .await;
}

#[tokio::test]
async fn a_start_the_runtime_refuses_is_recorded_and_leaves_nothing_mounted() {
    both_modes(|sharing| async move {
        let rig = Rig::new(sharing).await;
        let e = &rig.engine;
        let id = rig.create(e, "web").await;
        rig.kernel
            .fail_next_start("exec: \"nope\": executable file not found in $PATH");
        let err = e.start_container(&caller(), "web").await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{err}");
        assert!(
            err.to_string().contains("executable file not found"),
            "{err}"
        );
        assert_eq!(status(e, &id).await, (Status::Created, 127));
        let root = e.containers.dir().join(&id).join("rootfs");
        assert!(!rig.kernel.is_mounted(&root), "{sharing:?}");
        assert_eq!(rig.actions(e, &id), ["create"]);
    })
    .await;
}

/// A host directory bind-mounted below a container's directory, whose unmount fails (or
/// "succeeds" without the mount going away): no clean-up path — a create that never
/// finished, `rm`, berthd's reconciliation at start-up — may remove what is behind it.
#[tokio::test]
#[ignore = "needs root: makes a real bind mount (scripts/test.sh runs it as root)"]
async fn no_clean_up_removes_what_is_mounted_below_a_container() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    struct Mounted(std::path::PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("precious"), b"keep me").unwrap();
    let bind = |dir: &std::path::Path| {
        let target = dir.join("volume");
        std::fs::create_dir_all(&target).unwrap();
        mount(
            Some(host.path()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        Mounted(target)
    };
    let intact = || {
        assert_eq!(
            std::fs::read(host.path().join("precious")).unwrap(),
            b"keep me"
        );
    };
    for stuck in [true, false] {
        // stuck: the unmount fails. Not stuck: the fake says it unmounted but the mount
        // stays, so only the removal's refusal to cross a mount protects the host.
        let rig = Rig::new(Sharing::Owned).await;
        let e = &rig.engine;
        let containers = e.containers.dir();
        if stuck {
            rig.kernel.make_unmount_fail(&containers);
        }

        // `rm` of a container with a mount below it.
        let id = rig.create(e, "web").await;
        let dir = containers.join(&id);
        let m1 = bind(&dir);
        assert!(e.remove_container(&caller(), "web", true).await.is_err());
        intact();
        assert!(m1.0.is_dir());

        // berthd starting again: the half-removed container is tried again, and fails.
        drop(rig.reopen(Sharing::Owned).await);
        intact();
        assert!(dir.is_dir());

        // A create that never finished (a directory without a record), seen by berthd's
        // start and by a daemonless listing.
        let unfinished = containers.join("b".repeat(64));
        std::fs::create_dir_all(&unfinished).unwrap();
        let m2 = bind(&unfinished);
        drop(rig.reopen(Sharing::Owned).await);
        intact();
        let daemonless = rig.reopen(Sharing::Shared).await;
        daemonless.list_records().await;
        intact();
        assert!(m2.0.is_dir());

        // Once unmounted, everything goes.
        drop((m1, m2));
        rig.kernel.unstick();
        e.remove_container(&caller(), "web", true).await.unwrap();
        drop(rig.reopen(Sharing::Owned).await);
        assert!(!dir.exists() && !unfinished.exists(), "stuck: {stuck}");
        intact();
    }
}
