//! `berth-runtime`: berth's built-in OCI runtime.
//!
//! A runc-compatible command line over youki's `libcontainer`. It is its own freshly
//! exec'd, single-threaded process because libcontainer forks without exec (which
//! deadlocks inside a multi-threaded tokio daemon) and changes the process-wide cwd.
//!
//! The container's first process inherits this process's stdin, stdout and stderr, and
//! ends up a child of whoever started `berth-runtime` only through reparenting: it is
//! cloned as our child, so when `run --detach` exits it is reparented to the nearest child
//! subreaper (the shim) or to pid 1.
//!
//! One file per verb (`create.rs` holds create and run, `start.rs`, `kill.rs`, …); errors
//! are printed as one line on stderr (and to `--log`), exit status 1.

mod create;
mod delete;
mod exec;
mod executable;
mod kill;
mod log;
mod loopback;
mod start;
mod state;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

/// berth's built-in OCI runtime: a runc-compatible command line over youki's libcontainer.
#[derive(Debug, Parser)]
#[command(name = "berth-runtime", version)]
struct Cli {
    /// Directory holding the runtime's per-container state.
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    root: PathBuf,

    /// Append the runtime's own log to this file (errors are also printed on stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,

    /// Format of the --log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Log debug messages too.
    #[arg(long, global = true)]
    debug: bool,

    /// Manage cgroups through systemd (not supported: berth-runtime writes cgroupfs).
    #[arg(long, global = true)]
    systemd_cgroup: bool,

    #[command(subcommand)]
    command: Command,
}

/// The `--log-format` values runc accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time="…" level=error msg="…"` lines.
    Text,
    /// `{"level":"error","msg":"…","time":"…"}` lines, as runc writes them.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::CreateArgs),
    /// Start a created container: its process executes the user's program.
    Start {
        /// The container's id.
        id: String,
    },
    /// Create and start a container; with --detach, exit leaving it running.
    Run(create::RunArgs),
    /// Send a signal (default SIGTERM) to a container's first process.
    Kill {
        /// Send the signal to every process in the container's cgroup.
        #[arg(long, short)]
        all: bool,
        /// The container's id.
        id: String,
        /// The signal, by name (`KILL`, `SIGKILL`) or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's runtime state and cgroup.
    Delete {
        /// Kill the container first if it still runs; succeed if it does not exist.
        #[arg(long, short)]
        force: bool,
        /// The container's id.
        id: String,
    },
    /// Run another process in a running container.
    Exec(exec::ExecArgs),
    /// Print a container's state as JSON.
    State {
        /// The container's id.
        id: String,
    },
}

fn main() -> ExitCode {
    // libcontainer forks the container's process from this one without exec'ing in
    // between, and ignored signals stay ignored across exec: restore SIGPIPE's default
    // (the Rust runtime ignores it) so the container's program sees the usual disposition.
    if let Err(err) = restore_default_sigpipe() {
        eprintln!("berth-runtime: cannot restore the default SIGPIPE action: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let logger = match log::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(logger) => logger,
        Err(err) => {
            eprintln!("berth-runtime: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            logger.error(&format!("{err:#}"));
            eprintln!("berth-runtime: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.systemd_cgroup {
        bail!(
            "the systemd cgroup driver is not supported; berth-runtime manages cgroupfs directly"
        );
    }
    let root = prepare_root(&cli.root)?;
    match cli.command {
        Command::Create(args) => create::create(&root, args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => create::run(&root, args),
        Command::Start { id } => start::start(&root, &id).map(|()| ExitCode::SUCCESS),
        Command::Kill { all, id, signal } => {
            kill::kill(&root, &id, &signal, all).map(|()| ExitCode::SUCCESS)
        }
        Command::Delete { force, id } => {
            delete::delete(&root, &id, force).map(|()| ExitCode::SUCCESS)
        }
        Command::Exec(args) => exec::exec(&root, args),
        Command::State { id } => state::state(&root, &id).map(|()| ExitCode::SUCCESS),
    }
}

/// Creates the state directory (0700, as runc does) and returns its absolute path.
fn prepare_root(root: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("Cannot create the state directory {root:?}"))?;
    std::fs::canonicalize(root)
        .with_context(|| format!("Cannot resolve the state directory {root:?}"))
}

/// Loads a container's state from `<root>/<id>`, with runc's wording when it is missing.
fn load_container(root: &Path, id: &str) -> anyhow::Result<libcontainer::container::Container> {
    validate_id(id)?;
    let dir = root.join(id);
    if !dir.join("state.json").exists() {
        bail!("container {id:?} does not exist");
    }
    libcontainer::container::Container::load(dir)
        .with_context(|| format!("Cannot load the state of container {id:?}"))
}

/// Rejects ids that could escape the state directory; libcontainer's own rules.
fn validate_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}");
    }
    Ok(())
}

#[allow(unsafe_code)]
fn restore_default_sigpipe() -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no handler code, so nothing here must be
    // async-signal-safe; the process is still single-threaded.
    unsafe { sigaction(Signal::SIGPIPE, &default) }.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_state_directory_are_rejected() {
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "a.b-c_d+e", "0123456789abcdef"] {
            validate_id(good).unwrap();
        }
    }

    #[test]
    fn runc_style_global_flags_parse() {
        let cli = Cli::try_parse_from([
            "berth-runtime",
            "--root",
            "/run/x",
            "--log",
            "/tmp/l.json",
            "--log-format",
            "json",
            "run",
            "--detach",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "abc",
        ])
        .unwrap();
        assert_eq!(cli.root, PathBuf::from("/run/x"));
        assert_eq!(cli.log_format, LogFormat::Json);
        match cli.command {
            Command::Run(run) => {
                assert!(run.detach);
                assert_eq!(run.create.id, "abc");
            }
            other => panic!("parsed {other:?}"),
        }
        let cli = Cli::try_parse_from(["berth-runtime", "kill", "abc", "KILL"]).unwrap();
        assert!(matches!(cli.command, Command::Kill { ref signal, .. } if signal == "KILL"));
        let cli = Cli::try_parse_from(["berth-runtime", "delete", "-f", "abc"]).unwrap();
        assert!(matches!(cli.command, Command::Delete { force: true, .. }));
    }
}
