//! A worker process (`countersign-bench worker`): simulated devices and the
//! relying party, driving logins over loopback HTTP.
//!
//! The coordinator writes one JSON line per command on stdin and reads one JSON
//! line per answer on stdout: first a [`Setup`] (answered `{"ready":..}` once
//! every device is enrolled), then [`Command`]s, each answered by a [`Outcome`].
//! While a pass runs, `{"progress":N}` lines report finished logins every second.
//! Workers are separate processes so the driver's CPU never hides in the
//! server's, and a stuck driver cannot stall the coordinator's clock.

use std::io::{BufRead, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::peer::Phone;
use crate::{countersign, peer};

/// What a worker drives and with which devices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Setup {
    /// A Countersign server: enrolls one device per user over HTTP.
    Countersign {
        /// `http://127.0.0.1:PORT`.
        base: String,
        /// The relying party's API key.
        api_key: String,
        /// The users, one device each.
        users: Vec<String>,
    },
    /// privacyIDEA: the phones were enrolled by the coordinator.
    Privacyidea {
        /// `http://127.0.0.1:PORT`.
        base: String,
        /// The enrolled phones (user, serial, key).
        phones: Vec<Phone>,
    },
}

/// One pass.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Closed loop: every device logs in again as soon as its last login ended,
    /// until `logins` logins started (when given) or `secs` passed.
    Closed {
        /// Stop after this many logins (this worker's share).
        logins: Option<u64>,
        /// Stop starting logins after this long.
        secs: Option<f64>,
    },
    /// Open loop: logins start at a fixed `rate` (per second, this worker's
    /// share) for `secs`; a login's latency counts from its scheduled start.
    Open {
        /// Logins started per second.
        rate: f64,
        /// How long.
        secs: f64,
    },
    /// Exit.
    Quit,
}

/// What a pass measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Latency of every approved login, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Logins that failed.
    pub errors: u64,
    /// The first failure's description.
    pub first_error: Option<String>,
    /// Wall time of the pass, seconds.
    pub wall_secs: f64,
    /// This worker's CPU time during the pass, seconds.
    pub cpu_secs: f64,
}

/// A device (or phone) slot: one login at a time.
enum Slot {
    Countersign(Box<countersign::Device>),
    Privacyidea(Box<peer::PhoneClient>),
}

struct Driver {
    slots: Vec<Mutex<Slot>>,
    cs_rp: Option<countersign_test_support::RpClient>,
    pi: Option<peer::RpSide>,
}

impl Driver {
    /// One login on slot `index`.
    async fn login(driver: &Rc<Self>, index: usize) -> Result<(), String> {
        let this = driver.clone();
        // A helper that panics (a failed assertion) ends this login, not the worker.
        let task = tokio::task::spawn_local(async move {
            let mut slot = this.slots[index].lock().await;
            match &mut *slot {
                Slot::Countersign(device) => match &this.cs_rp {
                    Some(rp) => countersign::login(rp, device).await,
                    None => Err("no relying party".into()),
                },
                Slot::Privacyidea(phone) => match &this.pi {
                    Some(rp) => rp.login(phone).await,
                    None => Err("no relying party".into()),
                },
            }
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let text = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Err(text)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Shared tallies of a running pass.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    results: std::sync::Mutex<Outcome>,
}

impl Tally {
    fn record(&self, started: Instant, result: Result<(), String>) {
        let micros = started.elapsed().as_micros() as u64;
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut out) = self.results.lock() {
            match result {
                Ok(()) => out.latencies_us.push(micros),
                Err(e) => {
                    out.errors += 1;
                    if out.first_error.is_none() {
                        out.first_error = Some(e);
                    }
                }
            }
        }
    }
}

fn send(line: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The worker's main loop (`countersign-bench worker`).
pub fn run() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut lines = std::io::stdin().lock().lines();
        let setup_line = lines
            .next()
            .ok_or("no setup line")?
            .map_err(|e| e.to_string())?;
        let setup: Setup = serde_json::from_str(&setup_line).map_err(|e| format!("setup: {e}"))?;
        let started = Instant::now();
        let driver = Rc::new(build(setup).await?);
        send(&serde_json::json!({
            "ready": true,
            "enroll_secs": started.elapsed().as_secs_f64(),
        }));
        for line in lines {
            let line = line.map_err(|e| e.to_string())?;
            let command: Command =
                serde_json::from_str(&line).map_err(|e| format!("command: {e}"))?;
            if matches!(command, Command::Quit) {
                break;
            }
            let outcome = pass(&driver, command).await;
            send(&serde_json::to_value(&outcome).map_err(|e| e.to_string())?);
        }
        Ok(())
    })
}

