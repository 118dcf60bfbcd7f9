//! The routes berthd serves, the `/vX.Y` prefix and the headers on every response.
//!
//! [`routes`] is the one list of what berthd serves: [`app`] registers exactly its entries,
//! and the API document's test (`daemon/tests/api_spec.rs`) compares the same entries with
//! `api-spec/openapi.json`, so the router and the document cannot drift apart.

use std::sync::Arc;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use engine::Engine;

use crate::error::ApiError;
use crate::handlers::{
    archive, build, containers, distribution, exec, images, observe, streams, system, upload,
};

/// One route: a method on a path, written as `api-spec/openapi.json` writes it
/// (`/containers/{id}/json`), and its handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<Arc<Engine>>,
}

/// A route whose handler serves exactly `method`.
fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, Arc<Engine>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("axum does not route {method} ({path})"));
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route berthd serves.
pub fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/_ping", system::ping),
        route(M::HEAD, "/_ping", system::ping_head),
        route(M::GET, "/version", system::version),
        route(M::GET, "/info", system::info),
        route(M::GET, "/events", system::events),
        route(M::POST, "/containers/create", containers::create),
        route(M::GET, "/containers/json", containers::list),
        route(M::POST, "/containers/prune", containers::prune),
        route(M::GET, "/containers/{id}/json", containers::inspect),
        route(M::POST, "/containers/{id}/start", containers::start),
        route(M::POST, "/containers/{id}/stop", containers::stop),
        route(M::POST, "/containers/{id}/kill", containers::kill),
        route(M::POST, "/containers/{id}/restart", containers::restart),
        route(M::POST, "/containers/{id}/wait", containers::wait),
        route(M::POST, "/containers/{id}/attach", streams::attach),
        route(M::POST, "/containers/{id}/exec", exec::create),
        route(M::POST, "/containers/{id}/resize", containers::resize),
        route(M::POST, "/containers/{id}/rename", containers::rename),
        route(M::POST, "/containers/{id}/pause", containers::pause),
        route(M::POST, "/containers/{id}/unpause", containers::unpause),
        route(M::POST, "/containers/{id}/update", containers::update),
        route(M::GET, "/containers/{id}/logs", streams::logs),
        route(M::HEAD, "/containers/{id}/archive", archive::head),
        route(M::GET, "/containers/{id}/archive", archive::get),
        route(M::PUT, "/containers/{id}/archive", archive::put),
        route(M::GET, "/containers/{id}/export", archive::export),
        route(M::GET, "/containers/{id}/changes", archive::changes),
        route(M::GET, "/containers/{id}/stats", observe::stats),
        route(M::GET, "/containers/{id}/top", observe::top),
        route(M::DELETE, "/containers/{id}", containers::remove),
        route(M::POST, "/exec/{id}/start", exec::start),
        route(M::POST, "/exec/{id}/resize", exec::resize),
        route(M::GET, "/exec/{id}/json", exec::inspect),
        route(M::GET, "/images/json", images::list),
        route(M::POST, "/images/load", images::load),
        route(M::POST, "/images/create", images::create),
        route(M::GET, "/images/{name}/json", images::inspect),
        route(M::POST, "/images/{name}/tag", images::tag),
        route(M::DELETE, "/images/{name}", images::remove),
        route(M::GET, "/images/{name}/history", images::history),
        route(M::GET, "/images/{name}/get", images::save_one),
        route(M::GET, "/images/get", images::save_many),
        route(M::POST, "/images/prune", images::prune),
        route(M::POST, "/commit", images::commit),
        route(M::GET, "/system/df", system::df),
        route(M::POST, "/build/prune", system::build_prune),
        route(M::POST, "/build", build::build),
        route(M::POST, "/images/{name}/push", images::push),
        route(M::GET, "/distribution/{name}/json", distribution::inspect),
        route(M::POST, "/auth", distribution::auth),
    ]
}

/// The whole API: [`routes`] plus the version prefix, Docker's common headers, and request
/// bodies read before any answer. Tests drive it with `oneshot`; berthd serves it on the
/// socket.
pub fn app(engine: Arc<Engine>) -> Router {
    let mut router = Router::new();
    for r in routes() {
        // Two methods on one path merge into one method router.
        router = router.route(r.path, r.handler);
    }
    let routes = router.fallback(not_found).with_state(engine);
    // Wrapping the router (not `Router::layer`) runs the version rewrite before routing;
    // the body layer, outermost, holds every answer (the version refusals too) until the
    // client has sent its request.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(version_prefix))
        .layer(axum::middleware::from_fn(upload::read_body_first))
}

async fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// Strips and checks the `/vX.Y` prefix (dockerd's words when the version is outside
/// [`api_types::MIN_API_VERSION`]..=[`api_types::API_VERSION`]), puts an image name
/// holding `/` into one path segment, and adds dockerd's headers to every response.
async fn version_prefix(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut new_path = None;
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !ver.is_empty() && ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if let Err(refusal) = api_types::version::check_version(ver) {
                return with_headers(ApiError::bad_request(refusal.to_string()).into_response());
            }
            new_path = Some(if tail.is_empty() { "/" } else { tail }.to_string());
        }
    }
    let unversioned = new_path.as_deref().unwrap_or(&path);
    if let Some(image_path) = image_name_segment(req.method(), unversioned) {
        new_path = Some(image_path);
    }
    if let Some(new_path) = new_path {
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    with_headers(next.run(req).await)
}

/// Image names hold `/` (`localhost:5000/team/app:v1`), which the router's `{name}` does
/// not match: `/images/team/app:v1/json` becomes `/images/team%2Fapp:v1/json` (and the
/// handler's `Path` decodes it). A `DELETE` names the image with the whole rest of the
/// path; other methods end with an action (`json`, `tag`). `None` when nothing changes.
fn image_name_segment(method: &Method, path: &str) -> Option<String> {
    let (prefix, rest) = ["/images/", "/distribution/"]
        .into_iter()
        .find_map(|p| Some((p, path.strip_prefix(p)?)))?;
    let (name, action) = if method == Method::DELETE {
        (rest, None)
    } else {
        let (name, action) = rest.rsplit_once('/')?;
        (name, Some(action))
    };
    if !name.contains('/') {
        return None;
    }
    let name = name.replace('/', "%2F");
    Some(match action {
        Some(action) => format!("{prefix}{name}/{action}"),
        None => format!("{prefix}{name}"),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_with_slashes_become_one_segment() {
        let seg = |m: Method, p: &str| image_name_segment(&m, p);
        assert_eq!(
            seg(Method::GET, "/images/localhost:5000/team/app:v1/json").as_deref(),
            Some("/images/localhost:5000%2Fteam%2Fapp:v1/json")
        );
        assert_eq!(
            seg(Method::DELETE, "/images/team/app").as_deref(),
            Some("/images/team%2Fapp")
        );
        assert_eq!(
            seg(Method::POST, "/images/a/b/tag").as_deref(),
            Some("/images/a%2Fb/tag")
        );
        assert_eq!(
            seg(Method::GET, "/distribution/127.0.0.1:5000/team/app/json").as_deref(),
            Some("/distribution/127.0.0.1:5000%2Fteam%2Fapp/json")
        );
        for (m, p) in [
            (Method::GET, "/images/json"),
            (Method::POST, "/images/load"),
            (Method::GET, "/images/busybox:latest/json"),
            (Method::DELETE, "/images/busybox"),
            (Method::GET, "/containers/a/b/json"),
        ] {
            assert_eq!(seg(m, p), None, "{p}");
        }
    }
}
