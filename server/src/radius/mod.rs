//! The RADIUS front (RFC 2865, issue 14): VPN concentrators and network devices
//! sign users in with PAP Access-Requests; the second factor is a push to the
//! user's phone or a code, checked by the same services as the RP API.
//!
//! - [`codec`]: the wire format, Message-Authenticator (RFC 3579) and PAP.
//! - `listener`: the UDP socket, client lookup by source address, the
//!   BlastRADIUS checks, and the retransmission cache.
//! - `access`: what an Access-Request asks and how it is answered (push,
//!   code, static password, blocking or challenge mode).
//!
//! BlastRADIUS (CVE-2024-3596): like FreeRADIUS 3.2's
//! `require_message_authenticator = yes`, an Access-Request without a valid
//! Message-Authenticator is dropped without an answer (and counted), unless
//! the client's legacy switch admits requests without one (each logged as a
//! warning). Every answer carries Message-Authenticator as its first
//! attribute, so a forged answer cannot be spliced from a chosen-prefix MD5
//! collision. A wrong shared secret fails that check, so it gets no answer.

mod access;
pub mod codec;
mod listener;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::config::RadiusConfig;

/// Counters of the RADIUS front (also in the logs at debug level).
#[derive(Debug, Default)]
pub struct RadiusStats {
    unknown_client: AtomicU64,
    malformed: AtomicU64,
    bad_authenticator: AtomicU64,
    missing_authenticator: AtomicU64,
    legacy_admitted: AtomicU64,
    retransmissions: AtomicU64,
    overloaded: AtomicU64,
    accepts: AtomicU64,
    rejects: AtomicU64,
    challenges: AtomicU64,
}

/// A snapshot of [`RadiusStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RadiusCounters {
    /// Datagrams from addresses that are no configured client (dropped).
    pub unknown_client: u64,
    /// Datagrams that are no well-formed Access-Request (dropped).
    pub malformed: u64,
    /// Access-Requests whose Message-Authenticator does not verify, as with a
    /// wrong shared secret (dropped).
    pub bad_authenticator: u64,
    /// Access-Requests without Message-Authenticator from clients that require
    /// it (dropped).
    pub missing_authenticator: u64,
    /// Access-Requests without Message-Authenticator admitted by the legacy switch.
    pub legacy_admitted: u64,
    /// Retransmissions answered from the cache (or with the first copy's answer).
    pub retransmissions: u64,
    /// Access-Requests dropped because too many were in progress.
    pub overloaded: u64,
    /// Access-Accepts sent.
    pub accepts: u64,
    /// Access-Rejects sent.
    pub rejects: u64,
    /// Access-Challenges sent.
    pub challenges: u64,
}

impl RadiusCounters {
    /// Every datagram dropped without an answer.
    pub fn dropped(&self) -> u64 {
        self.unknown_client
            + self.malformed
            + self.bad_authenticator
            + self.missing_authenticator
            + self.overloaded
    }
}

impl RadiusStats {
    /// The counters now.
    pub fn snapshot(&self) -> RadiusCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RadiusCounters {
            unknown_client: get(&self.unknown_client),
            malformed: get(&self.malformed),
            bad_authenticator: get(&self.bad_authenticator),
            missing_authenticator: get(&self.missing_authenticator),
            legacy_admitted: get(&self.legacy_admitted),
            retransmissions: get(&self.retransmissions),
            overloaded: get(&self.overloaded),
            accepts: get(&self.accepts),
            rejects: get(&self.rejects),
            challenges: get(&self.challenges),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A running RADIUS listener.
#[derive(Debug)]
pub struct Radius {
    addr: SocketAddr,
    stats: Arc<RadiusStats>,
    task: JoinHandle<()>,
}

impl Radius {
    /// Binds `config.listen` and serves until `stop` turns `true`.
    pub async fn start(
        state: Arc<AppState>,
        config: &RadiusConfig,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(config.listen).await?;
        let addr = socket.local_addr()?;
        // Kept by the metrics, so `/metrics` renders them.
        let stats = state.metrics.radius.clone();
        let task = tokio::spawn(listener::serve(
            socket,
            state,
            config.clients.clone(),
            stats.clone(),
            stop,
        ));
        tracing::info!(%addr, clients = config.clients.len(), "RADIUS listening");
        Ok(Self { addr, stats, task })
    }

    /// The bound UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters.
    pub fn counters(&self) -> RadiusCounters {
        self.stats.snapshot()
    }

    /// Waits for the listener (after the stop signal) and its requests in progress.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}
