//! `create` and `run`: build a container from a bundle with libcontainer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{anyhow, Context};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{executable, loopback, validate_id};

/// `create`'s flags, as runc spells them.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle directory holding config.json.
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container process's pid (as the host sees it) to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pseudo-terminal's master to (when process.terminal is set).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass this many file descriptors beyond stdio (3, 4, …) to the container's process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Enter the rootfs with chroot instead of pivot_root (for a ramfs root).
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: no session keyring is created anyway.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// The container's id.
    pub id: String,
}

/// `run`'s flags: `create`'s plus how to wait.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Exit once the container's program runs instead of waiting for it to exit.
    #[arg(long, short)]
    pub detach: bool,
    /// Without --detach: keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `create`: the container's process is set up and waits for `start`.
pub fn create(root: &Path, args: CreateArgs) -> anyhow::Result<()> {
    build(root, &args).map(drop)
}

/// `run`: create and start; without `--detach`, wait for the container, forward signals
/// to it, delete it and exit with its status.
pub fn run(root: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut container = build(root, &args.create)?;
    if let Err(err) = container.start() {
        let _ = container.delete(true);
        return Err(err).context("Cannot start the container's process");
    }
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let pid = container
        .pid()
        .ok_or_else(|| anyhow!("The container's state has no pid"))?;
    forward_signals_to(pid)?;
    let code = wait_for_exit(pid)?;
    if !args.keep {
        container
            .delete(true)
            .context("Cannot delete the container after it exited")?;
    }
    Ok(ExitCode::from(code))
}

fn build(root: &Path, args: &CreateArgs) -> anyhow::Result<Container> {
    validate_id(&args.id)?;
    let bundle = std::fs::canonicalize(&args.bundle)
        .with_context(|| format!("Cannot open the bundle {:?}", args.bundle))?;
    let spec_path = bundle.join("config.json");
    let spec = Spec::load(&spec_path).with_context(|| format!("Cannot load {spec_path:?}"))?;
    let rootfs = rootfs_of(&spec, &bundle)?;

    // libcontainer checks the executable only inside the new container, and words the
    // error its own way; the docker CLI maps runc's wording to exit codes 127 and 126.
    executable::check(&spec, &rootfs)
        .map_err(|err| anyhow!("unable to start container process: {err}"))?;

    let pid_file = args
        .pid_file
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("Cannot resolve the pid file's path")?;
    let console_socket = args
        .console_socket
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("Cannot resolve the console socket's path")?;

    let container = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(root)?
        .with_pid_file(pid_file)?
        .with_console_socket(console_socket)
        .with_preserved_fds(args.preserve_fds)
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        .with_no_pivot(args.no_pivot)
        .build()
        .map_err(|err| describe_create_error(&err, &spec))?;

    // runc brings up `lo` in a network namespace it creates; libcontainer does not.
    if creates_network_namespace(&spec) {
        let pid = container
            .pid()
            .ok_or_else(|| anyhow!("The new container's state has no pid"))?;
        if let Err(err) = loopback::bring_up(pid) {
            let mut container = container;
            let _ = container.delete(true);
            return Err(err).context(
                "Cannot bring up the loopback interface in the container's network namespace",
            );
        }
    }
    Ok(container)
}

/// The rootfs directory the spec names, relative to the bundle unless absolute.
pub(crate) fn rootfs_of(spec: &Spec, bundle: &Path) -> anyhow::Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| anyhow!("The bundle's config.json has no root"))?;
    let path = bundle.join(root.path());
    std::fs::canonicalize(&path).with_context(|| format!("Cannot open the rootfs {path:?}"))
}

fn creates_network_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| {
            nss.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none())
        })
}

/// Turns libcontainer's error chain into one line, in runc's wording where clients match
/// on it (a missing executable the pre-check could not judge, e.g. one on a volume).
fn describe_create_error(
    err: &libcontainer::error::LibcontainerError,
    spec: &Spec,
) -> anyhow::Error {
    let chain = error_chain(err);
    let arg0 = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    if chain.contains("not found in $PATH") {
        return anyhow!(
            "unable to start container process: exec: {arg0:?}: executable file not found in $PATH"
        );
    }
    if chain.contains("does not have correct permissions") {
        return anyhow!("unable to start container process: exec: {arg0:?}: permission denied");
    }
    anyhow!("unable to start container process: {chain}")
}

pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The pid `run` forwards signals to; read by the signal handler.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
    }
}

#[allow(unsafe_code)]
pub(crate) fn forward_signals_to(pid: Pid) -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    FORWARD_TO.store(pid.as_raw(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: the handler only loads an atomic and calls kill(2), both
        // async-signal-safe; the container's process was forked before this, so it does
        // not inherit the handler.
        unsafe { sigaction(signal, &action) }
            .with_context(|| format!("Cannot forward {signal}"))?;
    }
    Ok(())
}

/// Waits for the container's first process (our child) and returns runc's exit status.
pub(crate) fn wait_for_exit(pid: Pid) -> anyhow::Result<u8> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128u8.wrapping_add(signal as u8)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err).context("Cannot wait for the container's process"),
        }
    }
}
