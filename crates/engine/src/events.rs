//! Engine events: what happened to which object, when, and on whose behalf.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use api_types::filters::Filters;
use api_types::{EventActor, EventMessage};
use tokio::sync::broadcast;

use crate::journal::Journal;
use crate::Caller;

/// How many past events are kept for `since` queries.
const HISTORY: usize = 1024;

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

/// The event bus: live subscribers plus a bounded history, and the journal on disk that
/// other processes on the same data root read.
pub struct Events {
    live: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
    journal: Option<Journal>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            live: broadcast::channel(1024).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            journal: None,
        }
    }
}

impl Events {
    /// A bus that also appends every event to `journal`.
    pub fn with_journal(journal: Journal) -> Self {
        Self {
            journal: Some(journal),
            ..Self::default()
        }
    }

    /// The journal events are appended to, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Records and broadcasts an event that happens now.
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

    /// Records and broadcasts an event that happened at `time_nano` (an exit noticed late).
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
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.append(&event) {
                tracing::warn!(error = %e, "cannot append an event to the journal");
            }
        }
        tracing::debug!(
            kind,
            action,
            id,
            uid = caller.uid,
            pid = caller.pid,
            "event"
        );
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event.clone());
        }
        let _ = self.live.send(event);
    }

    /// Subscribes to live events, returning the recorded events since `since_nano` too.
    /// Subscribing before copying the history means no event falls between the two.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let rx = self.live.subscribe();
        let past = match since_nano {
            Some(since) => self
                .history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|e| e.time_nano >= since)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (past, rx)
    }

    /// The number of live subscribers (`NEventsListener` in info).
    pub fn listeners(&self) -> usize {
        self.live.receiver_count()
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

    #[tokio::test]
    async fn subscribers_get_history_and_live_events() {
        let ev = Events::default();
        let c = Caller::engine();
        ev.emit(&c, "container", "create", "a", BTreeMap::new());
        let (past, mut rx) = ev.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        ev.emit(&c, "container", "start", "a", BTreeMap::new());
        assert_eq!(rx.recv().await.unwrap().action, "start");
        let (past, _) = ev.subscribe(None);
        assert!(past.is_empty());
    }
}
