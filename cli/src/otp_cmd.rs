//! `countersign otp <otpauth-uri>`: the current code of a key URI.

use std::time::{SystemTime, UNIX_EPOCH};

use countersign_core::otp;
use countersign_core::protocol::otpauth::{OtpKind, OtpauthUri};

use crate::term::outln;

/// Prints the code of `uri` at `time` (default now) and the seconds it has left.
pub fn print_otp(uri: &str, time: Option<u64>, json: bool) -> Result<(), String> {
    let account = OtpauthUri::parse(uri).map_err(|e| {
        format!("{e}\nhint: a key URI looks like otpauth://totp/Issuer:account?secret=BASE32SECRET")
    })?;
    let now = match time {
        Some(t) => t,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970".to_string())?
            .as_secs(),
    };
    let code = account.code(now).map_err(|e| e.to_string())?;
    let seconds_left = match account.kind() {
        OtpKind::Totp { period } => {
            Some(otp::seconds_left(period, now).map_err(|e| e.to_string())?)
        }
        OtpKind::Hotp { .. } => None,
    };
    let label = match account.issuer() {
        Some(issuer) => format!("{issuer}: {}", account.account_name()),
        None => account.account_name().to_string(),
    };
    if json {
        let value = serde_json::json!({
            "account": account.account_name(),
            "issuer": account.issuer(),
            "code": code,
            "seconds_left": seconds_left,
        });
        outln!("{value}");
    } else {
        match seconds_left {
            Some(left) => outln!("{label}\n{code}  ({left}s left)"),
            None => outln!("{label}\n{code}  (HOTP)"),
        }
    }
    Ok(())
}
