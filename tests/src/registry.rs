//! Registries for the pull and push tests, all on loopback: Debian's `docker-registry`
//! (distribution 2.8) on a free port with temporary storage, plain or with htpasswd Basic
//! auth, and a fake registry the test scripts (stalls, dropped connections, lying digests).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry serve` of our own. Dropping it stops it and removes its storage.
pub struct Registry {
    pub addr: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// A registry without auth.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A registry with htpasswd Basic auth for `user`:`password`.
    pub fn start_basic(user: &str, password: &str) -> Self {
        Self::start_with(Some((user, password)))
    }

    /// A registry that takes Bearer tokens from `tokens` (distribution's token auth).
    pub fn start_token(tokens: &TokenServer) -> Self {
        let auth = format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            tokens.addr,
            tokens.dir.path().join("cert.pem").display()
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        Self::start_in(dir, auth)
    }

    fn start_with(basic: Option<(&str, &str)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let mut auth = String::new();
        if let Some((user, password)) = basic {
            let htpasswd = dir.path().join("htpasswd");
            let st = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htpasswd)
                .args([user, password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("htpasswd (apache2-utils) is missing: run scripts/install-deps.sh");
            assert!(st.success());
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            );
        }
        Self::start_in(dir, auth)
    }

    fn start_in(dir: tempfile::TempDir, auth: String) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry is missing: run scripts/install-deps.sh");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while Instant::now() < deadline {
                if TcpStream::connect(&addr).is_ok() {
                    up = true;
                    break;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                return Self { addr, dir, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// The registry's log (access log lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The requests the registry has answered, as `METHOD path` (from its access log).
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                let start = l.find("] \"")? + 3;
                let rest = &l[start..];
                let end = rest.find(" HTTP/")?;
                Some(rest[..end].to_string())
            })
            .collect()
    }

    /// Sends one request to the registry.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> TcpResponse {
        tcp_request(&self.addr, method, path, headers, body)
    }

    /// Uploads a blob to `repo` (monolithic: POST then PUT with the bytes).
    pub fn put_blob(&self, repo: &str, blob: &[u8]) -> String {
        let d = digest(blob);
        let r = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        let loc = r.header("location").unwrap().to_string();
        let path = loc
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or(&loc)
            .to_string();
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self.request(
            "PUT",
            &format!("{path}{sep}digest={}", d.replace(':', "%3A")),
            &[("Content-Type", "application/octet-stream")],
            blob,
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        d
    }

    /// Puts a manifest or index under `reference` (a tag or its digest).
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
        let r = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            body,
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TOKEN_SERVICE: &str = "berth-test";
const TOKEN_ISSUER: &str = "berth-test-issuer";

/// A token server on loopback for a registry with token auth: it gives `user` (with the
/// right password) every scope asked for, anyone else a token with no access, and a wrong
/// password a 401. Tokens are JWTs signed (RS256, by `openssl`) with a self-signed key the
/// registry trusts. Every request is logged (`scope=… account=…`).
pub struct TokenServer {
    pub addr: String,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    pub log: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-tokens-")
            .tempdir()
            .unwrap();
        let st = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=berth-test-token"])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl could not make a key");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.path().join("cert.pem"))
            .output()
            .unwrap()
            .stdout;
        use base64::Engine as _;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let key = dir.path().join("key.pem");
        let expected = format!("{user}:{password}");
        let thread = {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let _ = serve_token(conn, &key, &x5c, &expected, &log);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            addr,
            dir,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_token(
    conn: TcpStream,
    key: &Path,
    x5c: &str,
    expected: &str,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use base64::Engine as _;
    let b64url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut basic = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                if let Some(b) = v.trim().strip_prefix("Basic ") {
                    basic = base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .ok()
                        .map(|d| String::from_utf8_lossy(&d).into_owned());
                }
            }
        }
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut service = String::new();
    let mut account = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "scope" => scopes.extend(v.split(' ').map(str::to_string)),
            "service" => service = v,
            "account" => account = v,
            _ => {}
        }
    }
    log.lock()
        .unwrap()
        .push(format!("scope={} account={account}", scopes.join(" ")));
    let reply = |out: &mut TcpStream, status: &str, body: &str| {
        out.write_all(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let granted = match &basic {
        Some(creds) if creds == expected => true,
        Some(_) => {
            return reply(
                &mut out,
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#,
            )
        }
        None => false,
    };
    let access: Vec<serde_json::Value> = if granted {
        scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": account, "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sign = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    sign.stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())?;
    let signature = sign.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", b64url(&signature));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    reply(&mut out, "200 OK", &body)
}

/// An HTTP answer read off a TCP connection.
#[derive(Debug)]
pub struct TcpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TcpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh TCP connection (`Connection: close`).
pub fn tcp_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> TcpResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    if method != "HEAD" {
        let _ = r.read_to_end(&mut body);
    }
    TcpResponse {
        status,
        headers,
        body,
    }
}

