//! `countersign device …`: a desktop authenticator on the core's [`Authenticator`].
//!
//! Data lives in `--home` (default `~/.local/share/countersign`): `data/` holds the
//! encrypted records ([`FileStorage`]), whose key is in the OS keyring (Secret
//! Service) or, with `--key-file`, in `storage.key` next to it. The choice is
//! remembered in `key-source` so a later call without the flag fails clearly
//! instead of reading nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use countersign_core::authenticator::{
    AccountInfo, AccountKind, ActivationOptions, CancelHandle, Delivery, OutboxState,
    PendingRequest,
};
use countersign_core::platform::{
    FileStorage, KeySource, Logger, NoopLogger, ReqwestClient, SoftwareKeyVault, SystemClock,
};
use countersign_core::protocol::otpauth::OtpauthUri;
use countersign_core::protocol::{
    ActivationOffer, ChallengeKind, Decision, DenyReason, NumberMatching, Platform, Verification,
};
use countersign_core::{Authenticator, AuthenticatorConfig, Error, PlatformHooks};
use serde_json::{Value, json};

use crate::term::{self, StderrLogger, TerminalVerifier, outln};

/// Options shared by every `countersign device` command.
#[derive(Args, Debug, Clone)]
pub struct DeviceOpts {
    /// Data folder (default: $XDG_DATA_HOME/countersign or ~/.local/share/countersign).
    #[arg(long, env = "COUNTERSIGN_HOME", global = true)]
    home: Option<PathBuf>,
    /// Keep the storage key in a file in the data folder instead of the OS keyring
    /// (headless machines, tests). Anyone who can read the folder can read the data.
    #[arg(long, env = "COUNTERSIGN_KEY_FILE", global = true)]
    key_file: bool,
    /// Machine-readable JSON on stdout (questions go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Print the core's log lines (never secrets) on stderr.
    #[arg(long, short, global = true)]
    verbose: bool,
}

/// The `countersign device` commands.
#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Activate a push account from an offer link (countersign://activate?…) or a typed code.
    Activate {
        /// The offer URI from the QR code, or the typed code (then `--server` is needed).
        offer: String,
        /// The server URL, for a typed code.
        #[arg(long)]
        server: Option<String>,
        /// Protect approvals with an app PIN (asked now).
        #[arg(long)]
        pin: bool,
        /// Device name shown to the server.
        #[arg(long)]
        name: Option<String>,
    },
    /// List accounts.
    List,
    /// Show the current one-time password of one account (or of all).
    Otp {
        /// Account id or label (default: all).
        account: Option<String>,
    },
    /// Add an `otpauth://` TOTP or HOTP account, or every account of a Google
    /// Authenticator export (`otpauth-migration://offline?data=…`).
    Add {
        /// The key URI.
        uri: String,
    },
    /// Print the `otpauth://` URIs of imported TOTP/HOTP accounts, to move them
    /// to another authenticator app. They hold the secrets: asks first unless
    /// `--yes`. Push accounts are skipped: their seed is bound to this device.
    Export {
        /// Account id or label (default: every OTP account).
        account: Option<String>,
        /// Do not ask (needed with `--json` or without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Remove an account (push accounts deregister from the server first).
    Remove {
        /// Account id or label.
        account: String,
        /// Only wipe locally, without telling the server.
        #[arg(long)]
        local: bool,
    },
    /// Set or change the app PIN of a push account.
    Pin {
        #[command(subcommand)]
        action: PinAction,
    },
    /// Wait for sign-in requests and answer them in the terminal.
    Listen {
        /// Stop after the first request was answered.
        #[arg(long)]
        once: bool,
        /// Long-poll length in seconds.
        #[arg(long, default_value_t = 25)]
        wait: u32,
    },
    /// Print pending requests (scripting), long-polling up to `--wait` seconds
    /// for a change (a new request, or a held one answered or ended).
    Pending {
        /// Seconds to wait for a change.
        #[arg(long, default_value_t = 0)]
        wait: u32,
    },
    /// Approve a pending request (scripting).
    Approve {
        /// The transaction id (from `pending`). Ids are base64url, so about one
        /// in 64 begins with `-`: it is taken as the id, not as an option.
        #[arg(allow_hyphen_values = true)]
        tx: String,
        /// The number shown on the sign-in page.
        #[arg(long)]
        number: Option<String>,
    },
    /// Deny a pending request (scripting).
    Deny {
        /// The transaction id (from `pending`). Ids are base64url, so about one
        /// in 64 begins with `-`: it is taken as the id, not as an option.
        #[arg(allow_hyphen_values = true)]
        tx: String,
        /// Report it as "not me" (fraud) instead of "mistake".
        #[arg(long)]
        not_me: bool,
    },
    /// "It was me": lift the server's push suppression after repeated denials or
    /// unanswered requests (typing `push` on a login page does not).
    Resume {
        /// Account id or label.
        account: String,
    },
    /// Send the answers saved while the server was unreachable, and show what
    /// is still waiting and what the server refused (refusals are then cleared).
    Outbox,
    /// Answer an offline QR (its JSON payload): prints the response code to type.
    Offline {
        /// The QR code's content.
        payload: String,
    },
    /// Move a push account to a new phone: prints a QR code (and the link and
    /// code) for the new phone to activate with. Its activation then waits for
    /// this device's approval (`countersign device listen`).
    Transfer {
        /// Account id or label (default: the only push account).
        account: Option<String>,
        /// Remove this device once the new phone is active.
        #[arg(long)]
        remove_old: bool,
    },
    /// Scan a QR login from a sign-in page (countersign://login?…): shows where
    /// the browser is and asks to approve or deny (or `--approve` / `--deny`).
    Scan {
        /// The QR code's content.
        uri: String,
        /// Account id or label, when several accounts are on that server.
        #[arg(long)]
        account: Option<String>,
        /// Approve without asking (scripting).
        #[arg(long, conflicts_with = "deny")]
        approve: bool,
        /// Deny without asking (scripting; reason "mistake").
        #[arg(long)]
        deny: bool,
    },
}

