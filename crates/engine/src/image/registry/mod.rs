//! A client of the OCI distribution API (Docker Registry HTTP API v2), on reqwest.
//!
//! One [`Registry`] is a session with one repository for one pull, push or login: it pings
//! `/v2/`, answers the auth challenge it gets (Basic with the client's credentials, or a
//! Bearer token bought at the token server for the scopes the operation needs) and then
//! makes the manifest and blob requests with that authorization.
//!
//! Written on reqwest rather than oci-client because the pull and push need requests
//! oci-client does not expose the way they need them: it re-pings `/v2/` before every
//! request of an anonymous session (doubling a push's requests), asks tokens for one
//! repository only (a cross-repository mount needs the source's `pull` scope too), cannot
//! verify credentials for `docker login` against a Basic registry, and words its errors its
//! own way where Docker's clients match dockerd's.
//!
//! Registries named `localhost`, by a loopback address, or listed as insecure
//! ([`RegistrySettings::insecure`], berthd's `--insecure-registry`) are reached over plain
//! HTTP; every other one over HTTPS, verified against the system's CA store.

pub mod auth;
pub mod error;
pub mod manifest;

use std::net::IpAddr;
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use api_types::AuthConfig;
use base64::Engine as _;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};

pub use auth::{decode_registry_auth, AuthConfigExt, Challenge};
pub use error::RegistryError;

use error::{errcode_message, go_method, transport_reason};

/// Docker Hub's registry, where `docker.io` names go.
const DOCKER_HUB_REGISTRY: &str = "https://registry-1.docker.io";
/// The largest manifest or config read into memory.
const MAX_DOCUMENT: usize = 16 << 20;

/// How the engine reaches registries; the same for berthd and daemonless commands.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Registries reached over plain HTTP besides loopback ones: `host[:port]` names, or
    /// CIDRs (`10.0.0.0/8`) their address must be in (berthd's `--insecure-registry`).
    pub insecure: Vec<String>,
    /// How long a connection may stay silent (no response, no body bytes) before the
    /// request counts as failed and is retried.
    pub timeout: Duration,
    /// How many times one layer's download is tried (resuming where it stopped) before the
    /// pull fails.
    pub attempts: u32,
    /// How many layers download at once (dockerd's `max-concurrent-downloads`, 3).
    pub concurrent_downloads: usize,
    /// How many layers upload at once (dockerd's `max-concurrent-uploads`, 5).
    pub concurrent_uploads: usize,
    /// Where `docker.io` names are pulled from and pushed to: Docker Hub's registry, or
    /// `BERTH_REGISTRY_HUB` (`scheme://host[:port]`: a mirror, or for tests a loopback
    /// address, so that nothing reaches off the machine).
    pub hub: String,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            timeout: Duration::from_secs(30),
            attempts: 5,
            concurrent_downloads: 3,
            concurrent_uploads: 5,
            hub: DOCKER_HUB_REGISTRY.to_string(),
        }
    }
}

