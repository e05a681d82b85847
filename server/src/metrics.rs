//! Prometheus metrics of one server instance (`GET /metrics`, issue 15).
//!
//! A registry per [`crate::AppState`], no process-wide recorder: several
//! servers in one process (the tests) keep their own counts. The text is
//! rendered by `prometheus-client` (OpenMetrics text, which Prometheus and its
//! parsers read).
//!
//! Each event is counted once, where its state change commits:
//! - a push is *started* when its challenge commits (RP pushes, passcode
//!   triggers and QR-login claims alike);
//! - *approved* / *denied* when the answer's record commits (a repeated answer
//!   finds it recorded and is not counted again); a wrong-number end counts
//!   as denied `wrong_number` when the ending try commits;
//! - *expired* when the janitor's sweep (or a device removal) turns the row
//!   `expired`: one conditional statement, so once across instances. A status
//!   read that reports `expired` before the sweep changes nothing and counts
//!   nothing;
//! - *suppressed* when the fatigue gate refuses a push, by reason.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::radius::RadiusStats;

/// One label (`reason`, `provider`, `kind`).
type Label = Vec<(&'static str, String)>;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The counters, gauges and histograms, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pushes_started: Counter,
    pushes_approved: Counter,
    pushes_denied: Family<Label, Counter>,
    pushes_expired: Counter,
    pushes_suppressed: Family<Label, Counter>,
    wakeups_sent: Family<Label, Counter>,
    wakeups_failed: Family<Label, Counter>,
    answer_seconds: Histogram,
    long_polls: Family<Label, Gauge<i64, AtomicI64>>,
    database_errors: Counter,
    /// The RADIUS front's counters (the front bumps them; rendered here).
    pub radius: Arc<RadiusStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let pushes_started = Counter::default();
        let pushes_approved = Counter::default();
        let pushes_denied = Family::<Label, Counter>::default();
        let pushes_expired = Counter::default();
        let pushes_suppressed = Family::<Label, Counter>::default();
        let wakeups_sent = Family::<Label, Counter>::default();
        let wakeups_failed = Family::<Label, Counter>::default();
        // Push to answer: a person reads and decides within seconds; the
        // longest timeout is 600 s.
        let answer_seconds = Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 600.0]);
        let long_polls = Family::<Label, Gauge<i64, AtomicI64>>::default();
        let database_errors = Counter::default();
        let radius = Arc::new(RadiusStats::default());
        registry.register(
            "countersign_pushes_started",
            "Push challenges started",
            pushes_started.clone(),
        );
        registry.register(
            "countersign_pushes_approved",
            "Push challenges approved on a device",
            pushes_approved.clone(),
        );
        registry.register(
            "countersign_pushes_denied",
            "Push challenges denied, by reason (not_me, mistake, wrong_number)",
            pushes_denied.clone(),
        );
        registry.register(
            "countersign_pushes_expired",
            "Push challenges that expired unanswered",
            pushes_expired.clone(),
        );
        registry.register(
            "countersign_pushes_suppressed",
            "Pushes refused by the fatigue gate, by reason",
            pushes_suppressed.clone(),
        );
        registry.register(
            "countersign_wakeups_sent",
            "Wake-ups the push provider accepted, by provider",
            wakeups_sent.clone(),
        );
        registry.register(
            "countersign_wakeups_failed",
            "Wake-ups the push provider refused or that did not reach it, by provider",
            wakeups_failed.clone(),
        );
        registry.register(
            "countersign_push_answer_seconds",
            "Time from a push's start to its answer",
            answer_seconds.clone(),
        );
        registry.register(
            "countersign_long_polls_waiting",
            "Long-polls waiting now, by kind (device, rp)",
            long_polls.clone(),
        );
        registry.register(
            "countersign_database_errors",
            "Database statements that failed",
            database_errors.clone(),
        );
        registry.register_collector(Box::new(RadiusCollector(radius.clone())));
        Self {
            registry,
            pushes_started,
            pushes_approved,
            pushes_denied,
            pushes_expired,
            pushes_suppressed,
            wakeups_sent,
            wakeups_failed,
            answer_seconds,
            long_polls,
            database_errors,
            radius,
        }
    }

    /// The exposition text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// A push challenge committed.
    pub fn push_started(&self) {
        self.pushes_started.inc();
    }

    /// An answer committed: `reason` is `None` for an approval; `seconds`
    /// since the push started.
    pub fn push_answered(&self, reason: Option<&str>, seconds: i64) {
        match reason {
            None => {
                self.pushes_approved.inc();
            }
            Some(r) => {
                self.pushes_denied.get_or_create(&label("reason", r)).inc();
            }
        }
        // Seconds fit an f64 exactly far beyond any timeout.
        #[allow(clippy::cast_precision_loss)]
        self.answer_seconds.observe(seconds.max(0) as f64);
    }

    /// A wrong-number end committed (a denial without an answer time).
    pub fn push_ended_wrong_number(&self) {
        self.pushes_denied
            .get_or_create(&label("reason", "wrong_number"))
            .inc();
    }

    /// `n` challenges turned `expired`.
    pub fn pushes_expired(&self, n: usize) {
        self.pushes_expired.inc_by(u64::try_from(n).unwrap_or(0));
    }

    /// The gate refused a push (`locked`, `suppressed`, `waiting`,
    /// `too_many_pending`, `rate_limited`).
    pub fn push_suppressed(&self, reason: &str) {
        self.pushes_suppressed
            .get_or_create(&label("reason", reason))
            .inc();
    }

    /// A wake-up went out (`ok`) or failed, through `provider`.
    pub fn wakeup(&self, provider: &str, ok: bool) {
        let family = if ok {
            &self.wakeups_sent
        } else {
            &self.wakeups_failed
        };
        family.get_or_create(&label("provider", provider)).inc();
    }

    /// Counts `e` when a database statement failed. Called where errors are
    /// answered: the HTTP layer (one middleware) and the janitor; background
    /// work that only logs its failure calls [`Metrics::database_error`].
    pub fn observe_error(&self, e: &ApiError) {
        if e.is_database() {
            self.database_error();
        }
    }

    /// A database statement failed.
    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// Counts one waiting long-poll of `kind` (`device`, `rp`) until the
    /// guard drops (also when the client goes away mid-wait).
    pub fn long_poll(&self, kind: &'static str) -> LongPollGuard {
        let gauge = self.long_polls.get_or_create(&label("kind", kind)).clone();
        gauge.inc();
        LongPollGuard(gauge)
    }
}

