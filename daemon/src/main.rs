//! berthd: the berth daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berthd::peer::PeerCred;
use clap::Parser;
use engine::lock::{LockError, RootLock};
use engine::{Engine, EngineConfig};
use tokio::net::UnixListener;

/// The berth daemon: serves the Docker Engine API on a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "berthd", version)]
struct Args {
    /// Socket to listen on (unix://PATH).
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    /// Root of persistent state (images, containers, logs).
    #[arg(long, default_value = engine::config::DEFAULT_DATA_ROOT)]
    data_root: PathBuf,
    /// Root of run-time state (bundles, runtime state).
    #[arg(long, default_value = engine::config::DEFAULT_EXEC_ROOT)]
    exec_root: PathBuf,
    /// Where to write the daemon's pid.
    #[arg(long, default_value = "/run/berth/berthd.pid")]
    pidfile: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(short = 'l', long, default_value = "info")]
    log_level: String,
    /// Default OCI runtime for containers: `berth` (built in) or `runc`.
    #[arg(long, default_value = "berth")]
    default_runtime: String,
    /// A registry to reach over plain HTTP (`host[:port]`, or a CIDR its address is in);
    /// repeatable. Loopback registries (`localhost`, 127.0.0.0/8, ::1) always are.
    #[arg(long = "insecure-registry", value_name = "host[:port]|CIDR")]
    insecure_registries: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let socket = args
        .host
        .strip_prefix("unix://")
        .map(PathBuf::from)
        .with_context(|| {
            format!(
                "unsupported host {:?}: berthd listens on unix://PATH only",
                args.host
            )
        })?;
    std::fs::create_dir_all(&args.exec_root)
        .with_context(|| format!("cannot create {}", args.exec_root.display()))?;
    std::fs::create_dir_all(&args.data_root)
        .with_context(|| format!("cannot create {}", args.data_root.display()))?;

    // The data root belongs to one daemon, or to daemonless commands, at a time.
    let lock = match RootLock::daemon(
        &args.data_root,
        &socket.display().to_string(),
        engine::lock::DAEMON_WAIT,
    ) {
        Ok(lock) => lock,
        Err(LockError::OwnedByDaemon { root, pid, socket }) => bail!(
            "the data root {} is in use by another berthd (pid {pid}, {socket}); stop it first",
            root.display()
        ),
        Err(e) => return Err(e.into()),
    };

    let mut config = EngineConfig::new(&args.data_root, &args.exec_root);
    config.default_runtime = args.default_runtime.clone();
    config.registry.insecure = args.insecure_registries.clone();
    if config.runtime_binary(&config.default_runtime).is_none() {
        bail!("unknown default runtime {:?}", config.default_runtime);
    }
    let engine = Engine::open(config)
        .await
        .context("cannot open the engine")?;

    let listener = bind(&socket)?;
    if let Some(parent) = args.pidfile.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.pidfile, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", args.pidfile.display()))?;
    tracing::info!(socket = %socket.display(), data_root = %args.data_root.display(), "berthd listening");

    let app = berthd::app(engine);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<PeerCred>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&args.pidfile);
    drop(lock);
    tracing::info!("berthd stopped; containers keep running");
    result.context("the API server failed")
}

/// Binds the socket: mode 0660, group `berth` when that group exists. A stale socket file
/// (nobody listening) is replaced; a live one is an error.
fn bind(socket: &Path) -> Result<UnixListener> {
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            bail!("{} is in use by another daemon", socket.display());
        }
        std::fs::remove_file(socket)?;
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("berth") {
        nix::unistd::chown(socket, None, Some(group.gid))?;
    }
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
}