/// `countersign device pin …`
#[derive(Subcommand, Debug)]
pub enum PinAction {
    /// Set a PIN on an account that has none.
    Set {
        /// Account id or label (default: the only push account).
        account: Option<String>,
    },
    /// Change the PIN (asks for the current one).
    Change {
        /// Account id or label (default: the only push account).
        account: Option<String>,
    },
}

const KEY_SOURCE_FILE: &str = "key-source";

fn key_source(opts: &DeviceOpts, home: &Path) -> Result<KeySource, String> {
    let wanted = if opts.key_file { "key-file" } else { "keyring" };
    let marker = home.join(KEY_SOURCE_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(found) if found.trim() != wanted => {
            return Err(format!(
                "{} was set up with {}; run again {}",
                home.display(),
                if found.trim() == "key-file" {
                    "--key-file"
                } else {
                    "the OS keyring"
                },
                if found.trim() == "key-file" {
                    "with --key-file"
                } else {
                    "without --key-file"
                }
            ));
        }
        Ok(_) => {}
        Err(_) => {
            std::fs::create_dir_all(home)
                .map_err(|e| format!("cannot create {}: {e}", home.display()))?;
            std::fs::write(&marker, wanted)
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
        }
    }
    Ok(if opts.key_file {
        KeySource::KeyFile(home.join("storage.key"))
    } else {
        KeySource::OsKeyring {
            service: "countersign".into(),
            user: home.display().to_string(),
        }
    })
}

/// Opens the authenticator in `--home`.
async fn open(opts: &DeviceOpts, device_name: Option<String>) -> Result<Authenticator, String> {
    let home = opts.home.clone().unwrap_or_else(crate::default_home);
    let source = key_source(opts, &home)?;
    let data = home.join("data");
    let keyring = !opts.key_file;
    let storage = tokio::task::spawn_blocking(move || FileStorage::open(data, &source))
        .await
        .map_err(|e| format!("storage: {e}"))?
        .map_err(|e| {
            if keyring {
                format!(
                    "cannot open the storage key in the OS keyring: {e}\nhint: start a Secret \
                     Service (GNOME Keyring, KWallet), or on a headless machine use --key-file"
                )
            } else {
                format!("cannot open the storage in {}: {e}", home.display())
            }
        })?;
    let storage = Arc::new(storage);
    let logger: Arc<dyn Logger> = if opts.verbose {
        Arc::new(StderrLogger)
    } else {
        Arc::new(NoopLogger)
    };
    let http = ReqwestClient::new().map_err(|e| format!("HTTP client: {e}"))?;
    let hooks = PlatformHooks {
        storage: storage.clone(),
        vault: Arc::new(SoftwareKeyVault::new(storage)),
        verifier: Arc::new(TerminalVerifier),
        http: Arc::new(http),
        clock: Arc::new(SystemClock),
        logger,
    };
    let mut config = AuthenticatorConfig::new(Platform::Desktop);
    config.device_name = device_name.or_else(|| Some(default_device_name()));
    Authenticator::new(hooks, config).map_err(|e| explain(&e))
}

fn default_device_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "desktop".into());
    let name = format!("countersign CLI on {host}");
    name.chars().take(64).collect()
}

/// The error as a sentence with the next step.
pub fn explain(e: &Error) -> String {
    let hint = match e {
        Error::NotActivated => "no push account yet: run `countersign device activate <link>`",
        Error::DeviceDeregistered => {
            "the server removed this device and its account was wiped here: activate again"
        }
        Error::AccountNotFound => "no such account: see `countersign device list`",
        Error::VerificationCancelled => "nothing was sent",
        Error::VerificationFailed => "the PIN could not be checked; nothing was sent",
        Error::WrongPin { .. } => "try again; too many wrong PINs wipe the account",
        Error::PinLocked => "activate the account again",
        Error::RequestExpired => "ask for a new request (Resend on the sign-in page)",
        Error::RequestNotFound => "it was answered already or never reached this device",
        Error::AlreadyAnswered => "nothing to do",
        Error::Tampered => "the message failed verification and was ignored (possible attack)",
        Error::Unsupported => "this version of countersign does not support it; update",
        Error::InvalidInput { what: "account" } => {
            "several accounts are on that server: pick one with --account"
        }
        Error::InvalidInput { .. } => "check what you typed or pasted",
        Error::Network => "the server could not be reached; check the URL and retry",
        Error::NotCountersignServer => "check the server URL",
        Error::ServerRejected { code } if code == "wrong_number" => {
            "the number does not match the sign-in page: not approved"
        }
        Error::ServerRejected { .. } => "the server refused it",
        Error::AwaitingApproval => {
            "approve the move on the old device; `countersign device outbox` checks again"
        }
        Error::TransferDenied => {
            "the old device did not approve the move; nothing was activated: start a new transfer"
        }
        Error::Storage => {
            "local storage failed; check the data folder's permissions and the storage key"
        }
        Error::HookFailed => "the PIN prompt or the clock failed",
        Error::Cancelled => "stopped",
        Error::Internal => "an internal error; please report it",
    };
    format!("{e}: {hint}")
}

