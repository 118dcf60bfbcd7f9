//! `berth`: the command line of the berth container engine. It takes docker's commands and
//! flags (so `alias docker=berth` works) and talks to `berthd` over the Docker Engine API.

mod backend;
mod commands;
mod config;
mod exit;
mod format;
mod reference;
mod stream;
mod template;
mod units;

use std::io::Write;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};

use crate::backend::engine::EngineBackend;
use crate::backend::http::{HttpBackend, DEFAULT_HOST};
use crate::commands::Command;

/// A self-sufficient runtime for containers
#[derive(Parser, Debug)]
#[command(
    name = "berth",
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", default_value = DEFAULT_HOST, value_name = "list")]
    host: String,
    /// Set the logging level ("debug", "info", "warn", "error", "fatal")
    #[arg(
        short = 'l',
        long = "log-level",
        default_value = "info",
        value_name = "string"
    )]
    log_level: String,
    /// Run the engine inside this process instead of talking to berthd
    #[arg(long, env = "BERTH_DAEMONLESS", value_parser = clap::builder::BoolishValueParser::new())]
    daemonless: bool,
    /// With --daemonless: root of persistent state (berthd's --data-root)
    #[arg(long, value_name = "string", requires = "daemonless")]
    data_root: Option<PathBuf>,
    /// With --daemonless: root of run-time state (berthd's --exec-root)
    #[arg(long, value_name = "string", requires = "daemonless")]
    exec_root: Option<PathBuf>,
    /// With --daemonless: a registry to reach over plain HTTP (berthd's --insecure-registry);
    /// repeatable
    #[arg(
        long = "insecure-registry",
        value_name = "host[:port]|CIDR",
        requires = "daemonless"
    )]
    insecure_registries: Vec<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Maps a command-line parsing failure to docker's exit statuses: help is 0, a missing or
/// extra argument 1, any other usage error 125.
fn parse_error_status(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::MissingSubcommand => 1,
        // An extra positional argument is an argument-count error; an unknown flag a usage error.
        ErrorKind::UnknownArgument => match e.get(clap::error::ContextKind::InvalidArg) {
            Some(clap::error::ContextValue::String(arg)) if !arg.starts_with('-') => 1,
            _ => 125,
        },
        _ => 125,
    }
}

fn run(cli: Cli) -> i32 {
    if cli.version {
        println!("berth version {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    if !matches!(
        cli.log_level.as_str(),
        "debug" | "info" | "warn" | "error" | "fatal" | "panic" | "trace"
    ) {
        eprintln!("Unable to parse logging level: {}", cli.log_level);
        return 1;
    }
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        return 0;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        if cli.daemonless {
            daemonless_logging(&cli.log_level);
            let data_root = cli
                .data_root
                .unwrap_or_else(|| PathBuf::from(engine::config::DEFAULT_DATA_ROOT));
            let exec_root = cli
                .exec_root
                .unwrap_or_else(|| PathBuf::from(engine::config::DEFAULT_EXEC_ROOT));
            let backend =
                EngineBackend::open(&data_root, &exec_root, &cli.insecure_registries).await?;
            return commands::execute(&backend, command).await;
        }
        let backend = HttpBackend::new(&cli.host)?;
        commands::execute(&backend, command).await
    });
    // A blocked stdin reader must not keep the process alive.
    runtime.shutdown_background();
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            let (code, message) = exit::exit_status(&e);
            if !message.is_empty() {
                eprintln!("{message}");
            }
            code
        }
    }
}

/// The engine's own messages in daemonless mode, on stderr: warnings and errors (what berthd
/// would log), everything with `--log-level debug`.
fn daemonless_logging(level: &str) {
    let filter = match level {
        "debug" | "trace" => level,
        "error" | "fatal" | "panic" => "error",
        _ => "warn",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

fn main() {
    let code = match Cli::try_parse() {
        Ok(cli) => run(cli),
        Err(e) => {
            let _ = e.print();
            parse_error_status(&e)
        }
    };
    std::process::exit(code);
}
