//! What listings (`ps`, `info`) read: every container's record, newest first.
//!
//! An owned store has every record in memory. A shared one would have to open and parse
//! every record file for each `ps`; instead it keeps a cache, `<data-root>/list-cache.json`,
//! of what listings show of every record, with the [`Stamp`] of the file it came from, and
//! stats each record to know the entry is current.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{is_container_id, read_record, ContainerRecord, ContainerStore, Status, RECORD_FILE};
use crate::container::ContainerError;
use crate::engine::Engine;
use crate::kernel::Kernel;
use crate::store::{Sharing, Stamp};

/// The listing cache, `<data-root>/list-cache.json`: what listings show of every record as
/// a listing last read it, with the stamp of the file it came from. `ps` with many
/// containers then reads one small file and stats each record instead of opening and
/// parsing each one. An entry is only used while its record file still has that stamp, so
/// the cache can never be wrong, only stale: any listing that finds it stale writes a fresh
/// one (whole, by rename; two listings writing at once leave either one, both valid).
pub(super) const LIST_CACHE: &str = "list-cache.json";

#[derive(Serialize, Deserialize)]
pub(super) struct Listed {
    stamp: Stamp,
    record: ListedRecord,
}

/// The parts of a record that listings (`ps`, its filters, `info`) and their refresh read:
/// the configuration is left out, which is most of a record. `listed_records_list_as_their_
/// records_do` checks a listing of these shows what one of the whole records would.
#[derive(Clone, Serialize, Deserialize)]
struct ListedRecord {
    id: String,
    name: String,
    created: String,
    image_id: String,
    image_name: String,
    path: String,
    args: Vec<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    network_mode: String,
    auto_remove: bool,
    state: crate::container::RunState,
}

impl From<&ContainerRecord> for ListedRecord {
    fn from(r: &ContainerRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            created: r.created.clone(),
            image_id: r.image_id.clone(),
            image_name: r.image_name.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            labels: r.config.labels.clone(),
            network_mode: r.host_config.network_mode.clone(),
            auto_remove: r.host_config.auto_remove,
            state: r.state.clone(),
        }
    }
}

impl ListedRecord {
    /// A record with what listings read, and defaults for the rest.
    fn into_record(self) -> ContainerRecord {
        ContainerRecord {
            id: self.id,
            name: self.name,
            created: self.created,
            image_id: self.image_id,
            image_name: self.image_name,
            config: api_types::ContainerConfig {
                labels: self.labels,
                ..Default::default()
            },
            host_config: api_types::HostConfig {
                network_mode: self.network_mode,
                auto_remove: self.auto_remove,
                ..Default::default()
            },
            path: self.path,
            args: self.args,
            layers: Vec::new(),
            state: self.state,
            restart_count: 0,
            created_by_uid: 0,
            manually_stopped: false,
        }
    }
}

/// What a listing found of one container.
enum Seen {
    /// Its cache entry (by index) is current and needs nothing.
    Cached(usize),
    /// Its record, read again (new or changed) and needing nothing.
    Read(Box<Listed>),
    /// It needs its lock: an exit nobody recorded, an auto-remove, a half-done removal.
    NeedsLock(Stamp),
    /// A directory without a record.
    NoRecord,
    Unreadable(ContainerError),
}

/// Looks at one container for a listing (no locks, no async: run on any thread).
fn check_listed(
    kernel: &dyn Kernel,
    dir: &std::fs::File,
    root: &Path,
    id: &str,
    cached: Option<(usize, &Listed)>,
) -> Seen {
    let Some(stamp) = Stamp::at(dir, &format!("{id}/{RECORD_FILE}")) else {
        return Seen::NoRecord;
    };
    let (seen, rec) = match cached {
        Some((n, l)) if l.stamp == stamp => (Seen::Cached(n), &l.record),
        _ => match read_record(&root.join(id)) {
            Ok(Some((record, stamp))) => {
                let l = Box::new(Listed {
                    stamp,
                    record: ListedRecord::from(&record),
                });
                return settle(kernel, Seen::Read(l));
            }
            Ok(None) => return Seen::NoRecord,
            Err(e) => return Seen::Unreadable(e),
        },
    };
    if needs_lock(kernel, rec) {
        return Seen::NeedsLock(stamp);
    }
    seen
}

/// A freshly read record that needs its lock says so.
fn settle(kernel: &dyn Kernel, seen: Seen) -> Seen {
    match seen {
        Seen::Read(l) if needs_lock(kernel, &l.record) => Seen::NeedsLock(l.stamp),
        other => other,
    }
}