fn emit(json: bool, value: &Value, text: &str) {
    if json {
        outln!("{value}");
    } else {
        outln!("{text}");
    }
}

fn account_json(a: &AccountInfo) -> Value {
    let (kind, server, device) = match &a.kind {
        AccountKind::Push {
            server_url,
            device_id,
            ..
        } => ("push", Some(server_url.clone()), Some(device_id.clone())),
        AccountKind::Otp => ("otp", None, None),
    };
    json!({
        "id": a.id,
        "label": a.label,
        "issuer": a.issuer,
        "kind": kind,
        "server_url": server,
        "device_id": device,
        "pin_set": a.pin_set,
        "min_verification": verification_name(a.min_verification),
    })
}

fn verification_name(v: Verification) -> &'static str {
    match v {
        Verification::None => "none",
        Verification::Pin => "pin",
        Verification::Biometric => "biometric",
    }
}

fn display_name(a: &AccountInfo) -> String {
    match &a.issuer {
        Some(i) => format!("{} ({i})", a.label),
        None => a.label.clone(),
    }
}

/// Finds an account by id, label or `issuer:label`; without a selector, the only
/// account (of the wanted kind).
fn resolve(
    auth: &Authenticator,
    sel: Option<&str>,
    push_only: bool,
) -> Result<AccountInfo, String> {
    let all: Vec<AccountInfo> = auth
        .accounts()
        .map_err(|e| explain(&e))?
        .into_iter()
        .filter(|a| !push_only || matches!(a.kind, AccountKind::Push { .. }))
        .collect();
    let Some(sel) = sel else {
        return match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(if push_only {
                "no push account: run `countersign device activate <link>` first".into()
            } else {
                "no accounts: activate one or `countersign device add <otpauth-uri>`".into()
            }),
            _ => Err(
                "several accounts: name one (id or label; see `countersign device list`)".into(),
            ),
        };
    };
    let matches: Vec<&AccountInfo> = all
        .iter()
        .filter(|a| {
            a.id == sel
                || a.label.eq_ignore_ascii_case(sel)
                || a.issuer
                    .as_ref()
                    .is_some_and(|i| format!("{i}:{}", a.label).eq_ignore_ascii_case(sel))
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no account \"{sel}\": see `countersign device list`"
        )),
        _ => Err(format!(
            "\"{sel}\" matches several accounts: use the account id from `countersign device list`"
        )),
    }
}

