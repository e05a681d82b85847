//! The UDP loop: who may ask (source address), the BlastRADIUS checks, the
//! retransmission cache, and one task per new Access-Request.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::codec::{self, MessageAuthenticator, Packet};
use super::{RadiusStats, access, bump};
use crate::AppState;
use crate::config::RadiusClientConfig;

/// Access-Requests handled at once; more are dropped (the client retries).
const MAX_IN_PROGRESS: usize = 1024;
/// Remembered requests (answered or in progress).
const CACHE_CAPACITY: usize = 4096;
/// How long a request is remembered: longer than the longest blocking wait
/// (120 s) plus a client's retries, so a late retransmission never starts a
/// second push.
const CACHE_TTL: Duration = Duration::from_secs(180);
/// How long the shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A request as the retransmission rules see it (RFC 5080 §2.2.2): same
/// source, Identifier and Request Authenticator.
type RequestKey = (SocketAddr, u8, [u8; 16]);

/// The answer of a request: `None` while in progress.
type Reply = Option<Arc<Vec<u8>>>;

/// Recent requests and their answers, bounded in count and age.
#[derive(Default)]
struct ReplyCache {
    /// Each request's answer, with the number of its place in `order`.
    entries: HashMap<RequestKey, (u64, watch::Receiver<Reply>)>,
    /// Requests in the order first seen: key, when, and a running number.
    order: VecDeque<(RequestKey, Instant, u64)>,
    /// The next running number.
    next: u64,
}

enum Seen {
    /// A new request; send its answer through this.
    New(watch::Sender<Reply>),
    /// A retransmission: its first copy's answer (or the wait for it).
    Again(watch::Receiver<Reply>),
}

