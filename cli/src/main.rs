//! `countersign`: the Countersign desktop harness.
//!
//! Today it computes one-time passwords from `otpauth://` URIs; the desktop
//! device, the server launcher and the end-to-end demo join it as they land.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use countersign_core::otp;
use countersign_core::protocol::otpauth::{OtpKind, OtpauthUri};

/// Countersign: open push authentication with end-to-end encrypted challenges.
#[derive(Parser)]
#[command(name = "countersign", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the current one-time password of an `otpauth://` URI and the seconds it has left.
    Otp {
        /// The key URI, e.g. `otpauth://totp/Issuer:alice?secret=JBSWY3DPEHPK3PXP&issuer=Issuer`.
        uri: String,
        /// Compute the code at this Unix time instead of now (TOTP only).
        #[arg(long)]
        time: Option<u64>,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Otp { uri, time, json } => print_otp(&uri, time, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_otp(uri: &str, time: Option<u64>, json: bool) -> Result<(), String> {
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
        println!("{value}");
    } else {
        match seconds_left {
            Some(left) => println!("{label}\n{code}  ({left}s left)"),
            None => println!("{label}\n{code}  (HOTP)"),
        }
    }
    Ok(())
}