/// Runs one device command.
pub async fn run(opts: DeviceOpts, command: DeviceCommand) -> Result<(), String> {
    countersign_server::push::install_crypto_provider();
    let json = opts.json;
    match command {
        DeviceCommand::Activate {
            offer,
            server,
            pin,
            name,
        } => {
            let auth = open(&opts, name).await?;
            let offer = offer.trim();
            // A link states the server's minimum PIN length; after a typed code
            // the activation result's policy may ask for more (activation then
            // says so, and the server keeps no device).
            let min_pin = ActivationOffer::parse_uri(offer)
                .ok()
                .and_then(|o| o.pin_min_length)
                .map_or(4, usize::from);
            let options = ActivationOptions {
                pin: if pin {
                    Some(term::read_new_pin(min_pin)?)
                } else {
                    None
                },
                biometric: false,
            };
            let (server, account) = if offer.starts_with("countersign:") {
                let server = ActivationOffer::parse_uri(offer)
                    .map(|o| o.server_url.as_str().to_owned())
                    .unwrap_or_default();
                (server, auth.activate_uri(offer, options).await)
            } else {
                let server = server.ok_or(
                    "a typed code needs the server: add --server URL (or paste the whole link)",
                )?;
                let account = auth.activate_code(&server, offer, None, options).await;
                (server, account)
            };
            let account = match account {
                // A transfer's offer: the old device must approve this one.
                Err(Error::AwaitingApproval) => await_transfer_approval(&auth, json).await?,
                other => other.map_err(|e| activation_error(&e, &server))?,
            };
            emit(
                json,
                &account_json(&account),
                &format!(
                    "Activated {} (account id {}).\nNext: `countersign device listen` to answer sign-in requests.",
                    display_name(&account),
                    account.id
                ),
            );
            Ok(())
        }
        DeviceCommand::List => {
            let auth = open(&opts, None).await?;
            let accounts = auth.accounts().map_err(|e| explain(&e))?;
            if json {
                let list: Vec<Value> = accounts.iter().map(account_json).collect();
                outln!("{}", Value::Array(list));
            } else if accounts.is_empty() {
                outln!("No accounts. Activate one with `countersign device activate <link>`.");
            } else {
                for a in &accounts {
                    let kind = match &a.kind {
                        AccountKind::Push { server_url, .. } => format!("push  {server_url}"),
                        AccountKind::Otp => "otp".to_string(),
                    };
                    let pin = if a.pin_set { "  PIN" } else { "" };
                    outln!("{}  {}  {kind}{pin}", a.id, display_name(a));
                }
            }
            Ok(())
        }
        DeviceCommand::Otp { account } => {
            let auth = open(&opts, None).await?;
            let targets = match account {
                Some(sel) => vec![resolve(&auth, Some(&sel), false)?],
                None => auth.accounts().map_err(|e| explain(&e))?,
            };
            if targets.is_empty() {
                return Err("no accounts: activate one or add an otpauth:// URI".into());
            }
            let mut out = Vec::new();
            for a in targets {
                let code = auth.otp(&a.id).map_err(|e| explain(&e))?;
                if json {
                    out.push(json!({
                        "id": a.id, "label": a.label, "issuer": a.issuer,
                        "code": code.code.as_str(), "seconds_left": code.seconds_left,
                    }));
                } else {
                    let left = code
                        .seconds_left
                        .map_or_else(|| "HOTP".to_string(), |s| format!("{s}s left"));
                    outln!("{}  {}  ({left})", display_name(&a), code.code.as_str());
                }
            }
            if json {
                outln!("{}", Value::Array(out));
            }
            Ok(())
        }
        DeviceCommand::Export { account, yes } => {
            let auth = open(&opts, None).await?;
            let chosen = match account {
                Some(sel) => vec![resolve(&auth, Some(&sel), false)?],
                None => auth.accounts().map_err(|e| explain(&e))?,
            };
            let (otp, push): (Vec<AccountInfo>, Vec<AccountInfo>) = chosen
                .into_iter()
                .partition(|a| matches!(a.kind, AccountKind::Otp));
            for a in &push {
                eprintln!(
                    "skipped {}: a push account's seed is bound to this device's enrollment \
                     (move it with a new activation)",
                    display_name(a)
                );
            }
            if otp.is_empty() {
                return Err("no TOTP/HOTP account to export".into());
            }
            if !yes {
                let answer = ask(
                    format!(
                        "This prints the secrets of {} account(s); anyone who sees them can \
                         make your codes. Continue? [y/N] ",
                        otp.len()
                    ),
                    true,
                )
                .await;
                if !matches!(answer.as_deref().map(str::trim), Some("y" | "Y" | "yes")) {
                    return Err("nothing exported (pass --yes to skip the question)".into());
                }
            }
            let mut out = Vec::with_capacity(otp.len());
            for a in &otp {
                let uri = auth.export_otpauth(&a.id).map_err(|e| explain(&e))?;
                if json {
                    out.push(
                        json!({"account_id": a.id, "label": display_name(a), "uri": uri.as_str()}),
                    );
                } else {
                    outln!("{}", uri.as_str());
                }
            }
            if json {
                outln!("{}", Value::Array(out));
            }
            eprintln!("exported {} account(s), skipped {}", otp.len(), push.len());
            Ok(())
        }
        DeviceCommand::Add { uri } if uri.trim().starts_with("otpauth-migration:") => {
            let auth = open(&opts, None).await?;
            let report = auth.import_otpauth_migration(&uri).map_err(|_| {
                "not a readable Google Authenticator export\nhint: an export looks like \
                     otpauth-migration://offline?data=…"
                    .to_string()
            })?;
            for s in &report.skipped {
                eprintln!("skipped {}: {}", s.name, s.reason);
            }
            let added: Vec<Value> = report.imported.iter().map(account_json).collect();
            let names: Vec<String> = report.imported.iter().map(display_name).collect();
            emit(
                json,
                &json!({"imported": added, "skipped": report.skipped.iter()
                    .map(|s| json!({"name": s.name, "reason": s.reason})).collect::<Vec<_>>()}),
                &format!(
                    "Imported {} account(s){}; skipped {}.",
                    report.imported.len(),
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", names.join(", "))
                    },
                    report.skipped.len()
                ),
            );
            Ok(())
        }
        DeviceCommand::Add { uri } => {
            // The parser's own reason (it names the part at fault, never a value).
            OtpauthUri::parse_new_account(&uri).map_err(|reason| {
                format!(
                    "invalid otpauth URI: {reason}\nhint: a key URI looks like \
                     otpauth://totp/Issuer:account?secret=BASE32SECRET"
                )
            })?;
            let auth = open(&opts, None).await?;
            let account = auth.import_otpauth(&uri).map_err(|e| explain(&e))?;
            emit(
                json,
                &account_json(&account),
                &format!(
                    "Added {} (account id {}).",
                    display_name(&account),
                    account.id
                ),
            );
            Ok(())
        }
        DeviceCommand::Remove { account, local } => {
            let auth = open(&opts, None).await?;
            let a = resolve(&auth, Some(&account), false)?;
            if local {
                auth.forget_account(&a.id)
            } else {
                auth.remove_account(&a.id).await
            }
            .map_err(|e| match e {
                Error::Network => format!(
                    "{}\nhint: `countersign device remove {} --local` wipes it here only",
                    explain(&e),
                    a.id
                ),
                other => explain(&other),
            })?;
            emit(
                json,
                &json!({"removed": a.id}),
                &format!("Removed {}.", display_name(&a)),
            );
            Ok(())
        }
        DeviceCommand::Resume { account } => {
            let auth = open(&opts, None).await?;
            let a = resolve(&auth, Some(&account), false)?;
            auth.resume_pushes(&a.id).await.map_err(|e| explain(&e))?;
            emit(
                json,
                &json!({"resumed": a.id}),
                "Sign-in requests can reach this phone again.",
            );
            Ok(())
        }
        DeviceCommand::Pin { action } => {
            let auth = open(&opts, None).await?;
            match action {
                PinAction::Set { account } => {
                    let a = resolve(&auth, account.as_deref(), true)?;
                    let min = pin_min(&a);
                    let pin = term::read_new_pin(min)?;
                    auth.set_pin(&a.id, &pin)
                        .await
                        .map_err(|e| pin_error(&e, min))?;
                    emit(
                        json,
                        &json!({"pin_set": a.id}),
                        &format!("PIN set for {}.", display_name(&a)),
                    );
                }
                PinAction::Change { account } => {
                    let a = resolve(&auth, account.as_deref(), true)?;
                    let min = pin_min(&a);
                    let old = term::read_pin("Current PIN: ").ok_or("PIN entry cancelled")?;
                    let new = term::read_new_pin(min)?;
                    auth.change_pin(&a.id, &old, &new)
                        .await
                        .map_err(|e| pin_error(&e, min))?;
                    emit(
                        json,
                        &json!({"pin_changed": a.id}),
                        &format!("PIN changed for {}.", display_name(&a)),
                    );
                }
            }
            Ok(())
        }
        DeviceCommand::Pending { wait } => {
            let auth = open(&opts, None).await?;
            let list = auth
                .pending(wait, &CancelHandle::new())
                .await
                .map_err(|e| explain(&e))?;
            if json {
                let out: Vec<Value> = list.iter().map(|r| request_json(&auth, r)).collect();
                outln!("{}", Value::Array(out));
            } else if list.is_empty() {
                outln!("No pending requests.");
            } else {
                for r in &list {
                    outln!("{}", describe(&auth, r));
                }
            }
            Ok(())
        }
        DeviceCommand::Approve { tx, number } => {
            let auth = open(&opts, None).await?;
            let account_id = account_of_request(&auth, &tx).await?;
            let outcome = auth
                .approve(&account_id, &tx, number.as_deref())
                .await
                .map_err(|e| explain(&e))?;
            let queued = outcome.delivery == Delivery::Queued;
            emit(
                json,
                &json!({"tx_id": tx, "decision": "approve", "queued": queued,
                        "verification": verification_name(outcome.verification)}),
                if queued { QUEUED_APPROVAL } else { "Approved." },
            );
            Ok(())
        }
        DeviceCommand::Deny { tx, not_me } => {
            let auth = open(&opts, None).await?;
            let account_id = account_of_request(&auth, &tx).await?;
            let reason = if not_me {
                DenyReason::NotMe
            } else {
                DenyReason::Mistake
            };
            let delivery = auth
                .deny(&account_id, &tx, reason)
                .await
                .map_err(|e| explain(&e))?;
            let queued = delivery == Delivery::Queued;
            emit(
                json,
                &json!({"tx_id": tx, "decision": "deny", "queued": queued,
                        "reason": if not_me { "not_me" } else { "mistake" }}),
                match (queued, not_me) {
                    (true, _) => QUEUED_DENIAL,
                    (false, true) => "Denied and reported as not you.",
                    (false, false) => "Denied.",
                },
            );
            Ok(())
        }
        DeviceCommand::Outbox => {
            let auth = open(&opts, None).await?;
            let entries = auth.deliver_outbox().await.map_err(|e| explain(&e))?;
            let decision = |d: Decision| match d {
                Decision::Approve => "approve",
                Decision::Deny => "deny",
            };
            if json {
                let list: Vec<Value> = entries
                    .iter()
                    .map(|e| {
                        let (state, code) = match &e.state {
                            OutboxState::Waiting => ("waiting", None),
                            OutboxState::Refused { code } => ("refused", Some(code.as_str())),
                        };
                        json!({"account_id": e.account_id, "tx_id": e.tx_id,
                               "decision": decision(e.decision), "state": state, "code": code})
                    })
                    .collect();
                outln!("{}", Value::Array(list));
            } else if entries.is_empty() {
                outln!("Every answer has reached its server.");
            }
            for e in &entries {
                match &e.state {
                    OutboxState::Waiting if !json => outln!(
                        "Waiting to be sent: {} {} (the server is unreachable)",
                        decision(e.decision),
                        e.tx_id
                    ),
                    OutboxState::Waiting => {}
                    OutboxState::Refused { code } => {
                        if !json {
                            outln!(
                                "Refused by the server ({code}): {} {}",
                                decision(e.decision),
                                e.tx_id
                            );
                        }
                        // Shown once: the user has been told.
                        auth.dismiss_outbox_entry(&e.account_id, &e.tx_id)
                            .map_err(|e| explain(&e))?;
                    }
                }
            }
            Ok(())
        }
        DeviceCommand::Transfer {
            account,
            remove_old,
        } => {
            let auth = open(&opts, None).await?;
            let account = resolve(&auth, account.as_deref(), true)?;
            let offer = auth
                .start_transfer(&account.id, remove_old)
                .await
                .map_err(|e| explain(&e))?;
            if json {
                outln!(
                    "{}",
                    json!({"account_id": account.id, "offer_uri": offer.offer_uri.as_str(),
                           "code": offer.code.as_str(), "expires_at": offer.expires_at,
                           "remove_old": remove_old})
                );
                return Ok(());
            }
            outln!(
                "Scan this with the new phone to move {}:",
                display_name(&account)
            );
            outln!("{}", term::qr(&offer.offer_uri)?);
            outln!("Link: {}", offer.offer_uri.as_str());
            outln!("Code: {}", offer.code.as_str());
            outln!(
                "Then approve the new phone here: `countersign device listen`.{}",
                if remove_old {
                    " Once it is approved, this device is removed from the account."
                } else {
                    ""
                }
            );
            Ok(())
        }
        DeviceCommand::Scan {
            uri,
            account,
            approve,
            deny,
        } => {
            let auth = open(&opts, None).await?;
            let account_id = match account {
                Some(sel) => Some(resolve(&auth, Some(&sel), true)?.id),
                None => None,
            };
            let r = auth
                .scan_login_qr(&uri, account_id.as_deref())
                .await
                .map_err(|e| explain(&e))?;
            if !approve && !deny {
                // Interactive, like `listen`: show, then ask.
                handle(&auth, &r, json).await;
                return Ok(());
            }
            if json {
                eprintln!("{}", describe(&auth, &r));
            } else {
                outln!("{}", describe(&auth, &r));
            }
            let (decision, queued) = if approve {
                let outcome = auth
                    .approve(&r.account_id, &r.tx_id, None)
                    .await
                    .map_err(|e| explain(&e))?;
                ("approve", outcome.delivery == Delivery::Queued)
            } else {
                let delivery = auth
                    .deny(&r.account_id, &r.tx_id, DenyReason::Mistake)
                    .await
                    .map_err(|e| explain(&e))?;
                ("deny", delivery == Delivery::Queued)
            };
            let message = match (queued, approve) {
                (true, true) => QUEUED_APPROVAL,
                (true, false) => QUEUED_DENIAL,
                (false, true) => "Approved: the sign-in page continues.",
                (false, false) => "Denied.",
            };
            emit(
                json,
                &json!({"tx_id": r.tx_id, "decision": decision, "queued": queued,
                        "request": request_json(&auth, &r)}),
                message,
            );
            Ok(())
        }
        DeviceCommand::Offline { payload } => {
            let auth = open(&opts, None).await?;
            let code = auth
                .answer_offline_qr(payload.trim())
                .map_err(|e| explain(&e))?;
            emit(
                json,
                &json!({"account_id": code.account_id, "rp": code.rp, "code": code.code.as_str()}),
                &format!(
                    "Response for {}: {}\nType it on the sign-in page.",
                    code.rp,
                    code.code.as_str()
                ),
            );
            Ok(())
        }
        DeviceCommand::Listen { once, wait } => {
            let auth = open(&opts, None).await?;
            listen(&auth, json, once, wait).await
        }
    }
}

