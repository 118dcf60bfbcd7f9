//! `top`: the processes of a container, as the host's `ps` shows them, the way dockerd
//! does it: list the pids in the container's cgroup, run `ps` with the client's options
//! (`-ef` by default) asking for those pids (`-q`), and keep the rows whose PID column is
//! one of them (and, for thread rows with `-` as PID, those following a kept row).

use std::path::{Path, PathBuf};
use std::time::Duration;

use api_types::ContainerTopResponse;

use super::ContainerError;
use crate::cgroups::{Cgroups, Version};
use crate::engine::{Engine, EngineError};
use crate::Caller;

/// How long `ps` may take.
const PS_TIMEOUT: Duration = Duration::from_secs(30);
/// The most output read from `ps`.
const PS_MAX_OUTPUT: usize = 16 << 20;

impl Engine {
    /// The processes of a running (or paused) container (`GET /containers/{id}/top`).
    pub async fn top_container(
        &self,
        caller: &Caller,
        name: &str,
        ps_args: Option<&str>,
    ) -> Result<ContainerTopResponse, EngineError> {
        let ps_args = ps_args.filter(|a| !a.is_empty()).unwrap_or("-ef");
        validate_ps_args(ps_args)?;
        let container = self.find(name)?;
        self.refresh(&container).await;
        let rec = container.snapshot();
        if !rec.state.status.is_running() {
            return Err(ContainerError::NotRunning {
                id: container.id.clone(),
            }
            .into());
        }
        let pids = container_pids(&self.cgroups, &container.id);
        let args: Vec<String> = ps_args.split(' ').map(str::to_string).collect();
        let mut with_pids = args.clone();
        with_pids.push(ps_pids_arg(&pids));
        let output = match run_ps(&with_pids).await {
            Ok(out) => out,
            // Some options (such as `f`) cannot go with `-q`: list everything instead.
            Err(_) => run_ps(&args).await.map_err(|message| ContainerError::Io {
                context: "ps".into(),
                source: std::io::Error::other(message),
            })?,
        };
        let top = parse_ps_output(&output, &pids).map_err(|message| ContainerError::Io {
            context: "ps".into(),
            source: std::io::Error::other(message),
        })?;
        self.events.emit(
            caller,
            "container",
            "top",
            &container.id,
            container.event_attributes(),
        );
        Ok(top)
    }
}

/// Refuses `ps` options that would name another column `PID` (dockerd's check).
fn validate_ps_args(args: &str) -> Result<(), ContainerError> {
    // dockerd: `\s+([^\s]*)=\s*(PID[^\s]*)`, any key but `pid` is refused.
    let mut rest = args;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let after = &after[1..];
        let key_start = before
            .rfind(char::is_whitespace)
            .map(|i| i + 1)
            .unwrap_or(0);
        let has_space_before = key_start > 0;
        let key = &before[key_start..];
        let value = after.trim_start();
        if has_space_before && value.starts_with("PID") {
            let value: String = value.chars().take_while(|c| !c.is_whitespace()).collect();
            if key != "pid" {
                return Err(ContainerError::InvalidConfig {
                    message: format!("specifying \"{key}={value}\" is not allowed"),
                });
            }
        }
        rest = after;
    }
    Ok(())
}

/// `-q1,2,3`.
fn ps_pids_arg(pids: &[u32]) -> String {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!("-q{}", list.join(","))
}

async fn run_ps(args: &[String]) -> Result<String, String> {
    let child = tokio::process::Command::new("ps")
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run ps: {e}"))?;
    let out = tokio::time::timeout(PS_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| "ps took too long".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(if first.is_empty() {
            format!("ps exited with {}", out.status)
        } else {
            first.to_string()
        });
    }
    let mut stdout = out.stdout;
    stdout.truncate(PS_MAX_OUTPUT);
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// dockerd's `parsePSOutput`.
fn parse_ps_output(output: &str, pids: &[u32]) -> Result<ContainerTopResponse, String> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| "Couldn't find PID field in ps output".to_string())?;
    let mut processes = Vec::new();
    let mut in_container = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_index) else {
            continue;
        };
        let keep = if *pid == "-" {
            in_container
        } else {
            let p: u32 = pid
                .parse()
                .map_err(|e| format!("Unexpected pid '{pid}': {e}"))?;
            in_container = pids.contains(&p);
            in_container
        };
        if keep {
            // The last column (the command) keeps its spaces.
            let cut = (titles.len() - 1).min(fields.len());
            let mut row: Vec<String> = fields[..cut].iter().map(|f| f.to_string()).collect();
            row.push(fields[cut..].join(" "));
            processes.push(row);
        }
    }
    Ok(ContainerTopResponse { titles, processes })
}

/// The pids in a container's cgroup and its descendants (`cgroup.procs`, as runc lists
/// them), in the host's pid namespace.
pub(crate) fn container_pids(cgroups: &Cgroups, id: &str) -> Vec<u32> {
    let dirs: Vec<PathBuf> = match cgroups.version {
        Version::V2 => vec![cgroups.dir("", id)],
        Version::V1 => ["pids", "memory", "cpu", "devices", "freezer"]
            .iter()
            .map(|c| cgroups.dir(c, id))
            .collect(),
    };
    for dir in dirs {
        if dir.join("cgroup.procs").exists() {
            let mut pids = Vec::new();
            collect_pids(&dir, &mut pids, 0);
            pids.sort_unstable();
            pids.dedup();
            return pids;
        }
    }
    Vec::new()
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>, depth: usize) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if depth > 32 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_EF: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        9751    9731  0 14:35 ?        00:00:00 sleep 300
root        9800    9751  0 14:35 ?        00:00:00 sh -c echo a  b
";

    #[test]
    fn rows_are_those_of_the_containers_pids() {
        let top = parse_ps_output(PS_EF, &[9751, 9800]).unwrap();
        assert_eq!(
            top.titles,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        assert_eq!(
            top.processes,
            vec![
                vec![
                    "root",
                    "9751",
                    "9731",
                    "0",
                    "14:35",
                    "?",
                    "00:00:00",
                    "sleep 300"
                ],
                vec![
                    "root",
                    "9800",
                    "9751",
                    "0",
                    "14:35",
                    "?",
                    "00:00:00",
                    "sh -c echo a b"
                ],
            ]
        );
        assert!(parse_ps_output("USER CMD\nroot x\n", &[1]).is_err());
        assert!(parse_ps_output("PID CMD\nabc x\n", &[1]).is_err());
    }

    #[test]
    fn thread_rows_follow_their_process() {
        let out = "PID TID CMD\n10 - a\n- 10 -\n- 11 -\n20 - b\n- 20 -\n";
        let top = parse_ps_output(out, &[10]).unwrap();
        assert_eq!(top.processes.len(), 3);
        assert!(top.processes.iter().all(|r| r[0] == "10" || r[0] == "-"));
    }

    #[test]
    fn ps_args_naming_another_column_pid_are_refused() {
        assert!(validate_ps_args("-ef").is_ok());
        assert!(validate_ps_args("-o pid,comm").is_ok());
        assert!(validate_ps_args("-o pid=PID").is_ok());
        let err = validate_ps_args("-o pid,user=PID").unwrap_err();
        assert!(err.to_string().contains("is not allowed"), "{err}");
        assert!(validate_ps_args("x -o comm= PID").is_err());
        assert!(validate_ps_args("user=PID").is_ok());
        assert_eq!(ps_pids_arg(&[1, 2, 3]), "-q1,2,3");
    }
}
