//! `berth update`: change a live container's resources or restart policy.

use api_types::ContainerUpdateRequest;
use clap::Args;

use super::container_opts::parse_restart_policy;
use crate::backend::Backend;
use crate::exit::StatusError;
use crate::units::{parse_nano_cpus, ram_in_bytes};

/// Update configuration of one or more containers
#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

impl UpdateArgs {
    /// The request body, as the docker CLI builds it.
    pub fn request(&self) -> anyhow::Result<ContainerUpdateRequest> {
        let mem = |v: &Option<String>| -> anyhow::Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    if s == "-1" {
                        Ok(-1)
                    } else {
                        ram_in_bytes(s).map_err(|e| anyhow::anyhow!("{e}"))
                    }
                })
                .transpose()
        };
        Ok(ContainerUpdateRequest {
            memory: mem(&self.memory)?,
            memory_swap: mem(&self.memory_swap)?,
            memory_reservation: mem(&self.memory_reservation)?,
            nano_cpus: self
                .cpus
                .as_deref()
                .map(|c| parse_nano_cpus(c).map_err(|e| anyhow::anyhow!("{e}")))
                .transpose()?,
            cpu_shares: self.cpu_shares,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
            restart_policy: self
                .restart
                .as_deref()
                .map(parse_restart_policy)
                .transpose()?,
            extra: Default::default(),
        })
    }
}

/// `berth update`: prints each container updated; errors on stderr, exit 1 if any failed.
pub async fn update<B: Backend>(backend: &B, args: UpdateArgs) -> anyhow::Result<()> {
    let req = match args.request() {
        Ok(r) => r,
        Err(e) => return Err(StatusError::new(125, format!("invalid argument: {e}")).into()),
    };
    let mut failed = false;
    for c in &args.containers {
        match backend.update_container(c, &req).await {
            Ok(resp) => {
                for w in resp.warnings {
                    eprintln!("{w}");
                }
                println!("{c}");
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(StatusError::new(1, String::new()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: UpdateArgs,
    }

    #[test]
    fn flags_become_the_update_body() {
        let cli = Cli::parse_from([
            "update",
            "-m",
            "128m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--restart",
            "on-failure:3",
            "web",
        ]);
        let req = cli.args.request().unwrap();
        assert_eq!(req.memory, Some(128 << 20));
        assert_eq!(req.nano_cpus, Some(500_000_000));
        assert_eq!(req.pids_limit, Some(50));
        let policy = req.restart_policy.unwrap();
        assert_eq!(
            (policy.name.as_str(), policy.maximum_retry_count),
            ("on-failure", 3)
        );
        assert_eq!(cli.args.containers, ["web"]);
    }
}
