//! Cross-check HOTP and TOTP against the independent `oathtool` binary
//! (OATH Toolkit, Debian package `oathtool`): 1,000 random cases.
//!
//! Each oathtool run prints 10 consecutive codes (`-w 9`), so 100 runs cover
//! 1,000 cases. HOTP/SHA-1 uses `--hotp -c N`; HOTP with SHA-256/512 uses
//! oathtool's TOTP with a 1-second step at time N (the step number is then the
//! counter); TOTP uses `--totp=shaX -s P -N @T`.
//!
//! The random seed is printed; set `COUNTERSIGN_OATH_SEED` to replay a run.
//! A missing oathtool fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::process::Command;

use countersign_protocol::otp::{
    HmacAlgorithm, HotpParams, TotpParams, hotp, hotp_verify, totp_at, totp_verify,
};

const BATCHES: usize = 100;
const PER_BATCH: u64 = 10;

/// xorshift64*: small, seedable, good enough to pick test parameters.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.next() % (hi_inclusive - lo + 1)
    }
}

fn oathtool(args: &[String]) -> Vec<String> {
    let out = Command::new("oathtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run oathtool ({e}): install it with `apt-get install -y oathtool`")
        });
    assert!(
        out.status.success(),
        "oathtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("oathtool output is ASCII")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn alg_name(alg: HmacAlgorithm) -> &'static str {
    match alg {
        HmacAlgorithm::Sha1 => "sha1",
        HmacAlgorithm::Sha256 => "sha256",
        HmacAlgorithm::Sha512 => "sha512",
    }
}

#[test]
fn oathtool_cross_check() {
    let seed = match std::env::var("COUNTERSIGN_OATH_SEED") {
        Ok(s) => s
            .parse::<u64>()
            .expect("COUNTERSIGN_OATH_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15),
    };
    println!("oathtool cross-check seed: {seed} (replay with COUNTERSIGN_OATH_SEED={seed})");
    let mut rng = Rng(seed | 1);

    let version = oathtool(&["--version".to_owned()]);
    println!("{}", version.first().map_or("oathtool", String::as_str));

    let (mut cases, mut agreed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for _ in 0..BATCHES {
        let key_len = usize::try_from(rng.range(16, 64)).unwrap();
        let key: Vec<u8> = (0..key_len).map(|_| rng.next() as u8).collect();
        let key_hex = hex::encode(&key);
        let algorithm = match rng.range(0, 2) {
            0 => HmacAlgorithm::Sha1,
            1 => HmacAlgorithm::Sha256,
            _ => HmacAlgorithm::Sha512,
        };
        let digits = u8::try_from(rng.range(6, 8)).unwrap();
        let d = digits.to_string();
        let w = (PER_BATCH - 1).to_string();

        if rng.range(0, 1) == 0 {
            // HOTP at counters n..n+9.
            let n = rng.range(0, 1 << 40);
            let args: Vec<String> = if algorithm == HmacAlgorithm::Sha1 {
                vec!["--hotp".into(), "-c".into(), n.to_string()]
            } else {
                vec![
                    format!("--totp={}", alg_name(algorithm)),
                    "-s".into(),
                    "1".into(),
                    "-N".into(),
                    format!("@{n}"),
                ]
            };
            let args: Vec<String> = args
                .into_iter()
                .chain([
                    "-d".into(),
                    d.clone(),
                    "-w".into(),
                    w.clone(),
                    key_hex.clone(),
                ])
                .collect();
            let theirs = oathtool(&args);
            assert_eq!(theirs.len() as u64, PER_BATCH, "oathtool {args:?}");
            let params = HotpParams::new(algorithm, digits).unwrap();
            for (i, their) in (0u64..).zip(&theirs) {
                cases += 1;
                let ours = hotp(&params, &key, n + i).unwrap();
                let found = hotp_verify(&params, &key, their, n, 9).unwrap();
                let verify_ok =
                    found.is_some_and(|c| hotp(&params, &key, c).unwrap() == *their && c <= n + i);
                if ours == *their && verify_ok {
                    agreed += 1;
                } else {
                    failures.push(format!(
                        "HOTP {} d={digits} key={key_hex} c={}: ours {ours}, oathtool {their}, verify {found:?}",
                        alg_name(algorithm),
                        n + i
                    ));
                }
            }
        } else {
            // TOTP at times t, t+P, …, t+9P.
            let period = u32::try_from(rng.range(1, 3600)).unwrap();
            let t = rng.range(0, 4_000_000_000);
            let args: Vec<String> = vec![
                format!("--totp={}", alg_name(algorithm)),
                "-d".into(),
                d.clone(),
                "-s".into(),
                period.to_string(),
                "-N".into(),
                format!("@{t}"),
                "-w".into(),
                w.clone(),
                key_hex.clone(),
            ];
            let theirs = oathtool(&args);
            assert_eq!(theirs.len() as u64, PER_BATCH, "oathtool {args:?}");
            let params = TotpParams::new(algorithm, digits, period).unwrap();
            for (i, their) in (0u64..).zip(&theirs) {
                cases += 1;
                let at = t + i * u64::from(period);
                let ours = totp_at(&params, &key, at).unwrap();
                let step = at / u64::from(period);
                let verified = totp_verify(&params, &key, their, at, 0).unwrap();
                if ours == *their && verified == Some(step) {
                    agreed += 1;
                } else {
                    failures.push(format!(
                        "TOTP {} d={digits} P={period} key={key_hex} t={at}: ours {ours}, oathtool {their}, verify {verified:?}",
                        alg_name(algorithm)
                    ));
                }
            }
        }
    }
    println!("oathtool cross-check: {cases} cases, {agreed} agreed");
    assert!(
        failures.is_empty(),
        "disagreements:\n{}",
        failures.join("\n")
    );
    assert_eq!(cases, BATCHES * PER_BATCH as usize);
    assert_eq!(agreed, cases);
}
