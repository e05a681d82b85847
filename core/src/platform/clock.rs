//! Wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

use super::HookError;

/// The device's wall clock, in unix seconds.
///
/// Threading: called from any thread, often; must be cheap and non-blocking. The
/// core does not trust it for challenge expiry on its own: it corrects it with an
/// offset estimated from the server's signed timestamps.
pub trait Clock: Send + Sync {
    /// Seconds since the unix epoch.
    fn now(&self) -> Result<u64, HookError>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Result<u64, HookError> {
        // A clock before 1970 reads as 0: every expiry check then fails closed.
        Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0))
    }
}
