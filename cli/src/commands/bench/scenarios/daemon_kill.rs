//! What happens to running containers when the daemon is killed with SIGKILL: how many
//! survive, how many the restarted daemon still reports running, and how many it can still
//! stop and remove.

use std::time::Duration;

use anyhow::{Context, Result};

use super::{make_containers, ms, parallel_map, Ctx};
use crate::commands::bench::command::is_interrupted;
use crate::commands::bench::engine::{Daemon, Engine};
use crate::commands::bench::procfs;
use crate::commands::bench::results::{Better, Cell, Row, Scenario};

/// Containers started or stopped at once.
const THREADS: usize = 8;

struct Outcome {
    survived: usize,
    running: usize,
    manageable: usize,
    restart_ms: f64,
}

/// Returns the `daemon-kill` scenario. Only a daemon the bench started is ever killed.
pub fn run(ctx: &Ctx, engines: &mut [Engine]) -> Result<Vec<Scenario>> {
    let n = ctx.plan.kill_containers;
    let of = format!("of {n}");
    let mut survived = Row::new(
        "survived",
        "containers alive after the SIGKILL",
        &of,
        Better::Neither,
    );
    let mut running = Row::new(
        "running",
        "reported running after restart",
        &of,
        Better::Neither,
    );
    let mut manageable = Row::new(
        "manageable",
        "`stop` and `rm` work after restart",
        &of,
        Better::Neither,
    );
    let mut restart = Row::new(
        "restart",
        "daemon restart until it answers",
        "ms",
        Better::Lower,
    );
    for e in engines.iter_mut() {
        let skip = match &e.daemon {
            Daemon::None => Some("no daemon to kill"),
            Daemon::External { .. } => {
                Some("not started by the bench, which kills only a daemon it started")
            }
            Daemon::Private(_) => None,
        };
        let result = match skip {
            Some(reason) => {
                ctx.progress.skip(3 * n as u64 + 2);
                Err(reason.to_string())
            }
            None => {
                ctx.progress.phase(format!(
                    "daemon SIGKILL with {n} running containers: {}",
                    e.id.label()
                ));
                match kill_and_restart(e, n) {
                    Ok(o) => Ok(o),
                    Err(err) if is_interrupted(&err) => return Err(err),
                    Err(err) => Err(format!("{err:#}")),
                }
            }
        };
        match result {
            Ok(o) => {
                let count = |v: usize| Cell::measured(v as f64, vec![v as f64]);
                survived.set(e.id, count(o.survived));
                running.set(e.id, count(o.running));
                manageable.set(e.id, count(o.manageable));
                restart.set(e.id, Cell::measured(o.restart_ms, vec![o.restart_ms]));
            }
            Err(reason) => {
                for row in [&mut survived, &mut running, &mut manageable, &mut restart] {
                    row.set(e.id, Cell::unavailable(reason.clone()));
                }
            }
        }
    }
    Ok(vec![Scenario {
        id: "daemon-kill".into(),
        title: "Daemon killed with SIGKILL".into(),
        method: format!(
            "{n} `run -d IMAGE sleep 3600` containers, then SIGKILL to the daemon the bench started; counted: container processes still alive, containers the restarted daemon reports running, and containers for which `stop -t 1` then `rm` both succeed. Restart time: from starting the daemon to its first answer to /_ping."
        ),
        rows: vec![survived, running, manageable, restart],
    }])
}

fn kill_and_restart(e: &mut Engine, n: usize) -> Result<Outcome> {
    let names = make_containers(e, n, THREADS, Engine::start_sleeper)?;
    let pids = e.container_pids(&names)?;
    let starts: Vec<Option<u64>> = pids.iter().map(|p| procfs::start_time(*p)).collect();
    let daemon = e.private_daemon().context("no private daemon")?;
    daemon.kill()?;
    std::thread::sleep(Duration::from_millis(200));
    let survived = pids
        .iter()
        .zip(&starts)
        .filter(|(pid, start)| start.is_some_and(|s| procfs::is_alive(**pid, s)))
        .count();
    let restart_ms = ms(daemon.start().context("berthd did not come back")?);
    let running = e
        .inspect_each(&names, "{{.State.Running}}")?
        .iter()
        .filter(|l| l.as_str() == "true")
        .count();
    let managed = parallel_map(&names, THREADS, |name| {
        let ok = e.run_ok(&["stop", "-t", "1", name]).is_ok() && e.run_ok(&["rm", name]).is_ok();
        if ok {
            e.forget(std::slice::from_ref(name));
        }
        ok
    });
    let manageable = managed.iter().filter(|ok| **ok).count();
    let left: Vec<String> = names
        .iter()
        .zip(&managed)
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| n.clone())
        .collect();
    let _ = e.remove(&left);
    Ok(Outcome {
        survived,
        running,
        manageable,
        restart_ms,
    })
}
