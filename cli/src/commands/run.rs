//! `run` and `create`, and the attached-session loop `start -a` shares with `run`.

use anyhow::Context;
use api_types::{ContainerCreateRequest, ContainerCreateResponse, WaitResponse};
use clap::{ArgAction, Args};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use super::container_opts::ContainerOptions;
use crate::backend::{
    AttachOptions, AttachStream, Backend, ByteReader, ByteWriter, ProgressStream, WaitCondition,
    WaitHandle,
};
use crate::exit::{run_failure, StatusError};
use crate::reference::ImageRef;
use crate::stream::{
    copy_to_stdio, detach_keys, proxied_signals, spawn_stdin_forwarder, stdin_is_terminal,
    stdout_is_terminal, terminal_size, window_changes, RawTerminal,
};

/// Create and run a new container from an image
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
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
    #[command(flatten)]
    pub opts: ContainerOptions,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub argv: Vec<String>,
}

/// Create a new container
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOptions,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub argv: Vec<String>,
}

fn client_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Builds the create body for `run`/`create`, with the terminal's size for `-t`.
pub fn create_request(
    opts: &ContainerOptions,
    argv: &[String],
    detach: bool,
) -> anyhow::Result<ContainerCreateRequest> {
    let (image, cmd) = argv
        .split_first()
        .context("\"run\" requires at least 1 argument")?;
    let console = if opts.tty {
        terminal_size().map_or([0, 0], |(h, w)| [u32::from(h), u32::from(w)])
    } else {
        [0, 0]
    };
    let mut body = opts.to_create_request(image, cmd, &client_env, console)?;
    if detach {
        body.config.attach_stdin = false;
        body.config.attach_stdout = false;
        body.config.attach_stderr = false;
        body.config.stdin_once = false;
    }
    Ok(body)
}