impl RegistrySettings {
    /// The defaults, with `BERTH_REGISTRY_TIMEOUT` (seconds) and `BERTH_REGISTRY_ATTEMPTS`
    /// overriding the silence timeout and the attempts per layer when set.
    pub fn from_env() -> Self {
        let mut s = Self::default();
        if let Some(t) = std::env::var("BERTH_REGISTRY_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t > 0.0)
        {
            s.timeout = Duration::from_secs_f64(t);
        }
        if let Some(n) = std::env::var("BERTH_REGISTRY_ATTEMPTS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n > 0)
        {
            s.attempts = n;
        }
        if let Ok(hub) = std::env::var("BERTH_REGISTRY_HUB") {
            let hub = hub.trim().trim_end_matches('/');
            if hub.starts_with("http://") || hub.starts_with("https://") {
                s.hub = hub.to_string();
            } else if !hub.is_empty() {
                tracing::warn!(
                    value = hub,
                    "ignoring BERTH_REGISTRY_HUB: not http:// or https://"
                );
            }
        }
        s
    }

    /// Whether `domain` (`host[:port]` of an image reference) is reached over plain HTTP.
    pub fn is_insecure(&self, domain: &str) -> bool {
        let host = host_of(domain);
        let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
        if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            if entry == domain || entry == host {
                return true;
            }
            match (ip, entry.split_once('/')) {
                (Some(ip), Some((net, bits))) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }

    /// The `scheme://host[:port]` a reference's domain is served at.
    pub fn base_url(&self, domain: &str) -> String {
        if domain == crate::image::reference::DEFAULT_DOMAIN {
            return self.hub.clone();
        }
        let scheme = if self.is_insecure(domain) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{domain}")
    }
}

/// `host` of `host[:port]` (also `[v6]:port`).
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match domain.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => domain,
    }
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The HTTP client every session uses: rustls with the ring provider (installed once per
/// process), the system's CA store, HTTP/1.1, the silence timeout.
fn http_client(settings: &RegistrySettings) -> Result<reqwest::Client, RegistryError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .user_agent(format!(
            "berth/{} (linux) docker/28 go/1 os/linux",
            crate::system::VERSION
        ))
        .connect_timeout(settings.timeout)
        .read_timeout(settings.timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(|e| RegistryError::Transport {
            method: "Get",
            url: String::new(),
            reason: format!("cannot set up the HTTP client: {e}"),
        })
}

/// A session with one repository of one registry.
pub struct Registry {
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    base: String,
    /// The repository's path: `library/busybox`.
    repository: String,
    credentials: AuthConfig,
    challenge: Mutex<Option<Challenge>>,
    /// The `Authorization` value requests carry, once the challenge is answered.
    authorization: Mutex<Option<HeaderValue>>,
    /// The scopes the current token was bought for.
    scopes: Mutex<Vec<String>>,
    /// An identity token the token server gave (login with `offline_token`).
    pub(crate) refresh_token: Mutex<Option<String>>,
}

/// What a blob upload's first request gave.
pub enum UploadStart {
    /// The registry mounted the blob from the other repository: nothing to upload.
    Mounted,
    /// An upload session at this URL.
    Session(String),
}

impl Registry {
    /// Opens a session with `domain`'s repository `repository` for `actions` (`pull`, or
    /// `pull,push`): pings `/v2/` and answers its challenge with `credentials`.
    pub async fn connect(
        settings: &RegistrySettings,
        domain: &str,
        repository: &str,
        credentials: AuthConfig,
        actions: &str,
    ) -> Result<Self, RegistryError> {
        let registry = Self {
            http: http_client(settings)?,
            base: settings.base_url(domain),
            repository: repository.to_string(),
            credentials,
            challenge: Mutex::new(None),
            authorization: Mutex::new(None),
            scopes: Mutex::new(vec![format!("repository:{repository}:{actions}")]),
            refresh_token: Mutex::new(None),
        };
        registry.ping().await?;
        registry.authorize(false).await?;
        Ok(registry)
    }

    /// `scheme://host[:port]` of the registry.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The repository's path.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// `GET /v2/`: whether the registry wants credentials, and which kind.
    async fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let resp = self.raw(Method::GET, &url, HeaderMap::new(), None).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let challenge = resp
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(Challenge::parse);
                *self
                    .challenge
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = challenge;
                Ok(())
            }
            s => {
                let body = resp.bytes().await.unwrap_or_default();
                Err(RegistryError::Status {
                    status: s.as_u16(),
                    message: errcode_message(s.as_u16(), &body),
                })
            }
        }
    }