/// Holds one long-poll in the gauge.
#[derive(Debug)]
pub struct LongPollGuard(Gauge<i64, AtomicI64>);

impl Drop for LongPollGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn label(key: &'static str, value: &str) -> Label {
    vec![(key, value.to_owned())]
}

/// Renders the RADIUS front's own atomic counters at scrape time.
#[derive(Debug)]
struct RadiusCollector(Arc<RadiusStats>);

impl Collector for RadiusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.snapshot();
        let outcomes = [
            ("accept", c.accepts),
            ("reject", c.rejects),
            ("challenge", c.challenges),
            ("retransmission", c.retransmissions),
            ("unknown_client", c.unknown_client),
            ("malformed", c.malformed),
            ("bad_authenticator", c.bad_authenticator),
            ("missing_authenticator", c.missing_authenticator),
            ("overloaded", c.overloaded),
        ];
        let mut family = encoder.encode_descriptor(
            "countersign_radius_requests",
            "RADIUS datagrams by outcome (answers sent, retransmissions answered from the \
             cache, and drops)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (outcome, n) in outcomes {
            let labels = [("outcome", outcome)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let legacy = ConstCounter::new(c.legacy_admitted);
        legacy.encode(encoder.encode_descriptor(
            "countersign_radius_legacy_admitted",
            "Access-Requests without Message-Authenticator admitted by a client's legacy switch",
            None,
            legacy.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.push_started();
        m.push_answered(Some("not_me"), 3);
        m.wakeup("fcm", false);
        let _guard = m.long_poll("device");
        let text = m.render().unwrap();
        assert!(
            text.contains("countersign_pushes_started_total 1"),
            "{text}"
        );
        assert!(
            text.contains("countersign_pushes_denied_total{reason=\"not_me\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countersign_wakeups_failed_total{provider=\"fcm\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countersign_long_polls_waiting{kind=\"device\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("countersign_radius_requests_total{outcome=\"accept\"} 0"),
            "{text}"
        );
    }
}