/// The shortest PIN the account's server accepts.
fn pin_min(a: &AccountInfo) -> usize {
    a.policy
        .as_ref()
        .map_or(4, |p| usize::from(p.pin_min_length).max(4))
}

fn pin_error(e: &Error, min: usize) -> String {
    match e {
        Error::InvalidInput { what: "pin" } => format!(
            "the PIN must have {min} to 64 characters (this server's policy); nothing was changed"
        ),
        Error::InvalidInput {
            what: "pin already set",
        } => "this account has a PIN already: use `countersign device pin change`".into(),
        other => explain(other),
    }
}

/// An activation failure in activation words, naming the server that was asked.
fn activation_error(e: &Error, server: &str) -> String {
    let (what, hint) = match e {
        Error::InvalidInput { what: "pin" } => (
            "the PIN is too short for the server's policy (or not a valid PIN)".to_owned(),
            "activate again with a longer PIN (the offer can be tried again)",
        ),
        Error::InvalidInput { .. } => (
            e.to_string(),
            "paste the whole countersign://activate?… link from the QR, or the typed code with \
             --server URL",
        ),
        Error::NotCountersignServer => (
            format!("not a Countersign server at {server}"),
            "it answered, but not as a Countersign server: check the server URL",
        ),
        Error::Tampered => (
            format!("the key of the server at {server} does not match the one in the QR code"),
            "possible attack, or a QR from another server",
        ),
        Error::ServerRejected { code } if code == "not_found" => (
            format!("the server at {server} does not know this activation offer"),
            "check the code and the server URL, or create a new offer on the enrollment page",
        ),
        Error::ServerRejected { code } if code == "replayed" => (
            "this activation offer was used already".to_owned(),
            "create a new one on the enrollment page",
        ),
        Error::ServerRejected { code } if code == "bad_signature" => (
            "the code does not match the activation offer".to_owned(),
            "check the code for typos, or create a new offer on the enrollment page",
        ),
        Error::ServerRejected { code } if code == "rate_limited" => (
            "too many failed attempts for this activation offer".to_owned(),
            "create a new one on the enrollment page",
        ),
        Error::RequestExpired => (
            "the activation offer has expired, or this computer's clock is off".to_owned(),
            "check the clock, or create a new offer on the enrollment page",
        ),
        Error::ServerRejected { code } => (
            format!("the server at {server} refused the activation offer ({code})"),
            "create a new offer on the enrollment page",
        ),
        Error::Network => (
            format!("the server at {server} could not be reached"),
            "is it running, is the URL right? (If it answered before the connection failed, \
             the activation is confirmed by the next `countersign device` command that \
             reaches it, e.g. `outbox`, and the account then shows in `list`.)",
        ),
        other => return explain(other),
    };
    format!("activation failed: {what}\nhint: {hint}")
}