    /// Answers the challenge `/v2/` gave, for the session's scopes; with `strict`, a token
    /// server's refusal is an error (login), else the requests go on anonymously and the
    /// registry's own 401 says what is wrong.
    async fn authorize(&self, strict: bool) -> Result<(), RegistryError> {
        let challenge = self
            .challenge
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let value = match challenge {
            None => None,
            Some(Challenge::Basic) => self.basic_value(),
            Some(Challenge::Bearer { realm, service }) => {
                if !self.credentials.registry_token.is_empty() {
                    Some(format!("Bearer {}", self.credentials.registry_token))
                } else {
                    match self.fetch_token(&realm, service.as_deref()).await {
                        Ok(token) => Some(format!("Bearer {token}")),
                        Err(e) if strict => return Err(e),
                        Err(e) => {
                            tracing::debug!(error = %e, "token server refused; going on anonymously");
                            None
                        }
                    }
                }
            }
        };
        *self
            .authorization
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            value.and_then(|v| HeaderValue::from_str(&v).ok());
        Ok(())
    }

    fn basic_value(&self) -> Option<String> {
        let c = &self.credentials;
        if c.username.is_empty() {
            return None;
        }
        let raw = format!("{}:{}", c.username, c.password);
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// Buys a token at `realm` for the session's scopes: with the identity token (OAuth
    /// refresh, a POST), else with the username and password (Basic, a GET), else anonymous.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        let scopes = self
            .scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let c = &self.credentials;
        let transport = |e: reqwest::Error, method: &'static str| RegistryError::Transport {
            method,
            url: realm.to_string(),
            reason: transport_reason(&e),
        };
        let resp = if !c.identity_token.is_empty() {
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", &c.identity_token),
                ("client_id", "docker"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let scope = scopes.join(" ");
            form.push(("scope", &scope));
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", url_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            self.http
                .post(realm)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| transport(e, "Post"))?
        } else {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(s) = service {
                query.push(("service", s.to_string()));
            }
            for s in &scopes {
                query.push(("scope", s.clone()));
            }
            if !c.username.is_empty() {
                query.push(("account", c.username.clone()));
                query.push(("client_id", "docker".into()));
                query.push(("offline_token", "true".into()));
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            let qs = query
                .iter()
                .map(|(k, v)| format!("{k}={}", url_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let url = if qs.is_empty() {
                realm.to_string()
            } else {
                format!("{realm}{sep}{qs}")
            };
            let mut req = self.http.get(&url);
            if let Some(basic) = self.basic_value() {
                req = req.header(AUTHORIZATION, basic);
            }
            req.send().await.map_err(|e| transport(e, "Get"))?
        };
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport(e, "Get"))?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                status: status.as_u16(),
                message: errcode_message(status.as_u16(), &body),
            });
        }
        let token: auth::TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Status {
                status: status.as_u16(),
                message: format!("cannot read the token server's answer: {e}"),
            })?;
        if !token.refresh_token.is_empty() {
            *self
                .refresh_token
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(token.refresh_token.clone());
        }
        Ok(token.bearer().to_string())
    }

    /// Adds a scope (another repository's `pull`, for a cross-repository mount) and buys a
    /// token that covers it. Basic and anonymous sessions need nothing more.
    pub async fn add_scope(&self, scope: String) -> Result<(), RegistryError> {
        let bearer = matches!(
            *self
                .challenge
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            Some(Challenge::Bearer { .. })
        );
        {
            let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
            if scopes.contains(&scope) {
                return Ok(());
            }
            scopes.push(scope);
        }
        if bearer && self.credentials.registry_token.is_empty() {
            self.authorize(false).await?;
        }
        Ok(())
    }

    /// A request with no authorization of its own.
    async fn raw(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<Response, RegistryError> {
        let mut req = self.http.request(method.clone(), url).headers(headers);
        if let Some(body) = body {
            req = req.body(body);
        }
        req.send().await.map_err(|e| RegistryError::Transport {
            method: go_method(&method),
            url: url.to_string(),
            reason: transport_reason(&e),
        })
    }

    /// A request with the session's authorization.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<Response, RegistryError> {
        if let Some(v) = self
            .authorization
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            headers.insert(AUTHORIZATION, v);
        }
        self.raw(method, url, headers, body).await
    }

    /// The error a non-success answer stands for.
    async fn failure(resp: Response) -> RegistryError {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        RegistryError::Status {
            status,
            message: errcode_message(status, &body),
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the bytes, their content type and digest.
    /// `shown` is the reference as messages name it (`127.0.0.1:5000/app:v1`).
    pub async fn get_manifest(
        &self,
        reference: &str,
        shown: &str,
    ) -> Result<(Vec<u8>, String, String), RegistryError> {
        let url = self.url(&format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(manifest::ACCEPT));
        let resp = self.send(Method::GET, &url, headers, None).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(RegistryError::ManifestUnknown {
                reference: shown.to_string(),
                message: errcode_message(404, &body),
            });
        }
        if !status.is_success() {
            return Err(Self::failure(resp).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = self.read_limited(resp, &url, MAX_DOCUMENT).await?;
        let digest = crate::image::blob::sha256_digest(&bytes);
        Ok((bytes, content_type, digest))
    }

    async fn read_limited(
        &self,
        resp: Response,
        url: &str,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        use futures_util::StreamExt;
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Transport {
                method: "Get",
                url: url.to_string(),
                reason: transport_reason(&e),
            })?;
            out.extend_from_slice(&chunk);
            if out.len() > limit {
                return Err(RegistryError::InvalidManifest {
                    reference: url.to_string(),
                    reason: format!("larger than {limit} bytes"),
                });
            }
        }
        Ok(out)
    }

    /// A small blob (an image config), whole, checked against its digest.
    pub async fn get_small_blob(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(Method::GET, &url, HeaderMap::new(), None).await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        let bytes = self.read_limited(resp, &url, MAX_DOCUMENT).await?;
        if crate::image::blob::sha256_digest(&bytes) != digest {
            return Err(RegistryError::InvalidManifest {
                reference: digest.to_string(),
                reason: "the blob does not match its digest".into(),
            });
        }
        Ok(bytes)
    }

    /// `GET /v2/<repo>/blobs/<digest>`, from byte `offset` on (a `Range` request).
    pub async fn get_blob(&self, digest: &str, offset: u64) -> Result<Response, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if offset > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
                headers.insert(reqwest::header::RANGE, v);
            }
        }
        let resp = self.send(Method::GET, &url, headers, None).await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        Ok(resp)
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: whether the repository has the blob.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self
            .send(Method::HEAD, &url, HeaderMap::new(), None)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::failure(resp).await),
        }
    }

    /// Starts a blob upload; with `mount` (`(digest, from_repository)`), asks the registry
    /// to mount the blob from the other repository instead.
    pub async fn start_upload(
        &self,
        mount: Option<(&str, &str)>,
    ) -> Result<UploadStart, RegistryError> {
        let mut url = self.url("blobs/uploads/");
        if let Some((digest, from)) = mount {
            url = format!(
                "{url}?mount={}&from={}",
                url_encode(digest),
                url_encode(from)
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_LENGTH,
            HeaderValue::from_static("0"),
        );
        let resp = self.send(Method::POST, &url, headers, None).await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                Ok(UploadStart::Session(self.location(&resp, &url)?))
            }
            _ => Err(Self::failure(resp).await),
        }
    }

    fn location(&self, resp: &Response, url: &str) -> Result<String, RegistryError> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Status {
                status: resp.status().as_u16(),
                message: format!("the registry gave no upload location for {url}"),
            })?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else if loc.starts_with('/') {
                format!("{}{loc}", self.base)
            } else {
                format!("{}/{loc}", self.base)
            },
        )
    }

    /// Sends a blob's bytes to an upload session in one `PATCH` (streamed), then commits it
    /// with its digest (`PUT ?digest=`).
    pub async fn upload(
        &self,
        location: &str,
        body: reqwest::Body,
        size: u64,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Ok(v) = HeaderValue::from_str(&size.to_string()) {
            headers.insert(reqwest::header::CONTENT_LENGTH, v);
        }
        let resp = self
            .send(Method::PATCH, location, headers, Some(body))
            .await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        let next = self.location(&resp, location)?;
        let sep = if next.contains('?') { '&' } else { '?' };
        let url = format!("{next}{sep}digest={}", url_encode(digest));
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_LENGTH,
            HeaderValue::from_static("0"),
        );
        let resp = self.send(Method::PUT, &url, headers, None).await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        Ok(())
    }

    /// Uploads a small blob (a config) from memory, unless the repository has it.
    pub async fn put_small_blob(&self, bytes: Vec<u8>, digest: &str) -> Result<(), RegistryError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let UploadStart::Session(location) = self.start_upload(None).await? else {
            return Ok(());
        };
        let size = bytes.len() as u64;
        self.upload(&location, reqwest::Body::from(bytes), size, digest)
            .await
    }

    /// `PUT /v2/<repo>/manifests/<tag>`.
    pub async fn put_manifest(
        &self,
        tag: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{tag}"));
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(media_type) {
            headers.insert(CONTENT_TYPE, v);
        }
        let resp = self
            .send(Method::PUT, &url, headers, Some(reqwest::Body::from(bytes)))
            .await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        Ok(())
    }
}

