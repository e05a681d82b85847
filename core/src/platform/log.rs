//! Logging hook.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Detailed flow.
    Debug,
    /// Normal events (activation, answers).
    Info,
    /// Something was rejected (tampered challenge, wrong PIN).
    Warn,
    /// A local failure (storage, internal).
    Error,
}

/// Receives the core's log lines.
///
/// The core never logs secrets, OTPs, PINs, challenge contents or keys: only
/// events, account ids and error kinds. Threading: called from any thread, never
/// while the core holds a lock; must not block for long and must not call back
/// into the core.
pub trait Logger: Send + Sync {
    /// One log line.
    fn log(&self, level: LogLevel, message: &str);
}

/// Discards everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopLogger;

impl Logger for NoopLogger {
    fn log(&self, _level: LogLevel, _message: &str) {}
}
