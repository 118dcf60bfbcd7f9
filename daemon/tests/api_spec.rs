//! The router and `api-spec/openapi.json` describe the same API: the routes the router is
//! built from are exactly the documented ones, every documented route reaches its handler
//! (not the router's "page not found"), under every version prefix berth accepts; versions
//! outside the bounds get dockerd's refusals; and every early answer waits for the request
//! body.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use berthd::peer::PeerCred;
use futures_util::StreamExt;
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
fn the_document_states_the_api_version_bounds() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../api-spec/openapi.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["info"]["version"], api_types::API_VERSION);
    let bounds = format!(
        "/v{}/ to /v{}/",
        api_types::MIN_API_VERSION,
        api_types::API_VERSION
    );
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains(&bounds), "{description}");
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let routes = berthd::router::routes();
    let served: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_string()))
        .collect();
    assert_eq!(served.len(), routes.len(), "a route is listed twice");
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

async fn app() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = engine::EngineConfig::new(&dir.path().join("data"), &dir.path().join("exec"));
    config.shim_binary = "/nonexistent/berth-shim".into();
    let engine = engine::Engine::open(config).await.unwrap();
    (dir, berthd::app(engine))
}

fn request(method: &str, uri: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .extension(ConnectInfo(PeerCred {
            uid: 0,
            gid: 0,
            pid: 1,
        }))
        .body(body)
        .unwrap()
}

async fn send(app: &axum::Router, req: Request<Body>) -> (u16, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, body.to_vec())
}

fn is_page_not_found(status: u16, body: &[u8]) -> bool {
    status == 404 && body.starts_with(b"{\"message\":\"page not found\"")
}

#[tokio::test]
async fn every_documented_route_reaches_a_handler() {
    let (_dir, app) = app().await;
    for (method, path) in documented() {
        // A distribution lookup goes to the image's registry: a loopback port that refuses.
        let image = if path.starts_with("/distribution/") {
            "127.0.0.1:9/team/nosuchimage:v1"
        } else {
            "localhost:5000/team/nosuchimage:v1"
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
        for prefix in ["", "/v1.41", "/v1.24", "/v1.30"] {
            let uri = format!("{prefix}{concrete}?until=1");
            let (status, body) =
                send(&app, request(&method.to_uppercase(), &uri, Body::empty())).await;
            assert!(
                !is_page_not_found(status, &body),
                "{method} {uri} is documented but not routed"
            );
            assert!(
                status < 500 || path == "/images/load" || path.starts_with("/distribution/"),
                "{method} {uri}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // An image name with `/` reaches the image handlers whole.
    let (status, body) = send(
        &app,
        request(
            "GET",
            "/v1.41/images/localhost:5000/team/app:v1/json",
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "{\"message\":\"no such image: localhost:5000/team/app:v1: No such image: localhost:5000/team/app:v1\"}\n"
    );
    let (status, body) = send(
        &app,
        request("GET", "/v1.41/containers/x/undocumented", Body::empty()),
    )
    .await;
    assert!(is_page_not_found(status, &body), "{status}");
}

#[tokio::test]
async fn versions_outside_the_bounds_are_refused_in_dockerds_words() {
    let (_dir, app) = app().await;
    for (version, message) in [
        (
            "1.23",
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version",
        ),
        ("1.12", "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"),
        ("1.42", "client version 1.42 is too new. Maximum supported API version is 1.41"),
    ] {
        let resp = app
            .clone()
            .oneshot(request("GET", &format!("/v{version}/_ping"), Body::empty()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{version}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["api-version"], "1.41");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], message);
    }
    let (status, _) = send(&app, request("GET", "/v1.24/_ping", Body::empty())).await;
    assert_eq!(status, 200);
    // `/version` reports the same bounds.
    let (_, body) = send(&app, request("GET", "/version", Body::empty())).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["ApiVersion"].as_str(), v["MinAPIVersion"].as_str()),
        (Some("1.41"), Some("1.24"))
    );
}

/// A request body of `chunks` chunks of 64 KiB that counts how much of it was read.
fn counted_body(chunks: usize) -> (Body, Arc<AtomicUsize>) {
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let stream = futures_util::stream::iter(0..chunks).map(move |_| {
        counter.fetch_add(64 << 10, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 << 10]))
    });
    (Body::from_stream(stream), read)
}

#[tokio::test]
async fn early_answers_wait_for_the_whole_request_body() {
    let (_dir, app) = app().await;
    let cases = [
        // A route berthd does not serve.
        ("POST", "/v1.41/networks/create", 404),
        // A version berthd refuses.
        ("POST", "/v1.99/containers/create", 400),
        ("POST", "/v1.12/containers/create", 400),
        // A bad query, refused before the handler reads the body.
        ("POST", "/v1.41/images/load?quiet=maybe", 400),
        // A body larger than berthd reads for JSON.
        ("POST", "/v1.41/containers/create", 413),
        // A method the path does not take.
        ("PUT", "/v1.41/containers/json", 405),
    ];
    // A body announced larger than berthd would ever read is not read at all.
    let (body, read) = counted_body(1);
    let req = Request::builder()
        .method("POST")
        .uri("/v1.41/swarm/init")
        .header("content-length", "2147483648")
        .body(body)
        .unwrap();
    let (status, _) = send(&app, req).await;
    assert_eq!((status, read.load(Ordering::SeqCst)), (404, 0));
    for (method, uri, status) in cases {
        let chunks = 128; // 8 MiB
        let (body, read) = counted_body(chunks);
        let (got, text) = send(&app, request(method, uri, body)).await;
        assert_eq!(got, status, "{uri}: {}", String::from_utf8_lossy(&text));
        assert_eq!(
            read.load(Ordering::SeqCst),
            chunks << 16,
            "{uri}: the answer went out before the body was read"
        );
    }
}
