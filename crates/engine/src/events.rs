//! Engine events: what happened to which object, when, and on whose behalf.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::broadcast;

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

/// The event bus: live subscribers plus a bounded history.
pub struct Events {
    live: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            live: broadcast::channel(1024).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }
}

impl Events {
    /// Records and broadcasts an event.
    pub fn emit(
        &self,
        caller: &Caller,
        kind: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let event = Event {
            kind,
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano: now_nanos(),
            caller: *caller,
        };
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