/// A transfer's new phone: polls until the old device approves (the account
/// is then listed) or refuses, for at most the offer's 10 minutes.
async fn await_transfer_approval(auth: &Authenticator, json: bool) -> Result<AccountInfo, String> {
    if json {
        eprintln!("Waiting for the approval on the old device…");
    } else {
        outln!("Waiting for the approval on the old device…");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(660);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        match auth.confirm_pending_activations().await {
            Ok(mut done) if !done.is_empty() => return Ok(done.remove(0)),
            Ok(_) => {}
            Err(e) => return Err(format!("activation failed: {}", explain(&e))),
        }
    }
    Err(
        "no answer from the old device yet; `countersign device outbox` checks again later"
            .to_owned(),
    )
}

/// What `approve` and `deny` print when the answer waits in the outbox.
const QUEUED_APPROVAL: &str = "Approved, but the server could not be reached: the approval is saved and is sent by the next `countersign device` command.";
const QUEUED_DENIAL: &str = "Denied, but the server could not be reached: the denial is saved and is sent by the next `countersign device` command.";

/// The account a request belongs to: a request received earlier (by any
/// process), an answer waiting in the outbox, or else asked from the servers.
async fn account_of_request(auth: &Authenticator, tx: &str) -> Result<String, String> {
    let stored = auth.pending_requests().map_err(|e| explain(&e))?;
    if let Some(r) = stored.into_iter().find(|r| r.tx_id == tx) {
        return Ok(r.account_id);
    }
    let outbox = auth.outbox().map_err(|e| explain(&e))?;
    if let Some(e) = outbox.into_iter().find(|e| e.tx_id == tx) {
        return Ok(e.account_id);
    }
    let list = match auth.pending(0, &CancelHandle::new()).await {
        Ok(list) => list,
        // Another challenge failed (unreachable, tampered): the ones that opened
        // are kept, and this one may be among them.
        Err(e) => {
            let opened = auth.pending_requests().map_err(|e| explain(&e))?;
            if !opened.iter().any(|r| r.tx_id == tx) {
                return Err(explain(&e));
            }
            opened
        }
    };
    list.into_iter()
        .find(|r| r.tx_id == tx)
        .map(|r| r.account_id)
        .ok_or_else(|| {
            format!("no pending request {tx}: it was answered, expired, or is for another device")
        })
}

