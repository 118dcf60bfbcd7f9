//! The router and `api-spec/openapi.json` describe the same API: every documented route is
//! served (not the router's "page not found"), and every served route is documented.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use berthd::peer::PeerCred;
use tower::ServiceExt;

fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../api-spec/openapi.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let served: BTreeSet<(String, String)> = berthd::router::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in api-spec: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in api-spec but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn every_documented_route_reaches_a_handler() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = engine::EngineConfig::new(&dir.path().join("data"), &dir.path().join("exec"));
    config.shim_binary = "/nonexistent/berth-shim".into();
    let engine = engine::Engine::open(config, false).await.unwrap();
    let app = berthd::app(engine);
    for (method, path) in documented() {
        // A distribution lookup goes to the image's registry: a loopback port that refuses.
        let image = if path.starts_with("/distribution/") {
            "127.0.0.1:9/nosuchimage:v1"
        } else {
            "nosuchimage:v1"
        };
        let concrete = path
            .replace("{id}", "nosuchcontainer")
            .replace("{name}", image);
        if method == "get" && path == "/events" {
            continue; // streams until the client goes
        }
        if method == "post" && path == "/auth" {
            continue; // an empty body logs in to Docker Hub, off this machine
        }
        for prefix in ["", "/v1.41", "/v1.24"] {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(format!("{prefix}{concrete}?until=1"))
                .extension(ConnectInfo(PeerCred {
                    uid: 0,
                    gid: 0,
                    pid: 1,
                }))
                .body(Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(
                !(status == 404 && body.starts_with(b"{\"message\":\"page not found\"")),
                "{method} {prefix}{concrete} is documented but not routed"
            );
            assert!(
                // An unreachable registry is dockerd's 500 too.
                status.as_u16() < 500
                    || path == "/images/load"
                    || path.starts_with("/distribution/"),
                "{method} {prefix}{concrete}: {status} {body:?}"
            );
        }
    }
    let req = Request::builder()
        .uri("/v1.41/containers/x/undocumented")
        .extension(ConnectInfo(PeerCred {
            uid: 0,
            gid: 0,
            pid: 1,
        }))
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 404);
}