/// How the fake registry serves one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// Whole, honouring `Range`.
    Whole,
    /// The first request gets half the bytes and then the connection is closed; later ones
    /// are served whole (or from their `Range`).
    CloseOnce,
    /// The first request gets half the bytes and then nothing, ever; later ones are served.
    StallOnce,
    /// Every request gets half the bytes and then nothing.
    StallAlways,
}

/// A registry the test scripts: manifests and blobs from memory, each blob served as its
/// [`Serve`] says. It logs every request (`METHOD path range`).
pub struct FakeRegistry {
    pub addr: String,
    stop: Arc<AtomicBool>,
    pub log: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the fake registry serves.
#[derive(Default, Clone)]
pub struct FakeContent {
    /// `repo/manifests/<ref>` → (media type, bytes).
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    /// digest → (bytes, how).
    pub blobs: HashMap<String, (Vec<u8>, Serve)>,
}

impl FakeRegistry {
    pub fn start(content: FakeContent) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let content = Arc::new(content);
        let served: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let thread = {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let content = content.clone();
                            let log = log.clone();
                            let served = served.clone();
                            let stop = stop.clone();
                            handlers.push(std::thread::spawn(move || {
                                let _ = serve_conn(conn, &content, &log, &served, &stop);
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        Self {
            addr,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_conn(
    conn: TcpStream,
    content: &FakeContent,
    log: &Mutex<Vec<String>>,
    served: &Mutex<HashMap<String, u32>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        loop {
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut range: Option<u64> = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("range") {
                    range = v
                        .trim()
                        .strip_prefix("bytes=")
                        .and_then(|r| r.strip_suffix('-'))
                        .and_then(|n| n.parse().ok());
                }
            }
        }
        log.lock().unwrap().push(match range {
            Some(r) => format!("{method} {path} range={r}"),
            None => format!("{method} {path}"),
        });
        let respond = |out: &mut TcpStream, status: &str, ct: &str, body: &[u8]| {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            if method != "HEAD" {
                out.write_all(body)?;
            }
            out.flush()
        };
        if path == "/v2/" {
            respond(&mut out, "200 OK", "application/json", b"{}")?;
            continue;
        }
        let rest = path.strip_prefix("/v2/").unwrap_or("");
        if let Some((_, reference)) = rest.split_once("/manifests/") {
            let key = rest.to_string();
            let found = content.manifests.get(&key).or_else(|| {
                content
                    .manifests
                    .iter()
                    .find(|(k, (_, b))| k.ends_with("/manifests/any") && digest(b) == reference)
                    .map(|(_, v)| v)
            });
            match found {
                Some((mt, bytes)) => respond(&mut out, "200 OK", mt, bytes)?,
                None => respond(
                    &mut out,
                    "404 Not Found",
                    "application/json",
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                )?,
            }
            continue;
        }
        if let Some((_, d)) = rest.split_once("/blobs/") {
            let Some((bytes, how)) = content.blobs.get(d) else {
                respond(
                    &mut out,
                    "404 Not Found",
                    "application/json",
                    br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                )?;
                continue;
            };
            let n = {
                let mut s = served.lock().unwrap();
                let n = s.entry(d.to_string()).or_insert(0);
                *n += 1;
                *n
            };
            let start = range.unwrap_or(0).min(bytes.len() as u64) as usize;
            let body = &bytes[start..];
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            let cut = matches!(
                (how, n),
                (Serve::CloseOnce, 1) | (Serve::StallOnce, 1) | (Serve::StallAlways, _)
            );
            if !cut || method == "HEAD" {
                if method != "HEAD" {
                    out.write_all(body)?;
                }
                out.flush()?;
                continue;
            }
            out.write_all(&body[..body.len() / 2])?;
            out.flush()?;
            if *how == Serve::CloseOnce {
                return Ok(()); // drop the connection mid-blob
            }
            // Stall: hold the connection, send nothing, until the test ends.
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        respond(&mut out, "404 Not Found", "text/plain", b"not found")?;
    }
}

/// Entries under `dir` (0 if it does not exist).
pub fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The image store's directories of a data root: layers, tmp.
pub fn store_dirs(data_root: &Path) -> (PathBuf, PathBuf) {
    let image = data_root.join("image");
    (image.join("layers"), image.join("tmp"))
}