impl ReplyCache {
    fn see(&mut self, key: RequestKey, now: Instant) -> Seen {
        while let Some((old, at, place)) = self.order.front() {
            if now.duration_since(*at) < CACHE_TTL && self.order.len() < CACHE_CAPACITY {
                break;
            }
            // A forgotten request seen again has a newer place: keep it.
            if self.entries.get(old).is_some_and(|(p, _)| p == place) {
                self.entries.remove(old);
            }
            self.order.pop_front();
        }
        if let Some((_, rx)) = self.entries.get(&key) {
            return Seen::Again(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        let place = self.next;
        self.next = self.next.wrapping_add(1);
        self.entries.insert(key, (place, rx));
        self.order.push_back((key, now, place));
        Seen::New(tx)
    }

    /// Forgets a request that got no answer through no fault of the client (an
    /// internal error), so its retransmission is handled afresh.
    fn forget(&mut self, key: &RequestKey) {
        self.entries.remove(key);
    }
}

/// Serves `socket` until `stop`.
pub(super) async fn serve(
    socket: UdpSocket,
    state: Arc<AppState>,
    clients: Vec<RadiusClientConfig>,
    stats: Arc<RadiusStats>,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let clients: Arc<[RadiusClientConfig]> = clients.into();
    let cache = Arc::new(Mutex::new(ReplyCache::default()));
    let permits = Arc::new(Semaphore::new(MAX_IN_PROGRESS));
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; codec::MAX_PACKET];
    loop {
        let (len, src) = tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(error = %e, "RADIUS receive failed");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
        let datagram = &buf[..len];
        let Some(index) = clients.iter().position(|c| c.address.contains(src.ip())) else {
            bump(&stats.unknown_client);
            tracing::debug!(%src, "RADIUS packet from an unknown client dropped");
            continue;
        };
        let client = &clients[index];
        let packet = match Packet::decode(datagram) {
            Ok(p) if p.code == codec::code::ACCESS_REQUEST => p,
            _ => {
                bump(&stats.malformed);
                tracing::debug!(%src, "RADIUS datagram is no well-formed Access-Request; dropped");
                continue;
            }
        };
        match codec::check_request_authenticator(datagram, client.secret.as_bytes()) {
            MessageAuthenticator::Valid => {}
            MessageAuthenticator::Missing if !client.require_message_authenticator => {
                bump(&stats.legacy_admitted);
                tracing::warn!(
                    %src,
                    "RADIUS Access-Request without Message-Authenticator admitted \
                     (require_message_authenticator = false; BlastRADIUS exposure)"
                );
            }
            MessageAuthenticator::Missing => {
                bump(&stats.missing_authenticator);
                tracing::debug!(%src, "RADIUS Access-Request without Message-Authenticator dropped");
                continue;
            }
            MessageAuthenticator::Invalid => {
                bump(&stats.bad_authenticator);
                tracing::debug!(
                    %src,
                    "RADIUS Message-Authenticator does not verify (wrong shared secret?); dropped"
                );
                continue;
            }
        }
        let key = (src, packet.identifier, packet.authenticator);
        let Ok(seen) = cache.lock().map(|mut c| c.see(key, Instant::now())) else {
            continue;
        };
        match seen {
            Seen::Again(mut rx) => {
                bump(&stats.retransmissions);
                // Waiting copies count against the same bound as new requests.
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    bump(&stats.overloaded);
                    continue;
                };
                let socket = socket.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    // The first copy's answer, once there is one (never a second push).
                    let reply = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|r| r.clone());
                    if let Some(bytes) = reply {
                        let _ = socket.send_to(&bytes, src).await;
                    }
                });
            }
            Seen::New(reply_tx) => {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    bump(&stats.overloaded);
                    let _ = cache.lock().map(|mut c| c.forget(&key));
                    continue;
                };
                let (socket, state, stats, cache) =
                    (socket.clone(), state.clone(), stats.clone(), cache.clone());
                let clients = clients.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    let Some(client) = clients.get(index) else {
                        return;
                    };
                    match access::answer(&state, client, &packet, src, &stats).await {
                        Some(bytes) => {
                            let bytes = Arc::new(bytes);
                            let _ = socket.send_to(&bytes, src).await;
                            let _ = reply_tx.send(Some(bytes));
                        }
                        None => {
                            let _ = cache.lock().map(|mut c| c.forget(&key));
                        }
                    }
                });
            }
        }
    }
    // Requests in progress see the shutdown flag (their waits end early).
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u16) -> RequestKey {
        let [hi, lo] = n.to_be_bytes();
        (SocketAddr::from(([127, 0, 0, 1], 1812)), lo, [hi; 16])
    }

    #[test]
    fn the_cache_remembers_forgets_and_stays_bounded() {
        let mut cache = ReplyCache::default();
        let t0 = Instant::now();
        let Seen::New(reply) = cache.see(key(1), t0) else {
            panic!("first copy is new")
        };
        let Seen::Again(rx) = cache.see(key(1), t0) else {
            panic!("second copy is a retransmission")
        };
        reply.send(Some(Arc::new(vec![1, 2, 3]))).unwrap();
        assert_eq!(rx.borrow().as_deref(), Some(&vec![1, 2, 3]));
        // Forgotten (no answer was sent): the next copy is handled afresh, and
        // its older place in the order does not evict it.
        cache.forget(&key(1));
        assert!(matches!(cache.see(key(1), t0), Seen::New(_)));
        // Full: the next request evicts the oldest place, the stale one of
        // the forgotten copy, which keeps the newer entry.
        for n in 2..u16::try_from(CACHE_CAPACITY).unwrap() {
            let _ = cache.see(key(n), t0);
        }
        assert_eq!(cache.order.len(), CACHE_CAPACITY);
        assert!(matches!(cache.see(key(1), t0), Seen::Again(_)), "kept");
        // Then the oldest real one goes.
        assert!(matches!(cache.see(key(9999), t0), Seen::New(_)));
        assert!(matches!(cache.see(key(1), t0), Seen::New(_)), "evicted");
        assert!(cache.entries.len() <= CACHE_CAPACITY);
        // Past the TTL everything old goes.
        let later = t0 + CACHE_TTL;
        assert!(matches!(cache.see(key(2), later), Seen::New(_)));
        assert_eq!(cache.entries.len(), 1);
    }
}
