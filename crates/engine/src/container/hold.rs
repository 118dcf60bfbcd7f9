//! Holding a container for an operation, and bringing it up to date when it is looked at.
//!
//! Every operation that changes a container's record holds the container: its in-process
//! `op` mutex and, where other processes share the data root, the store's lock on it. Once
//! held, the record is read again and whatever happened meanwhile is dealt with first (an
//! exit nobody recorded, a removal whose remover gave up or died), so no change is ever
//! based on a stale record.

use std::sync::Arc;

use super::store::{is_garbage, Locked};
use super::{Container, ContainerError, Status};
use crate::engine::Engine;
use crate::lock::FileLock;
use crate::Caller;

/// A hold on a container's lifecycle (see [`Engine::lock_op`]).
pub(crate) struct OpGuard<'a> {
    // Dropped first: other processes may go on once this process is done.
    _file: Option<FileLock>,
    _op: tokio::sync::MutexGuard<'a, ()>,
}

impl Engine {
    /// Takes a container for a lifecycle operation: the in-process mutex, then the store's
    /// lock, reading the record again under it. An exit that happened meanwhile is recorded
    /// before the guard is handed out, and a removal left half-done is finished (the
    /// container is then not found).
    pub(crate) async fn lock_op<'a>(
        &self,
        c: &'a Arc<Container>,
    ) -> Result<OpGuard<'a>, ContainerError> {
        let op = c.op.lock().await;
        match self.containers.lock(c, true).await? {
            Locked::Held(file) => self.settle(c, op, file).await,
            Locked::Busy | Locked::Gone => Err(self.gone(c)),
        }
    }

    /// [`Engine::lock_op`] if nobody holds the container right now; `None` if a task of
    /// this process (maybe the caller) or another process does. Never waits.
    pub(crate) async fn try_lock_op<'a>(
        &self,
        c: &'a Arc<Container>,
    ) -> Option<Result<OpGuard<'a>, ContainerError>> {
        let op = c.op.try_lock().ok()?;
        match self.containers.lock(c, false).await {
            Ok(Locked::Held(file)) => Some(self.settle(c, op, file).await),
            Ok(Locked::Busy) => None,
            Ok(Locked::Gone) => Some(Err(self.gone(c))),
            Err(e) => Some(Err(e)),
        }
    }

    fn gone(&self, c: &Arc<Container>) -> ContainerError {
        let _ = self.containers.sync(c);
        ContainerError::NotFound { id: c.id.clone() }
    }

    /// Under a fresh hold: reads the record again and deals with what happened meanwhile.
    async fn settle<'a>(
        &self,
        c: &'a Arc<Container>,
        op: tokio::sync::MutexGuard<'a, ()>,
        file: Option<FileLock>,
    ) -> Result<OpGuard<'a>, ContainerError> {
        let not_found = || ContainerError::NotFound { id: c.id.clone() };
        if !self.containers.sync(c)? {
            return Err(not_found());
        }
        let guard = OpGuard {
            _file: file,
            _op: op,
        };
        if matches!(c.snapshot().state.status, Status::Removing | Status::Dead) {
            // Its remover let go of it half-way (it failed, or its process died): finish.
            tracing::warn!(id = %c.id, "finishing the removal of a container whose remover gave up");
            Box::pin(self.remove_locked(&Caller::engine(), c, true)).await?;
            return Err(not_found());
        }
        self.refresh_locked(c).await;
        Ok(guard)
    }

    /// Brings a container up to date for a caller that does not hold it: re-reads its
    /// record if another process changed it; a running container whose shim is gone has
    /// exited, which is recorded under the container's lock; a removal left half-done is
    /// finished, and an exited auto-remove container is removed. Quick when there is
    /// nothing to do: one `stat`, and a look at a running container's shim.
    pub(crate) async fn refresh(&self, container: &Arc<Container>) {
        if !matches!(self.containers.sync(container), Ok(true)) {
            return;
        }
        let rec = container.snapshot();
        let exited = rec
            .state
            .processes
            .as_ref()
            .filter(|_| rec.state.status.is_running())
            .is_some_and(|p| !self.kernel.shim_alive(p));
        let half_removed = matches!(rec.state.status, Status::Removing | Status::Dead);
        if !exited && !half_removed && !is_garbage(&rec) {
            return;
        }
        // Taking the lock records the exit, or finishes the removal. If anyone holds the
        // container, leave it to them (it may be our caller).
        let Some(Ok(_op)) = Box::pin(self.try_lock_op(container)).await else {
            return;
        };
        if is_garbage(&container.snapshot()) {
            if let Err(e) = Box::pin(self.remove_locked(&Caller::engine(), container, true)).await {
                tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "auto-remove failed");
            }
        }
    }

    /// [`Engine::refresh`] for callers that hold the container: records an exit nobody
    /// recorded yet.
    pub(crate) async fn refresh_locked(&self, container: &Arc<Container>) {
        let rec = container.snapshot();
        if let Some(p) = rec
            .state
            .processes
            .as_ref()
            .filter(|_| rec.state.status.is_running())
        {
            if !self.kernel.shim_alive(p) {
                let p = p.clone();
                Box::pin(self.handle_exit(container, &p)).await;
            }
        }
    }
}
