//! TOTP (RFC 6238): HOTP over the time step `T = floor(unix_time / period)`
//! (T0 = 0). Codes are generated with the `totp-rs` crate, as the design asks;
//! the secret copy handed to it is wiped when the generator is dropped.

use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroize;

use super::{
    HmacAlgorithm, MAX_PERIOD, MAX_SKEW, MIN_PERIOD, OtpError, check_digits, check_secret, ct_find,
    well_formed_code,
};

/// TOTP parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    /// HMAC hash.
    pub algorithm: HmacAlgorithm,
    /// Code length: 6..=8.
    pub digits: u8,
    /// Step length in seconds: 1..=3600.
    pub period: u32,
}

impl TotpParams {
    /// Validated parameters.
    pub fn new(algorithm: HmacAlgorithm, digits: u8, period: u32) -> Result<Self, OtpError> {
        let p = Self {
            algorithm,
            digits,
            period,
        };
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), OtpError> {
        check_digits(self.digits)?;
        check_period(self.period)
    }
}

impl Default for TotpParams {
    /// The common defaults: SHA-1, 6 digits, 30 s.
    fn default() -> Self {
        Self {
            algorithm: HmacAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

fn check_period(period: u32) -> Result<(), OtpError> {
    if (MIN_PERIOD..=MAX_PERIOD).contains(&period) {
        Ok(())
    } else {
        Err(OtpError::InvalidPeriod(period))
    }
}

/// A totp-rs generator whose secret copy is wiped on drop (totp-rs only does
/// that itself behind a feature this workspace does not enable).
struct Generator(TOTP);

impl Generator {
    fn new(params: &TotpParams, secret: &[u8]) -> Self {
        let algorithm = match params.algorithm {
            HmacAlgorithm::Sha1 => Algorithm::SHA1,
            HmacAlgorithm::Sha256 => Algorithm::SHA256,
            HmacAlgorithm::Sha512 => Algorithm::SHA512,
        };
        // new_unchecked: totp-rs' checked constructor insists on >= 128-bit
        // secrets; our bounds are validated by the callers below.
        Self(TOTP::new_unchecked(
            algorithm,
            usize::from(params.digits),
            0,
            u64::from(params.period),
            secret.to_vec(),
        ))
    }

    fn code_at(&self, unix_time: u64) -> String {
        self.0.generate(unix_time)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.0.secret.zeroize();
    }
}

/// The time step containing `unix_time`: `floor(unix_time / period)`.
pub fn time_step(period: u32, unix_time: u64) -> Result<u64, OtpError> {
    check_period(period)?;
    Ok(unix_time / u64::from(period))
}

/// Seconds until the code shown at `unix_time` changes: `1..=period`.
pub fn seconds_left(period: u32, unix_time: u64) -> Result<u32, OtpError> {
    check_period(period)?;
    let into_step = unix_time % u64::from(period);
    // into_step < period <= 3600, so the narrowing cannot fail.
    let into_step = u32::try_from(into_step).map_err(|_| OtpError::InvalidPeriod(period))?;
    Ok(period - into_step)
}

/// The TOTP code at `unix_time`.
pub fn totp_at(params: &TotpParams, secret: &[u8], unix_time: u64) -> Result<String, OtpError> {
    params.validate()?;
    check_secret(secret)?;
    Ok(Generator::new(params, secret).code_at(unix_time))
}

/// Verifies a TOTP code at `unix_time`, accepting `skew` steps before and after
/// the current one, and returns the time step that matched.
///
/// The server records the drift (`matched - time_step(now)`) and, against
/// replay, refuses any later code whose step is not greater than the last
/// accepted one. When two steps of the window carry the same code, the one
/// nearest to the current step wins (current, -1, +1, -2, +2, …). A code of the
/// wrong shape is `Ok(None)`. All steps of the window are computed and compared
/// in constant time.
pub fn totp_verify(
    params: &TotpParams,
    secret: &[u8],
    code: &str,
    unix_time: u64,
    skew: u8,
) -> Result<Option<u64>, OtpError> {
    params.validate()?;
    check_secret(secret)?;
    if skew > MAX_SKEW {
        return Err(OtpError::SkewTooLarge(skew));
    }
    if !well_formed_code(code, params.digits) {
        return Ok(None);
    }
    let period = u64::from(params.period);
    let current = unix_time / period;
    let mut steps = vec![current];
    for k in 1..=u64::from(skew) {
        steps.extend(current.checked_sub(k));
        steps.extend(current.checked_add(k));
    }
    let generator = Generator::new(params, secret);
    ct_find(code, steps, |step| {
        // A step whose start does not fit in u64 seconds has no code.
        Ok(step.checked_mul(period).map(|t| generator.code_at(t)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::hotp::{HotpParams, hotp};

    const KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1() {
        let p = TotpParams::new(HmacAlgorithm::Sha1, 8, 30).unwrap();
        assert_eq!(totp_at(&p, KEY, 59).unwrap(), "94287082");
        assert_eq!(totp_at(&p, KEY, 20_000_000_000).unwrap(), "65353130");
    }

    #[test]
    fn totp_is_hotp_of_the_time_step() {
        for (alg, digits, period, t) in [
            (HmacAlgorithm::Sha1, 6, 30, 1_700_000_000u64),
            (HmacAlgorithm::Sha256, 7, 60, 1_234_567_890),
            (HmacAlgorithm::Sha512, 8, 1, 42),
            (HmacAlgorithm::Sha1, 6, 3600, u64::MAX),
        ] {
            let tp = TotpParams::new(alg, digits, period).unwrap();
            let hp = HotpParams::new(alg, digits).unwrap();
            let step = time_step(period, t).unwrap();
            assert_eq!(totp_at(&tp, KEY, t).unwrap(), hotp(&hp, KEY, step).unwrap());
        }
    }

    #[test]
    fn seconds_left_and_steps() {
        assert_eq!(seconds_left(30, 0).unwrap(), 30);
        assert_eq!(seconds_left(30, 29).unwrap(), 1);
        assert_eq!(seconds_left(30, 30).unwrap(), 30);
        assert_eq!(seconds_left(1, 12345).unwrap(), 1);
        assert_eq!(time_step(30, 59).unwrap(), 1);
        assert_eq!(seconds_left(0, 1), Err(OtpError::InvalidPeriod(0)));
        assert_eq!(time_step(3601, 1), Err(OtpError::InvalidPeriod(3601)));
    }

    #[test]
    fn verify_with_skew_returns_step() {
        let p = TotpParams::default();
        let now = 1_700_000_015u64;
        let step = time_step(30, now).unwrap();
        let prev = totp_at(&p, KEY, now - 30).unwrap();
        let next = totp_at(&p, KEY, now + 30).unwrap();
        let cur = totp_at(&p, KEY, now).unwrap();
        assert_eq!(totp_verify(&p, KEY, &cur, now, 0).unwrap(), Some(step));
        assert_eq!(totp_verify(&p, KEY, &prev, now, 1).unwrap(), Some(step - 1));
        assert_eq!(totp_verify(&p, KEY, &next, now, 1).unwrap(), Some(step + 1));
        let far = totp_at(&p, KEY, now + 90).unwrap();
        if far != cur && far != prev && far != next {
            assert_eq!(totp_verify(&p, KEY, &far, now, 1).unwrap(), None);
        }
        assert_eq!(totp_verify(&p, KEY, &far, now, 3).unwrap(), Some(step + 3));
        assert_eq!(totp_verify(&p, KEY, "12345", now, 1).unwrap(), None);
        // Near zero and near the end of time the window is clipped, not wrapped.
        let first = totp_at(&p, KEY, 0).unwrap();
        assert_eq!(totp_verify(&p, KEY, &first, 0, 2).unwrap(), Some(0));
        let one = TotpParams::new(HmacAlgorithm::Sha1, 6, 1).unwrap();
        let last = totp_at(&one, KEY, u64::MAX).unwrap();
        assert_eq!(
            totp_verify(&one, KEY, &last, u64::MAX, 2).unwrap(),
            Some(u64::MAX)
        );
    }

    #[test]
    fn errors() {
        let p = TotpParams::default();
        assert_eq!(
            totp_verify(&p, KEY, "000000", 0, MAX_SKEW + 1),
            Err(OtpError::SkewTooLarge(MAX_SKEW + 1))
        );
        assert_eq!(
            TotpParams::new(HmacAlgorithm::Sha1, 6, 0),
            Err(OtpError::InvalidPeriod(0))
        );
        assert_eq!(
            TotpParams::new(HmacAlgorithm::Sha1, 10, 30),
            Err(OtpError::InvalidDigits(10))
        );
        let bad = TotpParams {
            period: 4000,
            ..TotpParams::default()
        };
        assert_eq!(totp_at(&bad, KEY, 0), Err(OtpError::InvalidPeriod(4000)));
        assert_eq!(
            totp_at(&p, &[0u8; 2000], 0),
            Err(OtpError::SecretLength(2000))
        );
    }
}