fn matching_json(m: &NumberMatching) -> Value {
    match m {
        NumberMatching::Off => json!({"mode": "off"}),
        NumberMatching::Type { digits } => json!({"mode": "type", "digits": digits}),
        NumberMatching::Pick { choices } => json!({"mode": "pick", "choices": choices}),
        NumberMatching::Show { number } => json!({"mode": "show", "number": number}),
    }
}

fn request_json(auth: &Authenticator, r: &PendingRequest) -> Value {
    let c = &r.challenge;
    let account = auth.account(&r.account_id).ok();
    json!({
        "account_id": r.account_id,
        "account": account.as_ref().map(|a| a.label.clone()),
        "tx_id": r.tx_id,
        "kind": format!("{:?}", c.kind).to_lowercase(),
        "rp": c.context.rp,
        "ip": c.context.ip,
        "location": c.context.location,
        "user_agent": c.context.user_agent,
        "text": c.text,
        "transaction": c.transaction.as_ref().map(|t| json!({
            "amount": t.amount, "currency": t.currency, "payee": t.payee
        })),
        "verification": verification_name(c.verification),
        "number_matching": matching_json(&c.number_matching),
        "seconds_left": r.seconds_left,
    })
}

/// The request as the terminal shows it.
fn describe(auth: &Authenticator, r: &PendingRequest) -> String {
    let c = &r.challenge;
    let mut s = String::new();
    let title = match c.kind {
        ChallengeKind::Transfer => "Move this account to a new phone",
        ChallengeKind::Transaction => "Transaction to sign",
        ChallengeKind::Login => "Sign-in request",
    };
    s.push_str(&format!("── {title} ── {}\n", r.tx_id));
    s.push_str(&format!("  From:     {}\n", c.context.rp));
    if let Ok(a) = auth.account(&r.account_id) {
        s.push_str(&format!("  Account:  {}\n", display_name(&a)));
    }
    if let Some(t) = &c.text {
        s.push_str(&format!("  Message:  {t}\n"));
    }
    if let Some(t) = &c.transaction {
        s.push_str(&format!("  Amount:   {} {}\n", t.amount, t.currency));
        s.push_str(&format!("  Payee:    {}\n", t.payee));
    }
    let place: Vec<&str> = [&c.context.ip, &c.context.location, &c.context.user_agent]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .collect();
    if !place.is_empty() {
        s.push_str(&format!("  Where:    {}\n", place.join(" · ")));
    }
    if c.verification != Verification::None {
        s.push_str(&format!(
            "  Needs:    {}\n",
            verification_name(c.verification).to_uppercase()
        ));
    }
    if let NumberMatching::Show { number } = &c.number_matching {
        s.push_str(&format!(
            "  Number:   {number} (type it on the sign-in page)\n"
        ));
    }
    s.push_str(&format!("  Expires:  in {} s", r.seconds_left));
    s
}

async fn ask(prompt: String, json: bool) -> Option<String> {
    tokio::task::spawn_blocking(move || term::ask(&prompt, json))
        .await
        .ok()
        .flatten()
}

