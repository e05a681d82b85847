//! Per-user limits: the pending-challenge bound and push window; after misses
//! (denials, wrong numbers, timeouts) a growing wait and then suppression; a
//! lock after a fraud report; and failed-passcode limits. Nothing the login page
//! can send lifts a suppression or lock (see `docs/PROTOCOL.md` §8).
//! Every limit is enforced by one conditional statement, so it holds across
//! concurrent requests and instances.

use crate::store::Conn;

use super::audit::{AuditSubject, audit, audit_on};
use super::auth::Device;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::{self, Tx};
use crate::util::now;

/// What holds pushes to a user back, as read with the push targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushGate {
    /// Suppressed after repeated misses (denials, wrong numbers, timeouts).
    pub suppressed: bool,
    /// Locked by a fraud report until then (Unix seconds).
    pub locked_until: i64,
    /// The wait after the last miss ends then (Unix seconds).
    pub next_push_at: i64,
}

impl From<store::users::GateRow> for PushGate {
    fn from(row: store::users::GateRow) -> Self {
        Self {
            suppressed: row.suppressed != 0,
            locked_until: row.locked_until,
            next_push_at: row.next_push_at,
        }
    }
}

/// The refusal for a suppressed user, saying how to get back in. Typing `push`
/// is not among the ways: the login page is where the attacker sits.
pub fn suppressed_error() -> ApiError {
    ApiError::new(
        ErrorCode::Suppressed,
        "pushes to this user are paused after repeated denials or unanswered requests; \
         sign in with a code from the app (TOTP or offline QR), or open the app and choose \
         \"it was me\"",
    )
}

/// Refuses a push while the user is locked after a fraud report, suppressed,
/// or inside the wait after a miss; audits the refusal.
pub async fn check_gate(
    state: &AppState,
    who: AuditSubject<'_>,
    gate: PushGate,
    t: i64,
) -> ApiResult<()> {
    let (label, reason, error) = if gate.locked_until > t {
        (
            "locked",
            "locked after a fraud report",
            ApiError::new(
                ErrorCode::Locked,
                "pushes to this user are locked after a \"not me\" report; sign in with a \
                 code from the app, or ask an operator to unlock",
            ),
        )
    } else if gate.suppressed {
        ("suppressed", "suppressed after misses", suppressed_error())
    } else if gate.next_push_at > t {
        (
            "waiting",
            "waiting after a miss",
            ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "the next push to this user is allowed in {} s (pushes slow down after \
                     denials and timeouts)",
                    gate.next_push_at - t
                ),
            ),
        )
    } else {
        return Ok(());
    };
    state.metrics.push_suppressed(label);
    audit(&state.db, who, "push_refused", reason).await?;
    Err(error)
}

/// Counts the push in the user's window atomically, and only while the user has
/// room for another pending challenge and no lock, suppression or wait holds
/// (one statement), in the transaction that stores the challenge: one commit
/// per push. Its first statement writes, so SQLite takes the write lock up
/// front. Refused: the transaction is rolled back and a second look says which
/// limit it was.
pub async fn admit_push(
    state: &AppState,
    mut dbtx: Tx,
    user_id: &str,
    who: AuditSubject<'_>,
    t: i64,
) -> ApiResult<Tx> {
    let policy = &state.config.policy;
    let admitted = store::users::admit_push(
        &mut dbtx,
        &store::users::PushAdmission {
            user_id,
            window_start: t - i64::from(policy.push_window_secs),
            now: t,
            max_per_window: i64::from(policy.push_max_per_window),
            max_pending: i64::from(policy.max_pending),
        },
    )
    .await?;
    if admitted {
        return Ok(dbtx);
    }
    dbtx.rollback().await?;
    // A miss recorded since the targets were read (a concurrent denial).
    let gate = store::users::gate(&state.db, user_id).await?;
    if let Some(gate) = gate {
        check_gate(state, who, gate.into(), t).await?;
    }
    let pending = store::challenges::count_pending(&state.db, user_id, t).await?;
    if pending >= i64::from(policy.max_pending) {
        state.metrics.push_suppressed("too_many_pending");
        audit(
            &state.db,
            who,
            "push_refused",
            "too many pending challenges",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many pending challenges for this user",
        ));
    }
    state.metrics.push_suppressed("rate_limited");
    audit(&state.db, who, "push_refused", "push rate limit").await?;
    Err(ApiError::new(
        ErrorCode::RateLimited,
        "too many pushes for this user; try again later",
    ))
}

