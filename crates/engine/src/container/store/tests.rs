use std::path::Path;
use std::sync::Arc;

use super::listing::Listed;
use super::*;
use crate::engine::Engine;
use crate::kernel::Host;

/// A daemonless engine on `config` (without the root lock a command would take).
async fn shared(config: crate::EngineConfig) -> Arc<Engine> {
    Engine::open_with(config, Sharing::Shared, None, Arc::new(Host))
        .await
        .unwrap()
}

#[test]
fn only_64_hex_entries_are_containers() {
    assert!(is_container_id(&"a".repeat(64)));
    assert!(!is_container_id(&"a".repeat(63)));
    assert!(!is_container_id(&format!("{}g", "a".repeat(63))));
    assert!(!is_container_id("names"));
}

fn record(id: &str, name: &str, created: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "name": name, "created": created,
        "image_id": "sha256:1", "image_name": "busybox",
        "config": {}, "host_config": {},
        "path": "true", "args": [], "layers": [],
        "state": {
            "status": status,
            "processes": if status == "running" {
                serde_json::json!({"pid": 1, "shim_pid": i32::MAX, "shim_start_time": 1})
            } else {
                serde_json::Value::Null
            },
            "exit_code": 0, "oom_killed": false, "error": "",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": super::super::ZERO_TIME,
        },
        "restart_count": 0, "created_by_uid": 0,
    })
}

fn put(root: &Path, rec: &serde_json::Value) {
    let dir = root.join("containers").join(rec["id"].as_str().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    crate::fsutil::write_json_atomic(&dir.join(RECORD_FILE), rec).unwrap();
}

#[tokio::test]
async fn listings_trust_the_cache_only_while_records_are_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = crate::EngineConfig::new(&data, &tmp.path().join("exec"));
    let engine = shared(config).await;
    let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    put(
        &data,
        &record(&a, "/first", "2026-01-01T00:00:01Z", "exited"),
    );
    put(
        &data,
        &record(&b, "/second", "2026-01-01T00:00:02Z", "created"),
    );
    put(
        &data,
        &record(&c, "/third", "2026-01-01T00:00:03Z", "exited"),
    );
    let names =
        |recs: Vec<ContainerRecord>| -> Vec<String> { recs.into_iter().map(|r| r.name).collect() };
    assert_eq!(
        names(engine.list_records().await),
        ["/third", "/second", "/first"]
    );
    let cache = data.join(super::listing::LIST_CACHE);
    let written = std::fs::metadata(&cache).unwrap().modified().unwrap();
    // Nothing changed: the cache is used, not written again.
    assert_eq!(names(engine.list_records().await).len(), 3);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        written
    );
    // A record another process replaced is read again.
    put(
        &data,
        &record(&b, "/renamed", "2026-01-01T00:00:02Z", "created"),
    );
    assert_eq!(
        names(engine.list_records().await),
        ["/third", "/renamed", "/first"]
    );
    // A cache that does not parse is ignored (and replaced); a container that is gone
    // leaves the listing.
    std::fs::write(&cache, b"[{\"stamp\": ").unwrap();
    std::fs::remove_dir_all(data.join("containers").join(&c)).unwrap();
    assert_eq!(names(engine.list_records().await), ["/renamed", "/first"]);
    let kept: Vec<Listed> = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(kept.len(), 2);
    // A record that does not parse is left out (and left alone).
    std::fs::write(data.join("containers").join(&a).join(RECORD_FILE), b"{").unwrap();
    assert_eq!(names(engine.list_records().await), ["/renamed"]);
    // A running container whose shim is gone has exited: recorded on the way.
    let d = "d".repeat(64);
    put(
        &data,
        &record(&d, "/gone", "2026-01-01T00:00:04Z", "running"),
    );
    let recs = engine.list_records().await;
    assert_eq!(recs[0].name, "/gone");
    assert_eq!(recs[0].state.status, Status::Exited);
    assert_eq!(recs[0].state.exit_code, 255);
    let on_disk: ContainerRecord =
        crate::fsutil::read_json(&data.join("containers").join(&d).join(RECORD_FILE)).unwrap();
    assert_eq!(on_disk.state.status, Status::Exited);
}