async fn listen(auth: &Authenticator, json: bool, once: bool, wait: u32) -> Result<(), String> {
    let cancel = CancelHandle::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }
    let say = |text: &str| {
        if json {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    };
    say("Listening for sign-in requests (Ctrl-C to stop)…");
    let mut skipped: HashSet<String> = HashSet::new();
    loop {
        // A held request not handled yet (one whose approval met a wrong
        // number) is shown again at once: the poll would wait while the held
        // requests stay the same.
        let unhandled = auth
            .pending_requests()
            .map_err(|e| explain(&e))?
            .iter()
            .any(|r| !skipped.contains(&r.tx_id));
        let polled = auth
            .pending(if unhandled { 0 } else { wait }, &cancel)
            .await;
        let list = match polled {
            Ok(l) => l,
            Err(Error::Cancelled) => return Ok(()),
            // A server or one challenge failed: show what did open, retry the rest.
            Err(e @ (Error::Network | Error::Tampered)) => {
                say(&if e == Error::Network {
                    "The server is unreachable; retrying in 5 s…".to_owned()
                } else {
                    explain(&e)
                });
                let opened = auth.pending_requests().map_err(|e| explain(&e))?;
                if opened.is_empty() {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                opened
            }
            Err(Error::DeviceDeregistered) => {
                say(&explain(&Error::DeviceDeregistered));
                if auth
                    .accounts()
                    .map_err(|e| explain(&e))?
                    .iter()
                    .any(|a| matches!(a.kind, AccountKind::Push { .. }))
                {
                    continue;
                }
                return Err("no push accounts left".into());
            }
            Err(e) => return Err(explain(&e)),
        };
        let fresh: Vec<PendingRequest> = list
            .into_iter()
            .filter(|r| !skipped.contains(&r.tx_id))
            .collect();
        if fresh.is_empty() {
            // Only skipped requests are pending: an older server answers
            // long-polls at once then.
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        for r in fresh {
            if let Some(tx) = handle(auth, &r, json).await {
                skipped.insert(tx);
            } else if once {
                return Ok(());
            }
        }
    }
}

/// Shows one request and acts on the user's choice; returns the tx id if skipped.
async fn handle(auth: &Authenticator, r: &PendingRequest, json: bool) -> Option<String> {
    let text = describe(auth, r);
    if json {
        eprintln!("{text}");
        outln!(
            "{}",
            json!({"event": "request", "request": request_json(auth, r)})
        );
    } else {
        outln!("{text}");
    }
    let report = |outcome: &str, message: &str| {
        if json {
            outln!(
                "{}",
                json!({"event": outcome, "tx_id": r.tx_id, "message": message})
            );
        } else {
            outln!("{message}");
        }
    };
    let choice = ask(
        "Approve? [a]pprove, [d]eny, [n]ot me (report), [s]kip: ".into(),
        json,
    )
    .await;
    let Some(choice) = choice else {
        report("skipped", "No answer (end of input): skipped.");
        return Some(r.tx_id.clone());
    };
    match choice.to_ascii_lowercase().as_str() {
        "a" | "approve" | "y" | "yes" => {
            let number = match &r.challenge.number_matching {
                NumberMatching::Off => None,
                // `describe` showed the number to type on the page.
                NumberMatching::Show { .. } => None,
                NumberMatching::Type { digits } => Some(
                    ask(
                        format!("Type the {digits}-digit number shown on the sign-in page: "),
                        json,
                    )
                    .await
                    .unwrap_or_default(),
                ),
                NumberMatching::Pick { choices } => Some(
                    ask(
                        format!(
                            "Which number does the sign-in page show? {}: ",
                            choices.join(" / ")
                        ),
                        json,
                    )
                    .await
                    .unwrap_or_default(),
                ),
            };
            match auth
                .approve(&r.account_id, &r.tx_id, number.as_deref())
                .await
            {
                Ok(o) => {
                    let how = match o.verification {
                        Verification::None => String::new(),
                        v => format!(" (verified with {})", verification_name(v).to_uppercase()),
                    };
                    match o.delivery {
                        Delivery::Delivered => report("approved", &format!("✔ Approved{how}.")),
                        Delivery::Queued => report("queued", &format!("✔ {QUEUED_APPROVAL}")),
                    }
                }
                Err(Error::ServerRejected { code }) if code == "wrong_number" => report(
                    "rejected",
                    "✘ Wrong number: it does not match the sign-in page. Not approved.",
                ),
                Err(Error::InvalidInput { .. }) => report(
                    "rejected",
                    "✘ That is not the number format the sign-in page shows. Not approved.",
                ),
                Err(e) => report("error", &format!("✘ {}", explain(&e))),
            }
            None
        }
        "d" | "deny" | "n" | "not me" | "no" => {
            let reason = if choice.eq_ignore_ascii_case("d") || choice.eq_ignore_ascii_case("deny")
            {
                DenyReason::Mistake
            } else {
                DenyReason::NotMe
            };
            match auth.deny(&r.account_id, &r.tx_id, reason).await {
                Ok(Delivery::Queued) => report("queued", QUEUED_DENIAL),
                Ok(Delivery::Delivered) if reason == DenyReason::NotMe => {
                    report("denied", "✘ Denied and reported as not you.")
                }
                Ok(Delivery::Delivered) => report("denied", "Denied."),
                Err(e) => report("error", &format!("✘ {}", explain(&e))),
            }
            None
        }
        _ => {
            report("skipped", "Skipped.");
            Some(r.tx_id.clone())
        }
    }
}
