//! Engine events: what happened to which object, when, and on whose behalf.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_types::filters::Filters;
use api_types::{EventActor, EventMessage};
use tokio::sync::{mpsc, watch};

use crate::journal::Journal;
use crate::store::Sharing;
use crate::Caller;

/// One event. The transports turn it into Docker's event message.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `container` or `image`.
    pub kind: &'static str,
    /// `create`, `start`, `die`, `destroy`, `load`, `tag`, …
    pub action: String,
    /// The object's id.
    pub id: String,
    /// Attributes Docker reports (`name`, `image`, `exitCode`, labels).
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the Unix epoch.
    pub time_nano: i64,
    /// Who caused it.
    pub caller: Caller,
}

impl Event {
    /// Whether the event passes `docker events --filter` filters (`type`, `event`,
    /// `container`, `image`, `label`).
    pub fn matches(&self, filters: &Filters) -> bool {
        let ok = |name: &str, v: &str| {
            let want = filters.get(name);
            want.is_empty() || want.iter().any(|w| w == v)
        };
        let label_ok = filters
            .get("label")
            .iter()
            .all(|l| match l.split_once('=') {
                Some((k, v)) => self.attributes.get(k).is_some_and(|x| x == v),
                None => self.attributes.contains_key(l.as_str()),
            });
        let name = self
            .attributes
            .get("name")
            .map(String::as_str)
            .unwrap_or("");
        let image = self
            .attributes
            .get("image")
            .map(String::as_str)
            .unwrap_or("");
        ok("type", self.kind)
            && ok("event", &self.action)
            && (filters.get("container").is_empty()
                || (self.kind == "container"
                    && filters
                        .get("container")
                        .iter()
                        .any(|c| self.id.starts_with(c.as_str()) || c == name)))
            && (filters.get("image").is_empty()
                || filters.get("image").iter().any(|i| {
                    i == image
                        || (self.kind == "image" && (self.id.contains(i.as_str()) || i == name))
                }))
            && label_ok
    }

    /// The event as Docker's API sends it.
    pub fn to_message(&self) -> EventMessage {
        let container = self.kind == "container";
        EventMessage {
            status: container.then(|| self.action.clone()),
            id: container.then(|| self.id.clone()),
            from: container.then(|| self.attributes.get("image").cloned().unwrap_or_default()),
            kind: self.kind.to_string(),
            action: self.action.clone(),
            actor: EventActor {
                id: self.id.clone(),
                attributes: self.attributes.clone(),
            },
            scope: "local".into(),
            time: self.time_nano / 1_000_000_000,
            time_nano: self.time_nano,
        }
    }
}

/// The event bus. Every event is appended to the data root's journal
/// ([`crate::journal`]), and the journal is the one source subscribers read, in both of the
/// engine's modes: a subscription is the journal's events since a time, then each new line
/// as it is appended. So `since` reaches as far back as the journal holds, filters and
/// `until` behave the same with and without berthd, and a subscriber that falls behind
/// (its client reads slowly) simply reads on from where it was, losing nothing and slowing
/// nobody else.
///
/// Where one process owns the root ([`Sharing::Owned`], berthd) it appends every line
/// itself, so subscribers are woken as soon as a line is written; where processes share
/// it (daemonless), they look for new lines every 50 ms.
pub struct Events {
    journal: Journal,
    sharing: Sharing,
    /// Bumped after every append, to wake this process's subscribers.
    appended: watch::Sender<u64>,
    listeners: Arc<AtomicUsize>,
}

/// How often a subscriber looks for lines other processes appended.
const LOOK_EVERY: Duration = Duration::from_millis(50);
/// Where this process appends every line itself, it looks anyway now and then.
const LOOK_OWNED: Duration = Duration::from_secs(1);