/// Checks credentials against a registry as `docker login` does: `/v2/` without them, and
/// if it asks, with them (Basic), or a token bought with them (Bearer). Returns an identity
/// token when the token server gave a refresh token.
pub async fn login(
    settings: &RegistrySettings,
    domain: &str,
    credentials: AuthConfig,
) -> Result<Option<String>, RegistryError> {
    let http = http_client(settings)?;
    let base = settings.base_url(domain);
    let url = format!("{base}/v2/");
    let transport = |e: reqwest::Error| RegistryError::Transport {
        method: "Get",
        url: url.clone(),
        reason: transport_reason(&e),
    };
    let resp = http.get(&url).send().await.map_err(transport)?;
    if resp.status().is_success() {
        return Ok(None);
    }
    if resp.status() != StatusCode::UNAUTHORIZED {
        return Err(RegistryError::LoginFailed {
            url,
            status: status_text(resp.status()),
        });
    }
    let challenge = resp
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse);
    let session = Registry {
        http: http.clone(),
        base: base.clone(),
        repository: String::new(),
        credentials,
        challenge: Mutex::new(challenge.clone()),
        authorization: Mutex::new(None),
        scopes: Mutex::new(Vec::new()),
        refresh_token: Mutex::new(None),
    };
    match challenge {
        Some(Challenge::Bearer { .. }) => {
            session.authorize(true).await.map_err(|e| match e {
                RegistryError::Status { status: 401, .. } => RegistryError::LoginFailed {
                    url: url.clone(),
                    status: status_text(StatusCode::UNAUTHORIZED),
                },
                other => other,
            })?;
        }
        _ => session.authorize(true).await?,
    }
    let resp = session
        .send(Method::GET, &url, HeaderMap::new(), None)
        .await?;
    if !resp.status().is_success() {
        return Err(RegistryError::LoginFailed {
            url,
            status: status_text(resp.status()),
        });
    }
    let refresh = session
        .refresh_token
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(refresh)
}

fn status_text(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_string()
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_plain_http() {
        let mut s = RegistrySettings::default();
        assert!(s.is_insecure("127.0.0.1:5000"));
        assert!(s.is_insecure("127.1.2.3"));
        assert!(s.is_insecure("localhost:5000"));
        assert!(s.is_insecure("[::1]:5000"));
        assert!(!s.is_insecure("registry.example:5000"));
        assert!(!s.is_insecure("10.1.2.3:5000"));
        s.insecure = vec!["registry.example:5000".into(), "10.0.0.0/8".into()];
        assert!(s.is_insecure("registry.example:5000"));
        assert!(s.is_insecure("10.1.2.3:5000"));
        assert!(!s.is_insecure("11.1.2.3:5000"));
        assert_eq!(s.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(s.base_url("docker.io"), "https://registry-1.docker.io");
        assert_eq!(s.base_url("ghcr.io"), "https://ghcr.io");
        s.hub = "http://127.0.0.1:9".into();
        assert_eq!(s.base_url("docker.io"), "http://127.0.0.1:9");
        assert_eq!(url_encode("sha256:ab/c d"), "sha256%3Aab%2Fc%20d");
    }
}
