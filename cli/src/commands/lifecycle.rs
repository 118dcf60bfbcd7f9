//! Commands that act on one or more existing containers: `start`, `stop`, `kill`,
//! `restart`, `rm`, `pause`, `unpause`, `wait`, `rename`.

use std::future::Future;

use clap::Args;
use futures_util::future::join_all;

use super::run::{exit_with, Ended, Session};
use crate::backend::{AttachOptions, Backend, RemoveOptions, WaitCondition};
use crate::exit::StatusError;
use crate::stream::{stdin_is_terminal, RawTerminal};

/// Runs `op` on every container at once, then prints each name that succeeded (in the
/// order given) and fails with every error, one per line, like docker's multi-target commands.
pub async fn for_each<'a, F, Fut, E>(names: &'a [String], op: F) -> anyhow::Result<()>
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let results = join_all(names.iter().map(|n| op(n))).await;
    let mut errors = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StatusError::new(1, errors.join("\n")).into())
    }
}

/// Start one or more stopped containers
#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `berth start`.
pub async fn start<B: Backend>(backend: &B, args: StartArgs) -> anyhow::Result<()> {
    if !args.attach && !args.interactive {
        return for_each(&args.containers, |c| backend.start_container(c)).await;
    }
    if args.containers.len() > 1 {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    }
    let name = &args.containers[0];
    let inspected = backend.inspect_container(name).await?.value;
    let id = inspected.id.clone();
    let tty = inspected.config.tty;
    let stdin = args.interactive && inspected.config.open_stdin;
    if stdin && tty && !stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    let keys = crate::stream::detach_keys(args.detach_keys.as_deref());
    let attach = backend
        .attach_container(
            &id,
            AttachOptions {
                stdin,
                stdout: true,
                stderr: true,
                detach_keys: keys.value,
            },
        )
        .await?;
    let session = Session::new(&id, tty, stdin, !tty, Some(attach), keys.sequence);
    let wait = backend.wait_container(&id, WaitCondition::NextExit).await?;
    let raw = if tty && stdin {
        RawTerminal::enable()
    } else {
        None
    };
    if let Err(e) = backend.start_container(&id).await {
        drop(raw);
        return Err(e.into());
    }
    let ended = session.follow(backend, wait).await;
    drop(raw);
    match ended? {
        Ended::Exited(status) => exit_with(status),
        Ended::Detached => Ok(()),
    }
}

/// Stop one or more running containers
#[derive(Args, Debug, Clone)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `berth stop`.
pub async fn stop<B: Backend>(backend: &B, args: StopArgs) -> anyhow::Result<()> {
    let signal = args.signal.as_deref();
    for_each(&args.containers, |c| {
        backend.stop_container(c, args.timeout, signal)
    })
    .await
}

/// `berth restart` (same flags as stop).
pub async fn restart<B: Backend>(backend: &B, args: StopArgs) -> anyhow::Result<()> {
    let signal = args.signal.as_deref();
    for_each(&args.containers, |c| {
        backend.restart_container(c, args.timeout, signal)
    })
    .await
}

/// Kill one or more running containers
#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    pub signal: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `berth kill`.
pub async fn kill<B: Backend>(backend: &B, args: KillArgs) -> anyhow::Result<()> {
    let signal = args.signal.as_deref();
    for_each(&args.containers, |c| backend.kill_container(c, signal)).await
}

/// Remove one or more containers
#[derive(Args, Debug, Clone)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `berth rm`.
pub async fn rm<B: Backend>(backend: &B, args: RmArgs) -> anyhow::Result<()> {
    let opts = RemoveOptions {
        force: args.force,
        volumes: args.volumes,
    };
    for_each(&args.containers, |c| backend.remove_container(c, opts)).await
}

/// One or more containers.
#[derive(Args, Debug, Clone)]
pub struct ContainersArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `berth pause`.
pub async fn pause<B: Backend>(backend: &B, args: ContainersArgs) -> anyhow::Result<()> {
    for_each(&args.containers, |c| backend.pause_container(c)).await
}

/// `berth unpause`.
pub async fn unpause<B: Backend>(backend: &B, args: ContainersArgs) -> anyhow::Result<()> {
    for_each(&args.containers, |c| backend.unpause_container(c)).await
}

/// `berth wait`: prints each container's exit code once it stops.
pub async fn wait<B: Backend>(backend: &B, args: ContainersArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for name in &args.containers {
        let result = async {
            let handle = backend
                .wait_container(name, WaitCondition::NotRunning)
                .await?;
            let status = handle.await?;
            if let Some(e) = status.error {
                anyhow::bail!("{}", e.message);
            }
            Ok(status.status_code)
        }
        .await;
        match result {
            Ok(code) => println!("{code}"),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StatusError::new(1, errors.join("\n")).into())
    }
}

/// Rename a container
#[derive(Args, Debug, Clone)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// `berth rename`.
pub async fn rename<B: Backend>(backend: &B, args: RenameArgs) -> anyhow::Result<()> {
    if args.new_name.trim().is_empty() {
        anyhow::bail!("Error: Neither old nor new names may be empty");
    }
    if let Err(e) = backend
        .rename_container(&args.container, &args.new_name)
        .await
    {
        return Err(StatusError::new(
            1,
            format!(
                "{e}\nError: failed to rename container named {}",
                args.container
            ),
        )
        .into());
    }
    Ok(())
}
