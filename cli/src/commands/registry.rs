//! `push`, `login`, `logout`, and what `pull` and `push` share: the credentials docker keeps
//! in `$DOCKER_CONFIG/config.json` (`auths`, base64 `user:password`), and the per-layer
//! progress bars (indicatif on a terminal, docker's plain lines otherwise).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use api_types::{AuthConfig, ProgressMessage};
use base64::Engine as _;
use clap::Args;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::backend::{Backend, ProgressStream, PushOptions};
use crate::reference::ImageRef;

/// The key Docker Hub's credentials are stored under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Upload an image to a registry
#[derive(Args, Debug, Clone)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

/// Log in to a registry
#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// Log out from a registry
#[derive(Args, Debug, Clone)]
pub struct LogoutArgs {
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// Where docker keeps its configuration: `$DOCKER_CONFIG`, else `~/.docker`.
fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".docker")
        });
    dir.join("config.json")
}

fn read_config() -> anyhow::Result<Value> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("loading config file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e).with_context(|| format!("loading config file {}", path.display())),
    }
}

fn write_config(config: &Value) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(config)?)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The key a registry's credentials are stored under (docker's `ConvertToHostname`, with
/// Docker Hub's legacy URL).
fn auth_key(domain: &str) -> String {
    if domain == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        domain.to_string()
    }
}

/// The registry a `login`/`logout` argument names.
fn server_domain(server: Option<&str>) -> String {
    let s = server.unwrap_or("").trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    match s.split('/').next().unwrap_or("") {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        host => host.to_string(),
    }
}

/// The stored credentials for `domain` (empty if none).
pub fn credentials_for(domain: &str) -> anyhow::Result<AuthConfig> {
    let config = read_config()?;
    let auths = config.get("auths").and_then(Value::as_object);
    let key = auth_key(domain);
    let entry = auths.and_then(|a| {
        a.get(&key).or_else(|| {
            // Entries may be stored with a scheme (`https://host`).
            a.iter()
                .find(|(k, _)| server_domain(Some(k)) == domain)
                .map(|(_, v)| v)
        })
    });
    let Some(entry) = entry else {
        return Ok(AuthConfig::default());
    };
    let mut auth = AuthConfig {
        server_address: key,
        ..Default::default()
    };
    if let Some(encoded) = entry.get("auth").and_then(Value::as_str) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .with_context(|| format!("invalid auth entry for {domain} in the config file"))?;
        let text = String::from_utf8_lossy(&raw);
        if let Some((user, password)) = text.split_once(':') {
            auth.username = user.to_string();
            auth.password = password.to_string();
        }
    }
    if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
        auth.identity_token = token.to_string();
    }
    Ok(auth)
}

/// `berth push`.
pub async fn push<B: Backend>(backend: &B, args: PushArgs) -> anyhow::Result<()> {
    let r = ImageRef::parse(&args.image).map_err(anyhow::Error::msg)?;
    if r.digest.is_some() {
        anyhow::bail!("invalid reference format: cannot push a digest reference");
    }
    if args.all_tags && r.tag.is_some() {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    }
    let tag = if args.all_tags {
        String::new()
    } else {
        if r.tag.is_none() && !args.quiet {
            println!("Using default tag: latest");
        }
        r.tag_or_latest().to_string()
    };
    let opts = PushOptions {
        repository: r.full_name(),
        tag,
        auth: credentials_for(&r.domain)?,
    };
    let progress = backend.push_image(&opts).await?;
    show_transfer(progress, args.quiet).await?;
    if args.quiet {
        println!("{}", r.familiar_string());
    }
    Ok(())
}