async fn build(setup: Setup) -> Result<Driver, String> {
    match setup {
        Setup::Countersign {
            base,
            api_key,
            users,
        } => {
            let rp = Rc::new(countersign_test_support::RpClient::new(
                base.clone(),
                api_key.clone(),
            ));
            let mut slots = Vec::with_capacity(users.len());
            // Enrolled a few at a time: activation is the slowest request.
            for chunk in users.chunks(8) {
                let enrolled = futures_join(chunk.iter().map(|user| {
                    let (rp, base, user) = (rp.clone(), base.clone(), user.clone());
                    async move { countersign::Device::enroll(&rp, &base, &user).await }
                }))
                .await;
                for device in enrolled {
                    slots.push(Mutex::new(Slot::Countersign(Box::new(device?))));
                }
            }
            Ok(Driver {
                slots,
                cs_rp: Some(countersign_test_support::RpClient::new(base, api_key)),
                pi: None,
            })
        }
        Setup::Privacyidea { base, phones } => {
            let slots = phones
                .into_iter()
                .map(|p| {
                    peer::PhoneClient::new(&base, p)
                        .map(|c| Mutex::new(Slot::Privacyidea(Box::new(c))))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Driver {
                slots,
                cs_rp: None,
                pi: Some(peer::RpSide::new(&base)),
            })
        }
    }
}

/// Awaits every future of `futures` concurrently on this thread.
async fn futures_join<F: std::future::Future + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: 'static,
{
    let handles: Vec<_> = futures.map(tokio::task::spawn_local).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        if let Ok(v) = handle.await {
            out.push(v);
        }
    }
    out
}

async fn pass(driver: &Rc<Driver>, command: Command) -> Outcome {
    let tally = Rc::new(Tally::default());
    let cpu0 = crate::stats::process_cpu_secs(std::process::id()).unwrap_or(0.0);
    let started = Instant::now();
    let progress = {
        let tally = tally.clone();
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                send(&serde_json::json!({ "progress": tally.done.load(Ordering::Relaxed) }));
            }
        })
    };
    match command {
        Command::Closed { logins, secs } => {
            let deadline = secs.map(|s| started + Duration::from_secs_f64(s));
            let budget = Rc::new(AtomicU64::new(logins.unwrap_or(u64::MAX)));
            let loops: Vec<_> = (0..driver.slots.len())
                .map(|index| {
                    let driver = driver.clone();
                    let tally = tally.clone();
                    let budget = budget.clone();
                    tokio::task::spawn_local(async move {
                        loop {
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                break;
                            }
                            let taken =
                                budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                                    left.checked_sub(1)
                                });
                            if taken.is_err() {
                                break;
                            }
                            let t0 = Instant::now();
                            let result = Driver::login(&driver, index).await;
                            tally.record(t0, result);
                        }
                    })
                })
                .collect();
            for l in loops {
                let _ = l.await;
            }
        }
        Command::Open { rate, secs } => {
            let total = (rate * secs).round().max(1.0) as u64;
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            // Idle slots; a login waits for one (that wait counts in its latency).
            let (idle_tx, idle_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
            for index in 0..driver.slots.len() {
                let _ = idle_tx.send(index);
            }
            let idle_rx = Rc::new(Mutex::new(idle_rx));
            let mut running = Vec::with_capacity(total as usize);
            for n in 0..total {
                let scheduled = started + interval * n as u32;
                tokio::time::sleep_until(scheduled.into()).await;
                let driver = driver.clone();
                let tally = tally.clone();
                let idle_tx = idle_tx.clone();
                let idle_rx = idle_rx.clone();
                running.push(tokio::task::spawn_local(async move {
                    let index = idle_rx.lock().await.recv().await;
                    let Some(index) = index else { return };
                    let result = Driver::login(&driver, index).await;
                    tally.record(scheduled, result);
                    let _ = idle_tx.send(index);
                }));
            }
            for r in running {
                let _ = r.await;
            }
        }
        Command::Quit => {}
    }
    progress.abort();
    let wall = started.elapsed().as_secs_f64();
    let cpu1 = crate::stats::process_cpu_secs(std::process::id()).unwrap_or(0.0);
    let mut out = tally.results.lock().map(|o| o.clone()).unwrap_or_default();
    out.wall_secs = wall;
    out.cpu_secs = cpu1 - cpu0;
    out
}
