//! Wake-ups for long-polls. Waiters subscribe to an in-process broadcast channel;
//! nothing holds a database connection or a thread while it waits. On PostgreSQL
//! every event is also sent with `NOTIFY`, and a listener task forwards other
//! instances' events into the local channel, so a long-poll on instance A wakes
//! when instance B records an answer.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{Backend, Db};

/// The PostgreSQL channel name.
pub const PG_CHANNEL: &str = "countersign";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A challenge changed state (answered, expired).
    Challenge(String),
    /// A device has something new to fetch (a challenge, a removal).
    Device(String),
}

impl Event {
    fn encode(&self) -> String {
        match self {
            Self::Challenge(id) => format!("c:{id}"),
            Self::Device(id) => format!("d:{id}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        if let Some(id) = s.strip_prefix("c:") {
            Some(Self::Challenge(id.to_string()))
        } else {
            s.strip_prefix("d:").map(|id| Self::Device(id.to_string()))
        }
    }
}

/// Publishes events and lets long-polls wait for them.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: broadcast::Sender<Event>,
    db: Db,
}

impl Notifier {
    /// A notifier; on PostgreSQL also starts the LISTEN task (returned so the
    /// server can stop it at shutdown).
    pub async fn start(db: Db) -> Result<(Self, Option<JoinHandle<()>>), sqlx::Error> {
        let (tx, _) = broadcast::channel(1024);
        let task = if db.backend == Backend::Postgres {
            let mut listener = sqlx::postgres::PgListener::connect(db.url()).await?;
            listener.listen(PG_CHANNEL).await?;
            let tx = tx.clone();
            Some(tokio::spawn(async move {
                loop {
                    // `recv` reconnects by itself; events missed meanwhile are caught by
                    // the waiters' periodic re-check.
                    match listener.recv().await {
                        Ok(n) => {
                            if let Some(event) = Event::decode(n.payload()) {
                                let _ = tx.send(event);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }))
        } else {
            None
        };
        Ok((Self { tx, db }, task))
    }

    /// Announces an event to local waiters and, on PostgreSQL, to other instances.
    pub async fn publish(&self, event: Event) {
        let _ = self.tx.send(event.clone());
        if self.db.backend == Backend::Postgres {
            let r = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(PG_CHANNEL)
                .bind(event.encode())
                .execute(&self.db.pool)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "NOTIFY failed");
            }
        }
    }

    /// Subscribes; subscribe *before* checking the database so no event is lost
    /// between the check and the wait.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// Waits until `rx` yields `wanted` (or lags, or `max` passes). Returns `true` when
/// the caller should re-check the database, `false` on timeout.
pub async fn wait_for(rx: &mut broadcast::Receiver<Event>, wanted: &Event, max: Duration) -> bool {
    wait_for_any(rx, |ev| ev == wanted, max).await
}

/// Waits until `rx` yields an event `wanted` accepts (or lags, or `max`
/// passes). Returns `true` when the caller should re-check the database,
/// `false` on timeout.
pub async fn wait_for_any(
    rx: &mut broadcast::Receiver<Event>,
    wanted: impl Fn(&Event) -> bool,
    max: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return false,
            Ok(Ok(ev)) if wanted(&ev) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => return true,
            Ok(Err(broadcast::error::RecvError::Closed)) => return false,
        }
    }
}