/// Creates the container, pulling its image first when the engine does not have it.
pub async fn create_with_pull<B: Backend>(
    backend: &B,
    name: Option<&str>,
    body: &ContainerCreateRequest,
) -> anyhow::Result<ContainerCreateResponse> {
    match backend.create_container(name, body).await {
        Ok(created) => Ok(created),
        Err(e) if e.is_not_found() => {
            let reference = ImageRef::parse(&body.config.image).map_err(anyhow::Error::msg)?;
            eprintln!(
                "Unable to find image '{}' locally",
                reference.familiar_string()
            );
            let tag = reference
                .digest
                .clone()
                .unwrap_or_else(|| reference.tag_or_latest().to_string());
            let progress = backend.pull_image(&reference.full_name(), &tag).await?;
            show_progress(progress, &mut std::io::stderr()).await?;
            Ok(backend.create_container(name, body).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints a pull/load/import progress stream as docker does without a terminal; an error
/// message in the stream fails the command.
pub async fn show_progress(
    mut progress: ProgressStream,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    while let Some(msg) = progress.next().await {
        let msg = msg?;
        if let Some(detail) = &msg.error_detail {
            anyhow::bail!("{}", detail.message);
        }
        if let Some(e) = &msg.error {
            anyhow::bail!("{e}");
        }
        // Without a terminal docker prints a pull's steps, not its byte counts.
        let counted = msg
            .progress_detail
            .as_ref()
            .is_some_and(|d| d.current.is_some());
        if let Some(stream) = &msg.stream {
            write!(out, "{stream}")?;
        } else if counted {
            continue;
        } else if let Some(status) = &msg.status {
            match &msg.id {
                Some(id) if !id.is_empty() => writeln!(out, "{id}: {status}")?,
                _ => writeln!(out, "{status}")?,
            }
        }
        out.flush()?;
    }
    Ok(())
}

fn print_warnings(created: &ContainerCreateResponse) {
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
}

/// `berth create`.
pub async fn create<B: Backend>(backend: &B, args: CreateArgs) -> anyhow::Result<()> {
    let result = async {
        let body = create_request(&args.opts, &args.argv, false)?;
        create_with_pull(backend, args.opts.name.as_deref(), &body).await
    }
    .await;
    let created = result.map_err(|e| run_failure("create", &e))?;
    print_warnings(&created);
    println!("{}", created.id);
    Ok(())
}

/// `berth run`: create, attach, wait, start, stream, and exit with the container's status.
pub async fn run<B: Backend>(backend: &B, args: RunArgs) -> anyhow::Result<()> {
    let opts = &args.opts;
    if args.detach && !opts.attach.is_empty() {
        return Err(StatusError::new(
            125,
            "berth: conflicting options: cannot specify both --attach and --detach",
        )
        .into());
    }
    let streams = opts.attach_streams().map_err(|e| run_failure("run", &e))?;
    if !args.detach && streams.stdin && opts.tty && !stdin_is_terminal() {
        anyhow::bail!("the input device is not a TTY");
    }
    let keys = detach_keys(args.detach_keys.as_deref());
    let body = create_request(opts, &args.argv, args.detach).map_err(|e| run_failure("run", &e))?;
    let created = create_with_pull(backend, opts.name.as_deref(), &body)
        .await
        .map_err(|e| run_failure("run", &e))?;
    print_warnings(&created);
    let id = created.id;

    let attach = if !args.detach && (streams.stdin || streams.stdout || streams.stderr) {
        let attach_opts = AttachOptions {
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
            detach_keys: keys.value.clone(),
        };
        let attached = backend
            .attach_container(&id, attach_opts)
            .await
            .map_err(|e| run_failure("run", &e.into()))?;
        Some(attached)
    } else {
        None
    };
    let session = (!args.detach).then(|| {
        Session::new(
            &id,
            opts.tty,
            streams.stdin,
            args.sig_proxy && !opts.tty,
            attach,
            keys.sequence,
        )
    });
    let condition = if opts.rm {
        WaitCondition::Removed
    } else {
        WaitCondition::NextExit
    };
    let wait = backend
        .wait_container(&id, condition)
        .await
        .map_err(|e| run_failure("run", &e.into()))?;
    let raw = if !args.detach && opts.tty && streams.stdin {
        RawTerminal::enable()
    } else {
        None
    };
    if let Err(e) = backend.start_container(&id).await {
        drop(raw);
        return Err(run_failure("run", &e.into()).into());
    }
    if args.detach {
        // Like docker, stop waiting: the container runs on.
        drop(wait);
        println!("{id}");
        return Ok(());
    }
    let Some(session) = session else {
        unreachable!("a session exists unless detached");
    };
    let ended = session.follow(backend, wait).await;
    drop(raw);
    match ended? {
        Ended::Exited(status) => exit_with(status),
        // Detached: the container runs on, and so does nothing else here.
        Ended::Detached => Ok(()),
    }
}

/// Ends the command with the container's status, or 125 when the wait failed.
pub fn exit_with(status: WaitResponse) -> anyhow::Result<()> {
    if let Some(e) = status.error {
        return Err(StatusError::new(125, format!("berth: {}", e.message)).into());
    }
    match status.status_code {
        0 => Ok(()),
        code => Err(StatusError::silent(code as i32).into()),
    }
}

/// How a followed session ended.
#[derive(Debug)]
pub enum Ended {
    /// The container exited (or was removed); the wait's answer.
    Exited(WaitResponse),
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// A client session on a container: its output, stdin forwarding and signal proxy. It is
/// set up before the container starts (as docker does, so early stdin and signals are not
/// lost) and followed after.
pub struct Session {
    id: String,
    tty: bool,
    output: Option<ByteReader>,
    /// Fires when the detach keys are typed (terminal sessions with stdin).
    detached: Option<oneshot::Receiver<()>>,
    /// The write side, kept open while output flows when stdin is not forwarded: closing it
    /// would tell the engine that stdin ended.
    _input: Option<ByteWriter>,
    signals: Option<UnboundedReceiver<&'static str>>,
}

/// Resolves when the detach keys were typed; never otherwise.
pub async fn detach_requested(rx: &mut Option<oneshot::Receiver<()>>) {
    match rx {
        Some(r) => match r.await {
            Ok(()) => {}
            Err(_) => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Whether the detach keys have been typed, without waiting.
pub fn detach_fired(rx: &mut Option<oneshot::Receiver<()>>) -> bool {
    rx.as_mut().is_some_and(|r| r.try_recv().is_ok())
}

/// The next item of `rx`; never, when there is none (or no more).
pub async fn next_tick<T>(rx: &mut Option<UnboundedReceiver<T>>) -> T {
    match rx {
        Some(r) => match r.recv().await {
            Some(v) => v,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Session {
    /// Starts forwarding stdin (when `stdin`; with a terminal, watching for `detach_keys`)
    /// and catching signals (when `sig_proxy`).
    pub fn new(
        id: &str,
        tty: bool,
        stdin: bool,
        sig_proxy: bool,
        attach: Option<AttachStream>,
        detach_keys: Vec<u8>,
    ) -> Self {
        let mut detached = None;
        let (output, input) = match attach {
            Some(AttachStream { output, input }) => {
                if stdin {
                    let keys = tty.then_some(detach_keys);
                    detached = Some(spawn_stdin_forwarder(input, keys));
                    (Some(output), None)
                } else {
                    (Some(output), Some(input))
                }
            }
            None => (None, None),
        };
        Self {
            id: id.to_string(),
            tty,
            output,
            detached,
            _input: input,
            signals: sig_proxy.then(proxied_signals),
        }
    }

    /// Streams output (forwarding signals and terminal resizes) until the engine closes
    /// the stream, then returns the wait's result; or until the detach keys are typed.
    pub async fn follow<B: Backend>(
        mut self,
        backend: &B,
        wait: WaitHandle,
    ) -> anyhow::Result<Ended> {
        let id = self.id.clone();
        let mut resizes = if self.tty && stdout_is_terminal() {
            if let Some((h, w)) = terminal_size() {
                let _ = backend.resize_container(&id, h, w).await;
            }
            Some(window_changes())
        } else {
            None
        };
        if let Some(output) = self.output.take() {
            let copy = copy_to_stdio(output, self.tty);
            tokio::pin!(copy);
            loop {
                tokio::select! {
                    // A detach first: once the keys are typed, the stream may end too.
                    biased;
                    () = detach_requested(&mut self.detached) => return Ok(Ended::Detached),
                    result = &mut copy => {
                        if detach_fired(&mut self.detached) {
                            return Ok(Ended::Detached);
                        }
                        result?;
                        break;
                    }
                    sig = next_tick(&mut self.signals) => {
                        let _ = backend.kill_container(&id, Some(sig)).await;
                    }
                    () = next_tick(&mut resizes) => {
                        if let Some((h, w)) = terminal_size() {
                            let _ = backend.resize_container(&id, h, w).await;
                        }
                    }
                }
            }
        }
        tokio::pin!(wait);
        loop {
            tokio::select! {
                status = &mut wait => return Ok(Ended::Exited(status?)),
                sig = next_tick(&mut self.signals) => {
                    let _ = backend.kill_container(&id, Some(sig)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(clap::Subcommand)]
    enum TestCmd {
        Run(RunArgs),
    }

    fn parse(args: &[&str]) -> RunArgs {
        let mut argv = vec!["berth", "run"];
        argv.extend_from_slice(args);
        match TestCli::try_parse_from(argv).unwrap().cmd {
            TestCmd::Run(r) => r,
        }
    }

    #[test]
    fn checklist_run_maps_to_the_create_body() {
        let args = parse(&[
            "-m", "64m", "--cpus", "0.5", "-e", "A=1", "--name", "x", "busybox", "echo", "hi",
        ]);
        assert_eq!(args.opts.name.as_deref(), Some("x"));
        let body = create_request(&args.opts, &args.argv, false).unwrap();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["Image"], "busybox");
        assert_eq!(v["Cmd"], json!(["echo", "hi"]));
        assert_eq!(v["Env"], json!(["A=1"]));
        assert_eq!(v["Entrypoint"], json!(null));
        assert_eq!(v["AttachStdout"], true);
        assert_eq!(v["AttachStderr"], true);
        assert_eq!(v["AttachStdin"], false);
        assert_eq!(v["Tty"], false);
        assert_eq!(v["OpenStdin"], false);
        assert_eq!(v["StdinOnce"], false);
        assert_eq!(v["Labels"], json!({}));
        assert_eq!(v["HostConfig"]["Memory"], 67_108_864);
        assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(v["HostConfig"]["NetworkMode"], "default");
        assert_eq!(v["HostConfig"]["AutoRemove"], false);
        assert_eq!(v["HostConfig"]["ConsoleSize"], json!([0, 0]));
        assert_eq!(
            v["HostConfig"]["RestartPolicy"],
            json!({"Name":"no","MaximumRetryCount":0})
        );
        assert_eq!(v["HostConfig"]["LogConfig"], json!({"Type":"","Config":{}}));
        assert!(v["HostConfig"].get("Mounts").is_none());
        assert_eq!(v["NetworkingConfig"], json!({"EndpointsConfig":{}}));
        // The body the engine reads back is the same request.
        let back: ContainerCreateRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn every_run_flag_lands_in_its_field() {
        let args = parse(&[
            "--rm",
            "-i",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--entrypoint",
            "/bin/sh",
            "-h",
            "box",
            "--memory-swap",
            "-1",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0-1",
            "--pids-limit",
            "64",
            "--read-only",
            "-l",
            "a=1",
            "-l",
            "b",
            "--network",
            "none",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "3",
            "--ulimit",
            "nofile=10:20",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--privileged",
            "--init",
            "--log-opt",
            "max-size=10m",
            "--log-opt",
            "max-file=3",
            "-v",
            "/srv:/data:ro",
            "-p",
            "8080:80",
            "busybox",
            "-c",
            "echo hi",
        ]);
        let body = create_request(&args.opts, &args.argv, false).unwrap();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["Cmd"], json!(["-c", "echo hi"]));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(v["WorkingDir"], "/tmp");
        assert_eq!(v["User"], "1000:1000");
        assert_eq!(v["Hostname"], "box");
        assert_eq!(
            (
                v["OpenStdin"].clone(),
                v["AttachStdin"].clone(),
                v["StdinOnce"].clone()
            ),
            (json!(true), json!(true), json!(true))
        );
        assert_eq!(v["Labels"], json!({"a":"1","b":""}));
        assert_eq!(v["StopSignal"], "SIGUSR1");
        assert_eq!(v["StopTimeout"], 3);
        assert_eq!(v["ExposedPorts"], json!({"80/tcp":{}}));
        let h = &v["HostConfig"];
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["CpusetCpus"], "0-1");
        assert_eq!(h["PidsLimit"], 64);
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["NetworkMode"], "none");
        assert_eq!(h["Ulimits"], json!([{"Name":"nofile","Soft":10,"Hard":20}]));
        assert_eq!(h["CapAdd"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(h["CapDrop"], json!(["ALL"]));
        assert_eq!(h["Privileged"], true);
        assert_eq!(h["Init"], true);
        assert_eq!(
            h["LogConfig"]["Config"],
            json!({"max-size":"10m","max-file":"3"})
        );
        assert_eq!(h["Binds"], json!(["/srv:/data:ro"]));
        assert_eq!(
            h["PortBindings"],
            json!({"80/tcp":[{"HostIp":"","HostPort":"8080"}]})
        );
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let args = parse(&[
            "-d", "--name", "x", "busybox", "echo", "-n", "hi", "--rm", "-d",
        ]);
        assert!(args.detach);
        assert!(!args.opts.rm);
        assert_eq!(args.argv, ["busybox", "echo", "-n", "hi", "--rm", "-d"]);
        let body = create_request(&args.opts, &args.argv, true).unwrap();
        assert!(!body.config.attach_stdout && !body.config.attach_stderr);
    }

    #[test]
    fn unknown_flags_before_the_image_are_usage_errors() {
        let err = TestCli::try_parse_from(["berth", "run", "--bogus", "busybox"])
            .err()
            .unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn sig_proxy_and_attach_flags() {
        assert!(parse(&["busybox"]).sig_proxy);
        assert!(!parse(&["--sig-proxy=false", "busybox"]).sig_proxy);
        let args = parse(&["-a", "stdout", "-it", "busybox"]);
        let body = create_request(&args.opts, &args.argv, false).unwrap();
        assert!(
            body.config.attach_stdin && body.config.attach_stdout && !body.config.attach_stderr
        );
        assert!(body.config.tty);
        let args = parse(&["-a", "bogus", "busybox"]);
        assert!(create_request(&args.opts, &args.argv, false).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            ["-m", "lots"],
            ["--cpus", "x"],
            ["--restart", "sometimes"],
            ["--ulimit", "nofile"],
        ] {
            let mut a = bad.to_vec();
            a.push("busybox");
            let args = parse(&a);
            assert!(
                create_request(&args.opts, &args.argv, false).is_err(),
                "{bad:?}"
            );
        }
        let args = parse(&["--rm", "--restart", "always", "busybox"]);
        assert!(create_request(&args.opts, &args.argv, false).is_err());
    }
}
