//! Terminal helpers: questions, PIN entry without echo, QR codes, the PIN prompt
//! the core calls (`UserVerifier`).

use std::io::{BufRead, ErrorKind, IsTerminal, Write};

use countersign_core::platform::{
    HookError, LogLevel, Logger, UserVerifier, VerificationKind, VerificationOutcome,
    VerificationPrompt,
};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use zeroize::Zeroizing;

/// Exit status after stdout was closed by its reader (`countersign … | head -1`):
/// 128 + SIGPIPE, what a shell reports for the Unix tools that die of the signal.
const EXIT_BROKEN_PIPE: i32 = 141;

/// Writes to stdout; `println!` would panic when the reader has gone away.
/// A closed pipe ends the process quietly ([`EXIT_BROKEN_PIPE`]); any other
/// write failure ends it with an error message.
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(EXIT_BROKEN_PIPE),
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` through [`write_stdout`]: survives a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::term::write_stdout(format_args!($($arg)*), true)
    };
}
pub(crate) use outln;

/// Prints `prompt` (to stderr when stdout carries JSON) and reads one line.
/// `None` at end of input.
pub fn ask(prompt: &str, to_stderr: bool) -> Option<String> {
    if to_stderr {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    } else {
        write_stdout(format_args!("{prompt}"), false);
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    match read {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

/// Reads a PIN: without echo on a terminal, else one line of stdin (scripts).
pub fn read_pin(prompt: &str) -> Option<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .ok()
            .map(|p| Zeroizing::new(p.trim().to_string()))
    } else {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = Zeroizing::new(String::new());
        let read = std::io::stdin().lock().read_line(&mut line);
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(Zeroizing::new(line.trim().to_string())),
        }
    }
}

/// Asks for a new PIN of at least `min` characters twice; an error if cancelled
/// or the two differ.
pub fn read_new_pin(min: usize) -> Result<Zeroizing<String>, String> {
    let first =
        read_pin(&format!("New PIN (at least {min} characters): ")).ok_or("PIN entry cancelled")?;
    let again = read_pin("Repeat the new PIN: ").ok_or("PIN entry cancelled")?;
    if first.as_str() != again.as_str() {
        return Err("the two PINs differ; nothing was changed".into());
    }
    Ok(first)
}

/// `data` as a QR code drawn with half-block characters (two modules per line).
pub fn qr(data: &str) -> Result<String, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Asks for the app PIN in the terminal when the core needs it.
#[derive(Debug, Default)]
pub struct TerminalVerifier;

#[async_trait::async_trait]
impl UserVerifier for TerminalVerifier {
    async fn verify(&self, prompt: VerificationPrompt) -> Result<VerificationOutcome, HookError> {
        Ok(match prompt.kind {
            VerificationKind::Biometric => {
                eprintln!("This account asks for biometrics, which this desktop cannot do.");
                VerificationOutcome::Failed
            }
            VerificationKind::Pin => {
                let text = format!(
                    "{} ({}). PIN (empty to cancel): ",
                    prompt.reason, prompt.account_label
                );
                let pin = tokio::task::spawn_blocking(move || read_pin(&text))
                    .await
                    .ok()
                    .flatten();
                match pin {
                    Some(p) if !p.is_empty() => VerificationOutcome::Verified { pin: Some(p) },
                    _ => VerificationOutcome::Cancelled,
                }
            }
        })
    }
}

/// Core log lines on stderr (`--verbose`); the core never logs secrets.
#[derive(Debug, Default)]
pub struct StderrLogger;

impl Logger for StderrLogger {
    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("[{level:?}] {message}");
    }
}
