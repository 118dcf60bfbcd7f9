//! `attach`: this terminal's stdio on a running container's, as docker's `attach`.

use clap::{ArgAction, Args};

use super::run::{Ended, Session};
use crate::backend::{AttachOptions, Backend, WaitCondition};
use crate::exit::StatusError;
use crate::stream::{
    detach_keys, stdin_is_terminal, stdout_is_terminal, terminal_size, RawTerminal,
};

/// Attach local standard input, output, and error streams to a running container
#[derive(Args, Debug, Clone)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(
        long = "sig-proxy",
        action = ArgAction::Set,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "bool"
    )]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth attach`.
pub async fn attach<B: Backend>(backend: &B, args: AttachArgs) -> anyhow::Result<()> {
    let keys = detach_keys(args.detach_keys.as_deref());
    // Registered first, so an exit right after the attach is not missed.
    let wait = backend
        .wait_container(&args.container, WaitCondition::NotRunning)
        .await?;
    let inspected = backend.inspect_container(&args.container).await?.value;
    let state = &inspected.state;
    if !state.running {
        anyhow::bail!("You cannot attach to a stopped container, start it first");
    }
    if state.paused {
        anyhow::bail!("You cannot attach to a paused container, unpause it first");
    }
    if state.restarting {
        anyhow::bail!("You cannot attach to a restarting container, wait until it is running");
    }
    let tty = inspected.config.tty;
    let stdin = !args.no_stdin && inspected.config.open_stdin;
    if stdin && tty && !stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    let id = inspected.id.clone();
    let stream = backend
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
    if tty && stdout_is_terminal() {
        // Docker's trick: a size one off, then the real one (via the session), so a
        // program that already drew its screen redraws it.
        if let Some((h, w)) = terminal_size() {
            let _ = backend
                .resize_container(&id, h.saturating_add(1), w.saturating_add(1))
                .await;
        }
    }
    let session = Session::new(
        &id,
        tty,
        stdin,
        args.sig_proxy && !tty,
        Some(stream),
        keys.sequence,
    );
    let raw = if tty && stdin {
        RawTerminal::enable()
    } else {
        None
    };
    let ended = session.follow(backend, wait).await;
    drop(raw);
    match ended? {
        Ended::Detached => Err(StatusError::new(1, "read escape sequence").into()),
        Ended::Exited(status) => {
            if let Some(e) = status.error {
                return Err(StatusError::new(1, e.message).into());
            }
            match status.status_code {
                0 => Ok(()),
                code => Err(StatusError::silent(code as i32).into()),
            }
        }
    }
}
