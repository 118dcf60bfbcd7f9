//! Who is on the other end of the socket: SO_PEERCRED, per connection.

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::serve::IncomingStream;
use engine::Caller;
use tokio::net::UnixListener;

use crate::error::ApiError;

/// The peer credentials of a connection, taken when it is accepted.
#[derive(Debug, Clone, Copy)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

impl Connected<IncomingStream<'_, UnixListener>> for PeerCred {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Self {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid().unwrap_or(0),
            },
            // No credentials: treat the peer as nobody rather than as root.
            Err(_) => Self {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: 0,
            },
        }
    }
}

/// The caller of a request, for the engine.
pub struct CallerId(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for CallerId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ConnectInfo(p) = parts
            .extensions
            .get::<ConnectInfo<PeerCred>>()
            .copied()
            .ok_or_else(|| ApiError::internal("the connection has no peer credentials"))?;
        Ok(Self(Caller::from_peer(p.uid, p.gid, p.pid)))
    }
}
