//! `POST /build`: the classic builder's API, which the docker CLI uses without BuildKit
//! (`DOCKER_BUILDKIT=0`, or docker 28 without buildx) and docker-py always uses.
//!
//! The body is the context tar (plain or gzip). The answer is a stream of JSON messages
//! (`{"stream": …}`, `{"aux": {"ID": …}}`), flushed as they come; a failure after the first
//! message ends the stream with `{"errorDetail": …, "error": …}` (with the failed RUN's exit
//! code), a failure before it is an ordinary error response.

use std::collections::BTreeMap;
use std::sync::Arc;

use api_types::{ErrorDetail, ProgressMessage};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use engine::build::{BuildError, BuildOptions};
use engine::Engine;
use tokio::sync::mpsc;

use super::upload::upload;
use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// The build options from the query, refusing what berth cannot honour.
fn options(params: &Params) -> Result<BuildOptions, ApiError> {
    let json_map = |key: &str| -> Result<BTreeMap<String, Option<String>>, ApiError> {
        match params.get(key).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}"))),
        }
    };
    if let Some(remote) = params.get("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "remote build contexts are not supported ({remote}): send the context in the body"
        )));
    }
    for key in [
        "memory",
        "memswap",
        "cpushares",
        "cpuperiod",
        "cpuquota",
        "shmsize",
    ] {
        if params.int(key)?.is_some_and(|v| v != 0) {
            return Err(ApiError::bad_request(format!(
                "the {key} build option is not supported by berth's builder"
            )));
        }
    }
    for key in [
        "cpusetcpus",
        "cpusetmems",
        "cgroupparent",
        "extrahosts",
        "isolation",
    ] {
        if params.get(key).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "the {key} build option is not supported by berth's builder"
            )));
        }
    }
    if params.bool("squash", false)? {
        return Err(ApiError::bad_request(
            "--squash is not supported by berth's builder",
        ));
    }
    match params.get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "network mode {other:?} is not supported for builds"
            )))
        }
    }
    let labels = json_map("labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    Ok(BuildOptions {
        // The first value, as dockerd's FormValue reads it: docker-py sends a Dockerfile
        // from outside the context as a second `dockerfile` (its content).
        dockerfile: params
            .all("dockerfile")
            .into_iter()
            .next()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "Dockerfile".to_string()),
        tags: params
            .all("t")
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect(),
        target: params
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        quiet: params.bool("q", false)?,
        no_cache: params.bool("nocache", false)?,
        pull: params.bool("pull", false)?,
        remove: params.bool("rm", true)?,
        force_remove: params.bool("forcerm", false)?,
        labels,
        build_args: json_map("buildargs")?,
        platform: params
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    })
}

fn line(msg: &ProgressMessage) -> Bytes {
    let mut v = serde_json::to_vec(msg).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn failure(e: &BuildError) -> ProgressMessage {
    let message = engine::error::chain(e);
    ProgressMessage {
        error: Some(message.clone()),
        error_detail: Some(ErrorDetail {
            message,
            code: e.code(),
        }),
        ..Default::default()
    }
}

/// `POST /build`.
pub async fn build(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
    body: Body,
) -> Result<Response, ApiError> {
    let opts = options(&params)?;
    let (reader, drain) = upload(body);
    let (tx, mut rx) = mpsc::channel::<ProgressMessage>(64);
    let mut task = tokio::spawn(async move { engine.build(&caller, reader, opts, tx).await });
    let mut drain = Some(drain);
    let mut finished = false;
    let first = tokio::select! {
        m = rx.recv() => m,
        r = &mut task => {
            if let Some(d) = drain.take() {
                d.finish().await;
            }
            let r = r.map_err(|e| ApiError::internal(format!("the build failed: {e}")))?;
            r?;
            finished = true;
            // Done without a message: whatever is queued is all there is.
            rx.recv().await
        }
    };
    if let Some(d) = drain {
        tokio::spawn(d.finish());
    }
    let Some(first) = first else {
        // The build ended before it said anything: its result is the answer.
        if finished {
            return Err(ApiError::internal("the build ended without a result"));
        }
        let r = task
            .await
            .map_err(|e| ApiError::internal(format!("the build failed: {e}")))?;
        r?;
        return Err(ApiError::internal("the build ended without a result"));
    };
    // Everything already queued, then what comes, then the outcome.
    struct St {
        first: Option<ProgressMessage>,
        rx: mpsc::Receiver<ProgressMessage>,
        task: Option<tokio::task::JoinHandle<Result<String, BuildError>>>,
    }
    let st = St {
        first: Some(first),
        rx,
        task: (!finished).then_some(task),
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(m) = st.first.take() {
            return Some((Ok::<_, std::io::Error>(line(&m)), st));
        }
        if let Some(m) = st.rx.recv().await {
            return Some((Ok(line(&m)), st));
        }
        let task = st.task.take()?;
        match task.await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some((Ok(line(&failure(&e))), st)),
            Err(e) => {
                let msg = ProgressMessage {
                    error: Some(format!("the build failed: {e}")),
                    error_detail: Some(ErrorDetail {
                        message: format!("the build failed: {e}"),
                        code: None,
                    }),
                    ..Default::default()
                };
                Some((Ok(line(&msg)), st))
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
