//! `countersign`: the Countersign desktop harness.
//!
//! * `countersign demo`: an embedded server and an in-process device run every
//!   flow end to end, with a transcript and timings (`--json` for machines).
//! * `countersign server`: the reference server (SQLite file by default,
//!   `--database-url` for PostgreSQL, `--demo` for the demo web pages).
//! * `countersign admin …`: operate a server (relying parties, API keys, users,
//!   devices, audit log) on its database.
//! * `countersign device …`: a desktop authenticator on the core's
//!   `Authenticator`, storage encrypted under a key in the OS keyring (or a key
//!   file with `--key-file`).
//! * `countersign otp <otpauth-uri>`: the current code of a key URI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin_cmd;
mod demo;
mod device;
mod otp_cmd;
mod server_cmd;
mod term;

/// mimalloc rather than glibc's malloc: the server's many small, short-lived
/// allocations across tokio's threads cost 3–10 % less CPU per login with it
/// (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Countersign: open push authentication with end-to-end encrypted challenges.
#[derive(Parser)]
#[command(name = "countersign", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every flow end to end against an embedded server on loopback.
    Demo(demo::DemoArgs),
    /// Run the reference server (the demo web pages with `--demo`).
    Server(server_cmd::ServerArgs),
    /// Operate a server: relying parties, API keys, users, devices, audit log.
    Admin(admin_cmd::AdminArgs),
    /// A desktop authenticator: activate, list, OTP, listen for push requests.
    Device {
        #[command(flatten)]
        opts: device::DeviceOpts,
        #[command(subcommand)]
        command: device::DeviceCommand,
    },
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

/// Where `countersign device` keeps its data unless `--home` says otherwise.
fn default_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("countersign");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/countersign"),
        None => PathBuf::from(".countersign"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Otp { uri, time, json } => otp_cmd::print_otp(&uri, time, json),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(args))),
        Command::Server(args) => runtime().and_then(|rt| rt.block_on(server_cmd::run(args))),
        Command::Admin(args) => runtime().and_then(|rt| rt.block_on(admin_cmd::run(args))),
        Command::Device { opts, command } => {
            runtime().and_then(|rt| rt.block_on(device::run(opts, command)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tx id of `approve`/`deny` (from `device pending`), however it is parsed.
    fn tx_of(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Device {
                command:
                    device::DeviceCommand::Approve { tx, .. } | device::DeviceCommand::Deny { tx, .. },
                ..
            } => tx,
            _ => panic!("{args:?}: not approve or deny"),
        }
    }

    #[test]
    fn tx_ids_that_begin_with_a_hyphen_are_ids() {
        let id = "-Qx3kP9_aZ2mN7vB1cD4eF";
        assert_eq!(tx_of(&["countersign", "device", "approve", id]), id);
        assert_eq!(
            tx_of(&["countersign", "device", "approve", id, "--number", "42"]),
            id
        );
        assert_eq!(
            tx_of(&["countersign", "device", "deny", "--not-me", id]),
            id
        );
        assert_eq!(tx_of(&["countersign", "device", "deny", "--", id]), id);
        assert_eq!(tx_of(&["countersign", "device", "deny", "abc"]), "abc");
    }
}