impl Events {
    /// The bus of a data root whose journal is `journal`, used as `sharing` says.
    pub fn new(journal: Journal, sharing: Sharing) -> Self {
        Self {
            journal,
            sharing,
            appended: watch::channel(0).0,
            listeners: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The journal events are appended to.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Records an event that happens now.
    pub fn emit(
        &self,
        caller: &Caller,
        kind: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        self.emit_at(caller, kind, action, id, attributes, now_nanos());
    }

    /// Records an event that happened at `time_nano` (an exit noticed late).
    pub fn emit_at(
        &self,
        caller: &Caller,
        kind: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
        time_nano: i64,
    ) {
        let event = Event {
            kind,
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano,
            caller: *caller,
        };
        if let Err(e) = self.journal.append(&event) {
            tracing::warn!(error = %crate::error::Chain(&e), "cannot append an event to the journal");
        }
        tracing::debug!(
            kind,
            action,
            id,
            uid = caller.uid,
            pid = caller.pid,
            "event"
        );
        self.appended.send_modify(|n| *n += 1);
    }

    /// The events since `since_nano` (none without it), then each one recorded from now
    /// on, until `until_nano` has passed (or for ever), that `filters` let through; the
    /// stream ends when the receiver is dropped. A receiver that reads slowly holds back
    /// nobody but itself.
    pub fn subscribe(
        &self,
        since_nano: Option<i64>,
        until_nano: Option<i64>,
        filters: Filters,
    ) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(64);
        // The cut is now: every event recorded from here on reaches the subscriber.
        let mut appended = self.appended.subscribe();
        appended.borrow_and_update();
        let (past, mut follower) = self.journal.cut(since_nano);
        let look_every = match self.sharing {
            Sharing::Owned => LOOK_OWNED,
            Sharing::Shared => LOOK_EVERY,
        };
        let listener = Listener::new(&self.listeners);
        tokio::spawn(async move {
            let _listener = listener;
            let wanted =
                |e: &Event| e.matches(&filters) && until_nano.is_none_or(|u| e.time_nano <= u);
            // Reading what is there may take a moment (up to the journal's bound).
            let Ok(past) = tokio::task::spawn_blocking(move || past.read()).await else {
                return;
            };
            for e in past.into_iter().filter(|e| wanted(e)) {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            loop {
                let now = now_nanos();
                if until_nano.is_some_and(|u| now > u) {
                    return;
                }
                // New lines are a read of a few hundred bytes from the page cache.
                for e in follower.read_new().into_iter().filter(|e| wanted(e)) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                let step = until_nano
                    .map_or(
                        look_every,
                        |u| Duration::from_nanos((u - now).max(0) as u64),
                    )
                    .min(look_every);
                tokio::select! {
                    _ = tx.closed() => return,
                    changed = appended.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(step) => {}
                }
            }
        });
        rx
    }

    /// The number of live subscribers (`NEventsListener` in info).
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Relaxed)
    }
}

/// Counts a subscriber for as long as it lives.
struct Listener(Arc<AtomicUsize>);

impl Listener {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(dir: &std::path::Path, sharing: Sharing) -> Events {
        Events::new(
            crate::journal::Journal::in_dir(dir, 32 * 1024).unwrap(),
            sharing,
        )
    }

    async fn next(rx: &mut mpsc::Receiver<Event>) -> String {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .action
    }

    #[tokio::test]
    async fn subscribers_get_the_past_then_live_events() {
        let dir = tempfile::tempdir().unwrap();
        let ev = bus(dir.path(), Sharing::Owned);
        let c = Caller::engine();
        ev.emit(&c, "container", "create", "a", BTreeMap::new());
        let mut from_start = ev.subscribe(Some(0), None, Filters::default());
        let mut live = ev.subscribe(None, None, Filters::default());
        assert_eq!(next(&mut from_start).await, "create");
        ev.emit(&c, "container", "start", "a", BTreeMap::new());
        assert_eq!(next(&mut from_start).await, "start");
        assert_eq!(next(&mut live).await, "start");
        assert_eq!(ev.listeners(), 2);
        drop(live);
    }

    /// A subscriber that does not read while thousands of events pass (across journal
    /// rotations) gets every one of them when it reads again, and holds nobody back.
    #[tokio::test]
    async fn a_slow_subscriber_is_caught_up_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let ev = bus(dir.path(), Sharing::Owned);
        let c = Caller::engine();
        let mut slow = ev.subscribe(None, None, Filters::default());
        let mut quick = ev.subscribe(None, None, Filters::default());
        // Far more than a subscriber's buffer, enough to rotate the 32 KiB journal, but not
        // past both of its files.
        for n in 0..400 {
            ev.emit(&c, "container", &format!("a{n}"), "x", BTreeMap::new());
            assert_eq!(next(&mut quick).await, format!("a{n}"));
        }
        assert!(
            dir.path().join("events.jsonl.1").exists(),
            "the journal rotated"
        );
        for n in 0..400 {
            assert_eq!(next(&mut slow).await, format!("a{n}"));
        }
    }

    /// Daemonless: events another process appends reach a subscriber too.
    #[tokio::test]
    async fn shared_subscribers_see_other_processes_events() {
        let dir = tempfile::tempdir().unwrap();
        let mine = bus(dir.path(), Sharing::Shared);
        let theirs = bus(dir.path(), Sharing::Shared);
        let mut rx = mine.subscribe(None, None, Filters::default());
        tokio::time::sleep(Duration::from_millis(100)).await;
        theirs.emit(&Caller::engine(), "container", "die", "b", BTreeMap::new());
        assert_eq!(next(&mut rx).await, "die");
    }

    #[tokio::test]
    async fn until_ends_the_stream_and_filters_apply_to_the_past() {
        let dir = tempfile::tempdir().unwrap();
        let ev = bus(dir.path(), Sharing::Owned);
        let c = Caller::engine();
        ev.emit(&c, "container", "create", "a", BTreeMap::new());
        ev.emit(&c, "image", "tag", "i", BTreeMap::new());
        let filters = Filters::parse(r#"{"type":{"image":true}}"#).unwrap();
        let mut rx = ev.subscribe(Some(0), Some(now_nanos()), filters);
        assert_eq!(next(&mut rx).await, "tag");
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(end, Ok(None)), "the stream ends after until");
    }
}
