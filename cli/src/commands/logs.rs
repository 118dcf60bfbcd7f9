//! `logs`: a container's output so far, optionally following it.

use clap::Args;

use crate::backend::{Backend, LogsRequest};
use crate::stream::copy_to_stdio;
use crate::units::api_timestamp;

/// Fetch the logs of a container
#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth logs`.
pub async fn logs<B: Backend>(backend: &B, args: LogsArgs) -> anyhow::Result<()> {
    let inspected = backend.inspect_container(&args.container).await?.value;
    let now = chrono::Local::now();
    let req = LogsRequest {
        stdout: true,
        stderr: true,
        follow: args.follow,
        since: args
            .since
            .as_deref()
            .map(|s| api_timestamp(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| api_timestamp(s, now))
            .transpose()?,
        timestamps: args.timestamps,
        details: args.details,
        tail: args.tail,
    };
    let reader = backend.container_logs(&inspected.id, &req).await?;
    copy_to_stdio(reader, inspected.config.tty).await
}