/// Whether a listing must take a container's lock to show it truly (see
/// [`Engine::refresh`]).
fn needs_lock(kernel: &dyn Kernel, rec: &ListedRecord) -> bool {
    let exited = rec
        .state
        .processes
        .as_ref()
        .filter(|_| rec.state.status.is_running())
        .is_some_and(|p| !kernel.shim_alive(p));
    exited
        || matches!(rec.state.status, Status::Removing | Status::Dead)
        || (rec.auto_remove && rec.state.status == Status::Exited)
}

impl ContainerStore {
    /// Every container's record, up to date, newest first. An owned store's records are
    /// current (its engine watches every shim); a shared store deals with a running
    /// container whose shim is gone, an auto-remove container that exited and a half-done
    /// removal as [`Engine::refresh`] does, on the way (so they may be gone).
    pub(crate) async fn listing(&self, engine: &Engine) -> Vec<ContainerRecord> {
        let mut recs = match self.sharing {
            Sharing::Owned => self.all().iter().map(|c| c.snapshot()).collect(),
            Sharing::Shared => self.listing_from_cache(engine).await,
        };
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        recs
    }

    /// Every container's record, up to date (daemonless listings: `ps`, `info`), newest
    /// first. Records come from the listing cache when their file has not changed since; a
    /// running container whose shim is gone, an auto-remove container that exited and a
    /// half-done removal are dealt with as [`Engine::refresh`] does (so they may be gone).
    async fn listing_from_cache(&self, engine: &Engine) -> Vec<ContainerRecord> {
        let root = self.dir();
        let cache_path = self.data_root.join(LIST_CACHE);
        let mut cached: Vec<Option<Listed>> = std::fs::read(&cache_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Listed>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        let by_id: HashMap<String, usize> = cached
            .iter()
            .enumerate()
            .filter_map(|(n, l)| l.as_ref().map(|l| (l.record.id.clone(), n)))
            .collect();
        let (Ok(dir), Ok(rd)) = (std::fs::File::open(&root), std::fs::read_dir(&root)) else {
            return Vec::new();
        };
        let ids: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|id| is_container_id(id))
            .collect();
        // What each container needs: a stat of its record and, running, a look at its shim.
        // Independent system calls, so spread over the CPUs.
        let seen: Vec<Seen> = {
            let kernel = &*engine.kernel;
            let check = |id: &String| {
                check_listed(
                    kernel,
                    &dir,
                    &root,
                    id,
                    by_id
                        .get(id)
                        .and_then(|&n| cached[n].as_ref())
                        .map(|l| (by_id[id], l)),
                )
            };
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4);
            let chunk = ids.len().div_ceil(threads).max(64);
            if ids.len() <= chunk {
                ids.iter().map(check).collect()
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = ids
                        .chunks(chunk)
                        .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
                        .collect();
                    handles
                        .into_iter()
                        .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                        .collect()
                })
            }
        };
        let mut fresh: Vec<Listed> = Vec::with_capacity(ids.len());
        let mut stale = cached.len() != ids.len();
        let mut without_record = Vec::new();
        for (id, seen) in ids.iter().zip(seen) {
            match seen {
                Seen::Cached(n) => {
                    if let Some(l) = cached[n].take() {
                        fresh.push(l);
                    }
                }
                Seen::Read(l) => {
                    stale = true;
                    fresh.push(*l);
                }
                Seen::NoRecord => without_record.push(id.clone()),
                Seen::Unreadable(e) => {
                    stale = true;
                    tracing::warn!(id, error = %crate::error::Chain(&e), "skipping a container whose state cannot be read");
                }
                Seen::NeedsLock(stamp) => {
                    // The full way, under its lock, then whatever it became.
                    stale = true;
                    let Ok(Some(c)) = self.load(id) else {
                        continue;
                    };
                    engine.refresh(&c).await;
                    if c.lifecycle.borrow().removed {
                        continue;
                    }
                    let stamp = c
                        .stamp
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .unwrap_or(stamp);
                    fresh.push(Listed {
                        stamp,
                        record: ListedRecord::from(&c.snapshot()),
                    });
                }
            }
        }
        self.remove_unfinished_creates(&without_record);
        // Newest first, as listings show them, moving each record once.
        let mut order: Vec<usize> = (0..fresh.len()).collect();
        order.sort_by(|&a, &b| fresh[b].record.created.cmp(&fresh[a].record.created));
        let mut slots: Vec<Option<Listed>> = fresh.into_iter().map(Some).collect();
        let fresh: Vec<Listed> = order.iter().filter_map(|&i| slots[i].take()).collect();
        if stale {
            // Best effort: a listing that cannot write the cache is only slower next time.
            if let Ok(bytes) = serde_json::to_vec(&fresh) {
                let tmp = self
                    .data_root
                    .join(format!(".{LIST_CACHE}.{}", std::process::id()));
                if std::fs::write(&tmp, bytes).is_ok()
                    && std::fs::rename(&tmp, &cache_path).is_err()
                {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        fresh.into_iter().map(|l| l.record.into_record()).collect()
    }
}
