//! The routes berthd serves, the `/vX.Y` prefix and the headers on every response.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::Engine;

use crate::error::ApiError;
use crate::handlers::exec;
use crate::handlers::{archive, containers, distribution, images, observe, streams, system};

/// The routes, as `(method, path)` pairs, for the OpenAPI consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/_ping"),
    ("head", "/_ping"),
    ("get", "/version"),
    ("get", "/info"),
    ("get", "/events"),
    ("post", "/containers/create"),
    ("get", "/containers/json"),
    ("post", "/containers/prune"),
    ("get", "/containers/{id}/json"),
    ("post", "/containers/{id}/start"),
    ("post", "/containers/{id}/stop"),
    ("post", "/containers/{id}/kill"),
    ("post", "/containers/{id}/restart"),
    ("post", "/containers/{id}/wait"),
    ("post", "/containers/{id}/attach"),
    ("post", "/containers/{id}/exec"),
    ("post", "/containers/{id}/resize"),
    ("post", "/containers/{id}/rename"),
    ("post", "/containers/{id}/pause"),
    ("post", "/containers/{id}/unpause"),
    ("post", "/containers/{id}/update"),
    ("get", "/containers/{id}/logs"),
    ("head", "/containers/{id}/archive"),
    ("get", "/containers/{id}/archive"),
    ("put", "/containers/{id}/archive"),
    ("get", "/containers/{id}/export"),
    ("get", "/containers/{id}/changes"),
    ("get", "/containers/{id}/stats"),
    ("get", "/containers/{id}/top"),
    ("delete", "/containers/{id}"),
    ("post", "/exec/{id}/start"),
    ("post", "/exec/{id}/resize"),
    ("get", "/exec/{id}/json"),
    ("get", "/images/json"),
    ("post", "/images/load"),
    ("post", "/images/create"),
    ("get", "/images/{name}/json"),
    ("post", "/images/{name}/tag"),
    ("delete", "/images/{name}"),
    ("post", "/images/{name}/push"),
    ("get", "/distribution/{name}/json"),
    ("post", "/auth"),
];

/// The whole API: routes plus version prefix handling and Docker's common headers.
/// Tests drive it with `oneshot`; berthd serves it on the socket.
pub fn app(engine: Arc<Engine>) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/attach", post(streams::attach))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/logs", get(streams::logs))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::head).put(archive::put),
        )
        .route("/containers/{id}/export", get(archive::export))
        .route("/containers/{id}/changes", get(archive::changes))
        .route("/containers/{id}/stats", get(observe::stats))
        .route("/containers/{id}/top", get(observe::top))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/create", post(images::create))
        .route(
            "/images/{*rest}",
            get(images::get_by_name)
                .post(images::post_by_name)
                .delete(images::remove),
        )
        .route("/distribution/{*rest}", get(distribution::inspect))
        .route("/auth", post(distribution::auth))
        .fallback(not_found)
        .with_state(engine);
    // Wrapping the router (not `Router::layer`) runs the version rewrite before routing.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(version_prefix))
}

async fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// Strips and checks the `/vX.Y` prefix, and adds dockerd's headers to every response.
async fn version_prefix(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((major, minor)) = ver
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        {
            let (max_major, max_minor) = (1, 41);
            let (min_major, min_minor) = (1, 12);
            if (major, minor) > (max_major, max_minor) {
                return with_headers(
                    ApiError::bad_request(format!(
                        "client version {ver} is too new. Maximum supported API version is {}",
                        api_types::API_VERSION
                    ))
                    .into_response(),
                );
            }
            if (major, minor) < (min_major, min_minor) {
                let msg = format!(
                    "client version {ver} is too old. Minimum supported API version is 1.12, please upgrade your client to a newer version"
                );
                return with_headers((StatusCode::BAD_REQUEST, msg).into_response());
            }
            let new_path = if tail.is_empty() { "/" } else { tail };
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path.to_string(),
            };
            if let Ok(uri) = pq.parse::<Uri>() {
                *req.uri_mut() = uri;
            }
        }
    }
    with_headers(next.run(req).await)
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_static(api_types::API_VERSION),
    );
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        "Server",
        HeaderValue::from_str(&format!("berth/{} (linux)", engine::system::VERSION))
            .unwrap_or(HeaderValue::from_static("berth")),
    );
    resp
}
