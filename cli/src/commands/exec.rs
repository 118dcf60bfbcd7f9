//! `exec`: run a command in a running container, as docker's `exec` does it: inspect,
//! create, start (attached or `-d`), stream, and exit with the exec's exit code.

use std::path::PathBuf;

use anyhow::Context;
use api_types::{ExecCreateRequest, ExecStartRequest};
use clap::Args;

use super::container_opts::{expand_env, parse_env_file};
use super::run::{detach_fired, detach_requested, next_tick};
use crate::backend::{AttachStream, Backend};
use crate::exit::StatusError;
use crate::stream::{
    copy_to_stdio, detach_keys, spawn_stdin_forwarder, stdin_is_terminal, terminal_size,
    window_changes, RawTerminal,
};

/// Execute a command in a running container
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<PathBuf>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// The container, then the command and its arguments
    #[arg(
        value_name = "CONTAINER COMMAND [ARG...]",
        required = true,
        num_args = 2..,
        trailing_var_arg = true
    )]
    pub argv: Vec<String>,
}

/// The exec's create body, as docker's `parseExec` builds it.
pub fn exec_request(
    args: &ExecArgs,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<ExecCreateRequest> {
    let mut env = Vec::new();
    for file in &args.env_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("open {}", file.display()))?;
        env.extend(parse_env_file(&text, lookup_env));
    }
    env.extend(args.env.iter().map(|e| expand_env(e, lookup_env)));
    let attached = !args.detach;
    let keys = detach_keys(args.detach_keys.as_deref());
    Ok(ExecCreateRequest {
        user: args.user.clone().unwrap_or_default(),
        privileged: args.privileged,
        tty: args.tty,
        attach_stdin: attached && args.interactive,
        attach_stdout: attached,
        attach_stderr: attached,
        detach_keys: keys.value.unwrap_or_default(),
        env: Some(env),
        working_dir: args.workdir.clone().unwrap_or_default(),
        cmd: Some(args.argv[1..].to_vec()),
        ..Default::default()
    })
}

/// `berth exec`.
pub async fn exec<B: Backend>(backend: &B, args: ExecArgs) -> anyhow::Result<()> {
    let container = &args.argv[0];
    let lookup = |name: &str| std::env::var(name).ok();
    let mut config = exec_request(&args, &lookup)?;
    let keys = detach_keys(args.detach_keys.as_deref()).sequence;
    // "No such container" wins over every other complaint, as with docker.
    backend.inspect_container(container).await?;
    if !args.detach && config.attach_stdin && config.tty && !stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    if config.tty {
        config.console_size = terminal_size().map(|(h, w)| [u32::from(h), u32::from(w)]);
    }
    let id = backend.create_exec(container, &config).await?;
    let start = ExecStartRequest {
        detach: args.detach,
        tty: config.tty,
        console_size: config.console_size,
    };
    let Some(stream) = backend.start_exec(&id, &start).await? else {
        return Ok(());
    };
    let raw = if config.tty && config.attach_stdin {
        RawTerminal::enable()
    } else {
        None
    };
    let detached = follow(backend, &id, &config, stream, keys).await;
    drop(raw);
    if detached? {
        return Err(StatusError::new(1, "read escape sequence").into());
    }
    match backend.inspect_exec(&id).await?.exit_code.unwrap_or(0) {
        0 => Ok(()),
        code => Err(StatusError::silent(code as i32).into()),
    }
}

/// Streams the exec's output (forwarding input and terminal resizes) until it ends;
/// `true` when the detach keys ended it instead.
async fn follow<B: Backend>(
    backend: &B,
    id: &str,
    config: &ExecCreateRequest,
    stream: AttachStream,
    keys: Vec<u8>,
) -> anyhow::Result<bool> {
    let AttachStream { output, input } = stream;
    let mut detached = None;
    if config.attach_stdin {
        detached = Some(spawn_stdin_forwarder(input, config.tty.then_some(keys)));
    } else {
        // Nothing to send: the half-close tells the engine so at once, as docker does.
        let mut input = input;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut input).await;
    }
    let mut resizes = None;
    if config.tty && stdin_is_terminal() {
        if let Some((h, w)) = terminal_size() {
            let _ = backend.resize_exec(id, h, w).await;
        }
        resizes = Some(window_changes());
    }
    let copy = copy_to_stdio(output, config.tty);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            // A detach first: once the keys are typed, the stream may end too.
            biased;
            () = detach_requested(&mut detached) => return Ok(true),
            result = &mut copy => {
                if detach_fired(&mut detached) {
                    return Ok(true);
                }
                result?;
                return Ok(false);
            }
            () = next_tick(&mut resizes) => {
                if let Some((h, w)) = terminal_size() {
                    let _ = backend.resize_exec(id, h, w).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(clap::Subcommand)]
    enum TestCmd {
        Exec(ExecArgs),
    }

    fn parse(args: &[&str]) -> ExecArgs {
        let mut argv = vec!["berth", "exec"];
        argv.extend_from_slice(args);
        match TestCli::try_parse_from(argv).unwrap().cmd {
            TestCmd::Exec(e) => e,
        }
    }

    #[test]
    fn the_create_body_is_dockers() {
        let lookup = |name: &str| (name == "FROM_CLIENT").then(|| "v".to_string());
        let args = parse(&[
            "-it",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "A=1",
            "-e",
            "FROM_CLIENT",
            "-e",
            "UNSET",
            "c",
            "sh",
            "-c",
            "exit 5",
        ]);
        let body = exec_request(&args, &lookup).unwrap();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["Cmd"], serde_json::json!(["sh", "-c", "exit 5"]));
        assert_eq!(
            v["Env"],
            serde_json::json!(["A=1", "FROM_CLIENT=v", "UNSET"])
        );
        assert_eq!(v["User"], "nobody");
        assert_eq!(v["WorkingDir"], "/tmp");
        assert_eq!(
            (
                v["Tty"].clone(),
                v["AttachStdin"].clone(),
                v["AttachStdout"].clone()
            ),
            (true.into(), true.into(), true.into())
        );
        let body = exec_request(&parse(&["-d", "-i", "c", "true"]), &lookup).unwrap();
        assert!(!body.attach_stdin && !body.attach_stdout && !body.attach_stderr);
    }

    #[test]
    fn flags_after_the_container_belong_to_the_command() {
        let args = parse(&["c", "ls", "-l", "-d"]);
        assert!(!args.detach);
        assert_eq!(args.argv, ["c", "ls", "-l", "-d"]);
        assert!(
            TestCli::try_parse_from(["berth", "exec", "c"]).is_err(),
            "a command is required"
        );
    }
}