/// berthd lists whole records, daemonless commands [`ListedRecord`]s: a listing must
/// not tell them apart, whatever the records hold and whatever the filters.
#[tokio::test]
async fn listed_records_list_as_their_records_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = crate::EngineConfig::new(&data, &tmp.path().join("exec"));
    let me = std::process::id() as i32;
    let mut rich = record(&"e".repeat(64), "/rich", "2026-01-01T00:00:05Z", "running");
    rich["state"]["processes"] = serde_json::json!({
        "pid": me, "shim_pid": me, "shim_start_time": crate::process::start_time(me).unwrap()
    });
    rich["state"]["health"] =
        serde_json::json!({"Status": "healthy", "FailingStreak": 0, "Log": []});
    rich["config"] = serde_json::json!({
        "Hostname": "rich", "Image": "busybox:1", "Cmd": ["sh", "-c", "sleep 1"],
        "Env": ["A=1"], "Labels": {"tier": "web", "x": ""},
        "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
        "Healthcheck": {"Test": ["CMD", "true"]}, "StopSignal": "SIGINT",
    });
    rich["host_config"] = serde_json::json!({
        "NetworkMode": "none", "Binds": ["/srv:/data:ro"], "Memory": 67108864,
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "Init": true,
        "LogConfig": {"Type": "json-file", "Config": {}},
    });
    rich["image_name"] = "busybox:1".into();
    rich["path"] = "sh".into();
    rich["args"] = serde_json::json!(["-c", "sleep 1"]);
    put(&data, &rich);
    let mut done = record(&"f".repeat(64), "/done", "2026-01-01T00:00:04Z", "exited");
    done["state"]["exit_code"] = 3.into();
    done["state"]["finished_at"] = "2026-01-01T00:01:00Z".into();
    put(&data, &done);
    put(
        &data,
        &record(&"a".repeat(64), "/fresh", "2026-01-01T00:00:03Z", "created"),
    );
    let shared = shared(config.clone()).await;
    let owner = Engine::open(config).await.unwrap();
    let caller = crate::Caller::current();
    for filters in [
        "",
        r#"{"label":{"tier=web":true}}"#,
        r#"{"label":{"x":true}}"#,
        r#"{"status":{"running":true}}"#,
        r#"{"exited":{"3":true}}"#,
        r#"{"ancestor":{"busybox:1":true}}"#,
        r#"{"health":{"healthy":true}}"#,
        r#"{"name":{"ric":true}}"#,
    ] {
        for all in [false, true] {
            let opts = super::super::ListOptions {
                all,
                limit: None,
                filters: api_types::filters::Filters::parse(filters).unwrap(),
                size: false,
            };
            let a = shared.list_containers(&caller, &opts).await.unwrap();
            let b = owner.list_containers(&caller, &opts).await.unwrap();
            assert_eq!(
                serde_json::to_value(&a).unwrap(),
                serde_json::to_value(&b).unwrap(),
                "filters {filters} all {all}"
            );
        }
    }
    let info = |i: api_types::Info| (i.containers, i.containers_running, i.containers_stopped);
    assert_eq!(
        info(shared.info(&caller).await),
        info(owner.info(&caller).await)
    );
    assert_eq!(info(shared.info(&caller).await), (3, 1, 2));
}

#[test]
fn records_are_read_with_their_stamp_and_corruption_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_record(dir.path()).unwrap().is_none());
    std::fs::write(dir.path().join(RECORD_FILE), b"{\"id\": \"x\", \"na").unwrap();
    let e = read_record(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is corrupt"), "{e}");
    assert!(e.contains(RECORD_FILE), "{e}");
}