/// `berth login`.
pub async fn login<B: Backend>(backend: &B, args: LoginArgs) -> anyhow::Result<()> {
    let domain = server_domain(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("--password and --password-stdin are mutually exclusive");
    }
    let stored = credentials_for(&domain).unwrap_or_default();
    let mut username = args.username.clone().unwrap_or_default();
    let mut password = args.password.clone().unwrap_or_default();
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if args.password_stdin {
        if username.is_empty() {
            anyhow::bail!("Must provide --username with --password-stdin");
        }
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        password = line.trim_end_matches(['\n', '\r']).to_string();
    }
    if username.is_empty() && password.is_empty() && !stored.username.is_empty() {
        username = stored.username.clone();
        password = stored.password.clone();
    }
    if username.is_empty() || password.is_empty() {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("Error: Cannot perform an interactive login from a non TTY device");
        }
        if username.is_empty() {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            username = line.trim().to_string();
        }
        if password.is_empty() {
            password = read_password("Password: ")?;
        }
    }
    let auth = AuthConfig {
        username: username.clone(),
        password: password.clone(),
        server_address: auth_key(&domain),
        ..Default::default()
    };
    let answer = backend.login(&auth).await?;
    let mut config = read_config()?;
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let auths = config
        .as_object_mut()
        .expect("an object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    let mut entry = serde_json::Map::new();
    if answer.identity_token.is_empty() {
        entry.insert(
            "auth".into(),
            Value::String(
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")),
            ),
        );
    } else {
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(format!("{username}:"))),
        );
        entry.insert(
            "identitytoken".into(),
            Value::String(answer.identity_token.clone()),
        );
    }
    auths
        .as_object_mut()
        .expect("an object")
        .insert(auth_key(&domain), Value::Object(entry));
    write_config(&config)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        config_path().display()
    );
    println!("{}", answer.status);
    Ok(())
}

/// Reads a password from the terminal without echoing it.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, saved);
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `berth logout`.
pub async fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let domain = server_domain(args.server.as_deref());
    let shown = auth_key(&domain);
    let mut config = read_config()?;
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|auths| {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| server_domain(Some(k)) == domain)
                .cloned()
                .collect();
            for k in &keys {
                auths.remove(k);
            }
            !keys.is_empty()
        })
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {shown}");
        return Ok(());
    }
    println!("Removing login credentials for {shown}");
    write_config(&config)
}

/// Shows a pull's or push's progress: a bar per layer on a terminal, docker's plain lines
/// (`<id>: <status>`, no bars) otherwise, nothing but errors with `quiet`. An error message
/// in the stream fails the command.
pub async fn show_transfer(mut progress: ProgressStream, quiet: bool) -> anyhow::Result<()> {
    let mut view = if quiet {
        View::Quiet
    } else if std::io::stdout().is_terminal() {
        View::Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: HashMap::new(),
        }
    } else {
        View::Lines
    };
    while let Some(msg) = progress.next().await {
        let msg = msg?;
        if let Some(detail) = &msg.error_detail {
            view.finish();
            anyhow::bail!("{}", detail.message);
        }
        if let Some(e) = &msg.error {
            view.finish();
            anyhow::bail!("{e}");
        }
        view.show(&msg)?;
    }
    view.finish();
    Ok(())
}

enum View {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
}

impl View {
    fn show(&mut self, msg: &ProgressMessage) -> anyhow::Result<()> {
        let Some(status) = &msg.status else {
            return Ok(());
        };
        let id = msg.id.as_deref().filter(|i| !i.is_empty());
        let counted = msg
            .progress_detail
            .as_ref()
            .and_then(|d| Some((d.current?, d.total.unwrap_or(0))));
        match self {
            View::Quiet => {}
            View::Lines => {
                // Without a terminal docker prints no bars, only the steps.
                if counted.is_some() {
                    return Ok(());
                }
                let mut out = std::io::stdout().lock();
                match id {
                    Some(id) => writeln!(out, "{id}: {status}")?,
                    None => writeln!(out, "{status}")?,
                }
                out.flush()?;
            }
            View::Bars { multi, bars } => {
                let Some(id) = id else {
                    // A line of its own, below the layers' (as docker draws it).
                    let line = multi.add(ProgressBar::new(0));
                    line.set_style(
                        ProgressStyle::with_template("{msg}").expect("a valid template"),
                    );
                    line.finish_with_message(status.clone());
                    return Ok(());
                };
                let bar = bars.entry(id.to_string()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_prefix(id.to_string());
                    bar
                });
                match counted {
                    Some((current, total)) if total > 0 => {
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix}: {msg:<11} [{bar:40}] {bytes}/{total_bytes}",
                            )
                            .expect("a valid template")
                            .progress_chars("=> "),
                        );
                        bar.set_length(total as u64);
                        bar.set_position(current.max(0) as u64);
                    }
                    _ => bar.set_style(
                        ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template"),
                    ),
                }
                bar.set_message(status.clone());
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        if let View::Bars { bars, .. } = self {
            for bar in bars.values() {
                bar.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_name_registries_and_keys() {
        assert_eq!(server_domain(None), "docker.io");
        assert_eq!(
            server_domain(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(server_domain(Some("127.0.0.1:5000")), "127.0.0.1:5000");
        assert_eq!(
            server_domain(Some("http://localhost:5000/v2/")),
            "localhost:5000"
        );
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(auth_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