/// Counts one passcode attempt against the user's failure limit before it is
/// checked (a success gives it back by resetting the count). Reserving first, in
/// one conditional `UPDATE`, keeps concurrent guesses (also across instances)
/// within the limit. Refused: `rate_limited` until the window, which starts at the
/// first failure, has passed.
pub async fn reserve_passcode_attempt(
    state: &AppState,
    user_id: &str,
    who: AuditSubject<'_>,
) -> ApiResult<()> {
    let policy = &state.config.policy;
    let t = now();
    let counted = store::users::reserve_passcode_attempt(
        &state.db,
        user_id,
        t - i64::from(policy.passcode_failure_window_secs),
        t,
        i64::from(policy.passcode_max_failures),
    )
    .await?;
    if !counted {
        audit(
            &state.db,
            who,
            "passcode_rate_limited",
            "too many failed passcodes",
        )
        .await?;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many failed passcodes for this user; try again later",
        ));
    }
    Ok(())
}

/// How a push ended for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Approved.
    Approved,
    /// Denied as a mistake.
    Denied,
    /// Denied with "it was not me": also a fraud report.
    Fraud,
    /// Ended after wrong numbers entered on the phone.
    WrongNumber,
    /// Expired unanswered.
    TimedOut,
}

impl Outcome {
    /// The audit reason of a miss.
    fn reason(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "mistake",
            Self::Fraud => "not_me",
            Self::WrongNumber => "wrong_number",
            Self::TimedOut => "timed_out",
        }
    }
}

/// Updates the user's miss streak (its wait, suppression, the fraud lock) for
/// how a push ended and audits it, inside the transaction that records the end.
/// An approval ends a streak (written only when there is one); every other end
/// is a miss. Returns why pushes to the user stopped when this end stopped
/// them (`fraud_report`: locked; `misses`: suppressed at the limit), for the
/// `user.suppressed` webhook the caller sends once the transaction commits.
pub async fn record_answer(
    state: &AppState,
    conn: &mut Conn,
    user_id: &str,
    who: AuditSubject<'_>,
    outcome: Outcome,
    denial_streak: i64,
) -> ApiResult<Option<&'static str>> {
    if outcome == Outcome::Approved {
        if denial_streak != 0 {
            store::users::reset_denial_streak(conn, user_id).await?;
        }
        audit_on(conn, who, "approval", "approved on device").await?;
        return Ok(None);
    }
    let policy = &state.config.policy;
    let t = now();
    let fraud = outcome == Outcome::Fraud;
    let limit = i64::from(policy.denials_before_suppression);
    // 0 turns the lock off: the column only ever moves forward.
    let lock_until = t.saturating_add(i64::from(policy.fraud_lock_secs));
    // A second "not me" while the lock holds (two requests were pending)
    // changes nothing the RP has not been told.
    let was_locked = fraud && store::users::locked_until(conn, user_id).await? > t;
    let counters = store::users::record_miss(
        conn,
        &store::users::Miss {
            user_id,
            fraud,
            suppress_at: limit,
            now: t,
            backoff_secs: i64::from(policy.push_backoff_secs),
            lock_until,
        },
    )
    .await?;
    let event = if outcome == Outcome::TimedOut {
        "expired"
    } else {
        "denial"
    };
    audit_on(conn, who, event, outcome.reason()).await?;
    if fraud {
        audit_on(
            conn,
            who,
            "fraud_report",
            "user said it was not them; pushes locked",
        )
        .await?;
    }
    let suppressed_now = counters.suppressed == 1 && counters.denial_streak == limit;
    if suppressed_now {
        audit_on(conn, who, "suppression", "consecutive misses").await?;
    }
    Ok(if fraud && !was_locked && policy.fraud_lock_secs > 0 {
        Some("fraud_report")
    } else if suppressed_now {
        Some("misses")
    } else {
        None
    })
}

/// "It was me", sent by an enrolled device of the user (a request signed with
/// its possession key, made from the app): lifts a suppression and ends the
/// miss streak and its wait. A fraud lock stays: the user reported a stranger,
/// and only the lock's time or an operator ends that.
pub async fn resume_by_device(state: &AppState, device: &Device) -> ApiResult<()> {
    store::users::resume_pushes(&state.db, &device.user_id).await?;
    let who = AuditSubject {
        rp: Some(&device.rp_id),
        user: Some(&device.user_id),
        device: Some(&device.id),
        ..Default::default()
    };
    audit(
        &state.db,
        who,
        "suppression_lifted",
        "it was me, from an enrolled device",
    )
    .await
}
