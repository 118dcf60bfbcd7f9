//! `exec`: run another process in a running container (libcontainer's tenant container).
//!
//! As with runc, the process is described by `--process process.json` (an OCI `process`
//! object) or by the command line (`--env`, `--cwd`, `--user`, the arguments). It joins
//! every namespace and the cgroup of the container's first process. Without `--detach`,
//! `exec` waits for it, forwarding signals, and exits with its status; with `--detach` it
//! exits once the process runs, and the process is reparented to the nearest child
//! subreaper (the shim), which reaps it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::{Process, Spec};

use crate::{create, executable, validate_id};

/// `exec`'s flags, as runc spells them.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The process to run, as an OCI `process` JSON object; the other process flags
    /// and the command are then ignored.
    #[arg(long, short)]
    pub process: Option<PathBuf>,
    /// Exit once the process runs instead of waiting for it.
    #[arg(long, short)]
    pub detach: bool,
    /// Write the process's pid (as the host sees it) to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pseudo-terminal's master to (with a terminal and --detach).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(long, short)]
    pub tty: bool,
    /// The working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE); may be repeated.
    #[arg(long, short)]
    pub env: Vec<String>,
    /// The user as `uid[:gid]`.
    #[arg(long, short)]
    pub user: Option<String>,
    /// An additional group id; may be repeated.
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_…) to the container's set; may be repeated.
    #[arg(long, short)]
    pub cap: Vec<String>,
    /// Set the no_new_privs bit.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many file descriptors beyond stdio (3, 4, …) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Run the process even when the container is paused.
    #[arg(long)]
    pub ignore_paused: bool,
    /// The container's id.
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs the process; returns the exit status `exec` itself should have.
pub fn exec(root: &Path, args: ExecArgs) -> anyhow::Result<ExitCode> {
    validate_id(&args.id)?;
    if args.process.is_none() && args.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    let container = crate::load_container(root, &args.id)?;
    let process = match &args.process {
        Some(path) => Some(read_process(path)?),
        None => None,
    };
    check_executable(&container, process.as_ref(), &args)?;

    let absolute = |p: &Option<PathBuf>, what: &str| {
        p.as_deref()
            .map(std::path::absolute)
            .transpose()
            .with_context(|| format!("Cannot resolve the {what}'s path"))
    };
    let pid_file = absolute(&args.pid_file, "pid file")?;
    let console_socket = absolute(&args.console_socket, "console socket")?;
    let terminal = match &process {
        Some(p) => p.terminal().unwrap_or(false),
        None => args.tty,
    };
    if terminal && !args.detach {
        bail!("a terminal needs --detach and --console-socket: berth-runtime has no host console to copy to");
    }

    let mut builder = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(root)?
        .with_pid_file(pid_file)?
        .with_console_socket(console_socket)
        .with_preserved_fds(args.preserve_fds)
        .as_tenant()
        .with_detach(args.detach)
        .with_ignore_paused(args.ignore_paused);
    match &args.process {
        Some(path) => {
            builder = builder.with_process(Some(
                std::path::absolute(path).context("Cannot resolve the process file's path")?,
            ))
        }
        None => {
            let (uid, gid) = parse_user(args.user.as_deref())?;
            builder = builder
                .with_container_args(args.command.clone())
                .with_env(parse_env(&args.env)?)
                .with_cwd(args.cwd.clone())
                .with_user(uid)
                .with_group(gid)
                .with_additional_gids(args.additional_gids.clone())
                .with_capabilities(args.cap.clone())
                .with_no_new_privs(args.no_new_privs);
        }
    }
    let pid = builder
        .build()
        .map_err(|err| describe_exec_error(&err, process.as_ref(), &args.command))?;
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    create::forward_signals_to(pid)?;
    create::wait_for_exit(pid).map(ExitCode::from)
}

fn read_process(path: &Path) -> anyhow::Result<Process> {
    let bytes = std::fs::read(path).with_context(|| format!("Cannot read {path:?}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("Cannot parse {path:?}"))
}

/// The create-time executable check, for the exec'd process in the container's rootfs:
/// the same words runc uses, which the engine maps to exit codes 127 and 126.
fn check_executable(
    container: &libcontainer::container::Container,
    process: Option<&Process>,
    args: &ExecArgs,
) -> anyhow::Result<()> {
    let bundle = container.bundle();
    let spec_path = bundle.join("config.json");
    let mut spec = Spec::load(&spec_path).with_context(|| format!("Cannot load {spec_path:?}"))?;
    let rootfs = create::rootfs_of(&spec, bundle)?;
    let mut p = match process {
        Some(p) => p.clone(),
        None => {
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(args.command.clone()));
            if let Some(cwd) = &args.cwd {
                p.set_cwd(cwd.clone());
            }
            p
        }
    };
    if p.cwd().as_os_str().is_empty() {
        p.set_cwd(PathBuf::from("/"));
    }
    spec.set_process(Some(p));
    executable::check_cwd(&spec, &rootfs)
        .and_then(|()| executable::check(&spec, &rootfs))
        .map_err(|err| anyhow!("exec failed: unable to start container process: {err}"))
}

/// `uid[:gid]` as numbers.
fn parse_user(user: Option<&str>) -> anyhow::Result<(Option<u32>, Option<u32>)> {
    let Some(user) = user else {
        return Ok((None, None));
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let uid = u
        .parse()
        .map_err(|_| anyhow!("invalid user {user:?}: expected uid[:gid]"))?;
    let gid = g
        .map(|g| {
            g.parse()
                .map_err(|_| anyhow!("invalid user {user:?}: expected uid[:gid]"))
        })
        .transpose()?;
    Ok((Some(uid), gid))
}

fn parse_env(env: &[String]) -> anyhow::Result<HashMap<String, String>> {
    env.iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(anyhow!(
                "invalid environment variable {e:?}: expected KEY=VALUE"
            )),
        })
        .collect()
}

/// libcontainer's error in runc's words where the engine matches on them.
fn describe_exec_error(
    err: &libcontainer::error::LibcontainerError,
    process: Option<&Process>,
    command: &[String],
) -> anyhow::Error {
    let chain = create::error_chain(err);
    let arg0 = process
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first())
        .or(command.first())
        .cloned()
        .unwrap_or_default();
    if chain.contains("not found in $PATH") {
        return anyhow!(
            "exec failed: unable to start container process: exec: {arg0:?}: executable file not found in $PATH"
        );
    }
    if chain.contains("does not have correct permissions") {
        return anyhow!(
            "exec failed: unable to start container process: exec: {arg0:?}: permission denied"
        );
    }
    anyhow!("exec failed: unable to start container process: {chain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_uid_and_optional_gid() {
        assert_eq!(parse_user(None).unwrap(), (None, None));
        assert_eq!(parse_user(Some("1000")).unwrap(), (Some(1000), None));
        assert_eq!(parse_user(Some("1:2")).unwrap(), (Some(1), Some(2)));
        assert!(parse_user(Some("nobody")).is_err());
        assert!(parse_user(Some("1:x")).is_err());
    }

    #[test]
    fn env_needs_a_key() {
        let env = parse_env(&["A=1".into(), "B=".into()]).unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "");
        assert!(parse_env(&["=x".into()]).is_err());
        assert!(parse_env(&["NOEQUALS".into()]).is_err());
    }
}
