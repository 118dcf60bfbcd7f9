//! `wait`: block until a container reaches a condition, reporting its exit code.

use std::future::Future;
use std::pin::Pin;

use api_types::{WaitError, WaitResponse};

use super::{ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::Caller;

/// What a waiter waits for (`condition=` of `POST /containers/{id}/wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Until it is not running (returns at once if it is not).
    NotRunning,
    /// Until it next exits.
    NextExit,
    /// Until it is removed.
    Removed,
}

impl WaitCondition {
    /// Parses the query value; empty means `not-running`.
    pub fn parse(text: &str) -> Result<Self, ContainerError> {
        match text {
            "" | "not-running" => Ok(Self::NotRunning),
            "next-exit" => Ok(Self::NextExit),
            "removed" => Ok(Self::Removed),
            _ => Err(ContainerError::InvalidCondition {
                condition: text.to_string(),
            }),
        }
    }

    /// The API's name of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRunning => "not-running",
            Self::NextExit => "next-exit",
            Self::Removed => "removed",
        }
    }
}

/// The pending result of a wait.
pub type WaitFuture = Pin<Box<dyn Future<Output = WaitResponse> + Send>>;

impl Engine {
    /// Looks the container up now (so a missing one fails before anything is sent) and
    /// returns a future that resolves when the condition is met.
    pub async fn wait_container(
        &self,
        _caller: &Caller,
        name: &str,
        condition: WaitCondition,
    ) -> Result<WaitFuture, EngineError> {
        let container = self.find(name)?;
        self.refresh(&container).await;
        let mut rx = container.lifecycle.subscribe();
        let start = *rx.borrow_and_update();
        let engine = self.self_arc();
        Ok(Box::pin(async move {
            loop {
                let now = *rx.borrow_and_update();
                let done = match condition {
                    WaitCondition::NotRunning => {
                        !now.status.is_running() && now.status != Status::Removing
                    }
                    WaitCondition::NextExit => now.exits > start.exits,
                    WaitCondition::Removed => now.removed,
                };
                if done || (now.removed && condition != WaitCondition::Removed) {
                    return WaitResponse {
                        error: None,
                        status_code: now.exit_code,
                    };
                }
                let more = match &engine {
                    Some(engine) => engine.news(&container, &mut rx, false).await,
                    None => false,
                };
                if !more {
                    return WaitResponse {
                        error: Some(WaitError {
                            message: "the engine stopped".into(),
                        }),
                        status_code: -1,
                    };
                }
            }
        }))
    }
}
