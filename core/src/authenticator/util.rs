//! Small async helpers that need no runtime: a cancel handle, a cancellable
//! wait, and "first non-empty result or all done" over several futures.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// Cancels a long-running call (a long-poll). Cloneable; cancelling any clone
/// cancels every call that was given one. A cancelled handle stays cancelled.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for CancelHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelHandle {
    /// A fresh, not cancelled handle.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Cancels: calls waiting with this handle return [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Runs `fut` unless `cancel` fires first.
pub(crate) async fn with_cancel<F: Future>(fut: F, cancel: &CancelHandle) -> Result<F::Output> {
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let mut fut = pin!(fut);
    let mut stop = pin!(cancel.cancelled());
    poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Error::Cancelled));
        }
        fut.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// Polls all futures together; returns as soon as one yields a value `done`
/// calls decisive (its results so far, the others dropped), or when all finished.
pub(crate) async fn first_decisive<F, T>(futs: Vec<F>, decisive: impl Fn(&T) -> bool) -> Vec<T>
where
    F: Future<Output = T>,
{
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut all = true;
        let mut stop = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    stop |= decisive(&v);
                    *o = Some(v);
                }
                Poll::Pending => all = false,
            }
        }
        if all || stop {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancel_stops_a_pending_future() {
        let c = CancelHandle::new();
        let c2 = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            c2.cancel();
        });
        let r = with_cancel(std::future::pending::<()>(), &c).await;
        assert_eq!(r, Err(Error::Cancelled));
        assert!(c.is_cancelled());
        assert_eq!(with_cancel(async { 1 }, &c).await, Err(Error::Cancelled));
        assert_eq!(with_cancel(async { 1 }, &CancelHandle::new()).await, Ok(1));
    }

    #[tokio::test]
    async fn first_decisive_returns_early() {
        let slow = Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            0
        }) as Pin<Box<dyn Future<Output = i32> + Send>>;
        let fast = Box::pin(async { 7 }) as Pin<Box<dyn Future<Output = i32> + Send>>;
        let got = first_decisive(vec![slow, fast], |v| *v > 0).await;
        assert_eq!(got, vec![7]);
        let zero = |_| async { 0 };
        let all = first_decisive(vec![zero(1), zero(2)], |v: &i32| *v > 0).await;
        assert_eq!(all, vec![0, 0]);
    }
}
