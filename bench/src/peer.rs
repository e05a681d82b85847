//! privacyIDEA 3.14 side by side (`cargo xtask bench-peer`): gunicorn with 4
//! workers on SQLite on loopback, push tokens in poll-only mode (no Firebase),
//! driven by the same worker processes.
//!
//! One login, as privacyIDEA's push flow runs it:
//! 1. the RP's `POST /validate/check user=… pass=` (the empty PIN triggers the
//!    push challenge; note `transaction_id`);
//! 2. the phone polls `GET /ttype/push` (serial, timestamp, RSA signature over
//!    `serial|timestamp`) and answers `POST /ttype/push` (nonce, serial, RSA
//!    signature over `nonce|serial`; see privacyidea/lib/tokens/pushtoken.py);
//! 3. the RP polls `GET /validate/polltransaction` until true, then finalises
//!    with `POST /validate/check user pass= transaction_id` (value true).
//!
//! The phone signs RSA-SHA256 PKCS#1 v1.5 with ring (a 2048-bit key made by
//! `openssl genpkey`); it does not verify privacyIDEA's signature on the
//! challenge (that costs the phone, not the server).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use countersign_test_support::{http_client, reqwest};

use crate::procs::{Service, free_port, wait_http};
use crate::progress_line;

/// An enrolled phone, as handed to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phone {
    /// The user.
    pub user: String,
    /// The push token's serial.
    pub serial: String,
    /// The phone's RSA private key, DER (PKCS#1 `RSAPrivateKey`, as
    /// `openssl genpkey -outform DER` writes it), base64.
    pub key_der: String,
}

/// A phone in a worker: its key and HTTP client.
pub struct PhoneClient {
    phone: Phone,
    key: RsaKeyPair,
    base: String,
    http: reqwest::Client,
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: String,
    pairs: &[(&str, &str)],
    auth: Option<&str>,
) -> Result<Value, String> {
    let encoded = form(pairs);
    let mut request = if method == "GET" {
        http.get(format!("{url}?{encoded}"))
    } else {
        http.post(url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded)
    };
    if let Some(token) = auth {
        request = request.header("authorization", token);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 200 || body["result"]["status"] != true {
        return Err(format!("{method} {url}: {status} {body}"));
    }
    Ok(body)
}

/// An ISO 8601 UTC timestamp of now (what privacyIDEA's `isoparse` reads).
fn iso_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_micros()
    )
}

impl PhoneClient {
    /// The phone's client for privacyIDEA at `base`.
    pub fn new(base: &str, phone: Phone) -> Result<Self, String> {
        let der = STANDARD
            .decode(&phone.key_der)
            .map_err(|e| format!("phone key: {e}"))?;
        let key = RsaKeyPair::from_der(&der).map_err(|e| format!("phone key: {e}"))?;
        Ok(Self {
            phone,
            key,
            base: base.to_owned(),
            http: http_client(),
        })
    }

    /// Base32 of the RSA-SHA256 PKCS#1 v1.5 signature over `data`.
    fn sign(&self, data: &str) -> Result<String, String> {
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                data.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "rsa sign".to_string())?;
        Ok(data_encoding::BASE32.encode(&sig))
    }

    /// Polls for the open challenge and approves it.
    async fn approve(&self) -> Result<(), String> {
        let url = format!("{}/ttype/push", self.base);
        let serial = self.phone.serial.as_str();
        let timestamp = iso_now();
        let signature = self.sign(&format!("{serial}|{timestamp}"))?;
        let polled = call(
            &self.http,
            "GET",
            url.clone(),
            &[
                ("serial", serial),
                ("timestamp", &timestamp),
                ("signature", &signature),
            ],
            None,
        )
        .await?;
        let nonce = polled["result"]["value"][0]["nonce"]
            .as_str()
            .ok_or_else(|| format!("poll: no challenge: {polled}"))?
            .to_owned();
        let signature = self.sign(&format!("{nonce}|{serial}"))?;
        let answered = call(
            &self.http,
            "POST",
            url,
            &[
                ("nonce", &nonce),
                ("serial", serial),
                ("signature", &signature),
            ],
            None,
        )
        .await?;
        if answered["result"]["value"] != true {
            return Err(format!("answer: {answered}"));
        }
        Ok(())
    }
}

/// The relying party's side of a login.
pub struct RpSide {
    base: String,
    http: reqwest::Client,
}

impl RpSide {
    /// The RP's client for privacyIDEA at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: http_client(),
        }
    }

    /// One login of `phone`'s user.
    pub async fn login(&self, phone: &mut PhoneClient) -> Result<(), String> {
        let user = phone.phone.user.clone();
        let check = format!("{}/validate/check", self.base);
        let started = call(
            &self.http,
            "POST",
            check.clone(),
            &[("user", &user), ("pass", "")],
            None,
        )
        .await?;
        let tx = started["detail"]["transaction_id"]
            .as_str()
            .ok_or_else(|| format!("check: no transaction: {started}"))?
            .to_owned();
        phone.approve().await?;
        let poll = format!("{}/validate/polltransaction", self.base);
        let mut tries = 0;
        loop {
            let polled = call(
                &self.http,
                "GET",
                poll.clone(),
                &[("transaction_id", &tx)],
                None,
            )
            .await?;
            if polled["result"]["value"] == true {
                break;
            }
            tries += 1;
            if tries > 50 {
                return Err(format!("polltransaction never true: {polled}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = call(
            &self.http,
            "POST",
            check,
            &[("user", &user), ("pass", ""), ("transaction_id", &tx)],
            None,
        )
        .await?;
        if done["result"]["value"] != true {
            return Err(format!("final check: {done}"));
        }
        Ok(())
    }
}

/// A running privacyIDEA with its enrolled phones.
pub struct Privacyidea {
    /// gunicorn's master process (its workers are its children).
    pub gunicorn: Service,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// One phone per user.
    pub phones: Vec<Phone>,
}

const ADMIN_PASSWORD: &str = "bench-admin-password";

fn pi_manage(venv: &Path, cfg: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(venv.join("bin/pi-manage"))
        .args(args)
        .env("PRIVACYIDEA_CONFIGFILE", cfg)
        .output()
        .map_err(|e| format!("pi-manage: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pi-manage {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("openssl: {e}"))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// Phone `index`'s key pair: (private key DER, SubjectPublicKeyInfo DER), made by
/// openssl once and kept in `cache`.
fn phone_key(cache: &Path, index: u64) -> Result<(Vec<u8>, Vec<u8>), String> {
    let file = cache.join(format!("phone-{index}.der"));
    if let Ok(key_der) = std::fs::read(&file) {
        let spki = openssl(
            &["pkey", "-inform", "DER", "-pubout", "-outform", "DER"],
            Some(&key_der),
        )?;
        return Ok((key_der, spki));
    }
    let key_der = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
        ],
        None,
    )?;
    let spki = openssl(
        &["pkey", "-inform", "DER", "-pubout", "-outform", "DER"],
        Some(&key_der),
    )?;
    std::fs::write(&file, &key_der).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((key_der, spki))
}

/// What `pi-manage` makes once: the encryption key, the audit keys and the
/// database with its tables and the admin (copied for every run).
const TEMPLATE_FILES: &[&str] = &["enckey", "private.pem", "public.pem", "pi.sqlite"];

/// A pi.cfg for the files in `dir`.
fn pi_cfg(dir: &Path, pepper: &str) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut secret = [0u8; 24];
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut secret);
    format!(
        "SQLALCHEMY_DATABASE_URI = 'sqlite:///{db}'\n\
         SECRET_KEY = '{secret}'\n\
         PI_PEPPER = '{pepper}'\n\
         PI_ENCFILE = '{enc}'\n\
         PI_AUDIT_KEY_PRIVATE = '{private}'\n\
         PI_AUDIT_KEY_PUBLIC = '{public}'\n\
         PI_LOGFILE = '{log}'\n\
         PI_LOGLEVEL = 30\n",
        db = path("pi.sqlite"),
        secret = hex::encode(secret),
        enc = path("enckey"),
        private = path("private.pem"),
        public = path("public.pem"),
        log = path("privacyidea.log"),
    )
}

/// The set-up privacyIDEA files, made with `pi-manage` on first use and kept
/// beside the venv (each `pi-manage` call loads all of privacyIDEA: seconds).
fn setup_template(venv: &Path) -> Result<PathBuf, String> {
    let dir = venv.with_file_name("privacyidea-template");
    let marker = dir.join("complete");
    if marker.exists() {
        return Ok(dir);
    }
    progress_line("privacyIDEA: first set-up with pi-manage (cached afterwards)");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut pepper = [0u8; 24];
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut pepper);
    let pepper = hex::encode(pepper);
    std::fs::write(dir.join("pepper"), &pepper).map_err(|e| e.to_string())?;
    let cfg = dir.join("pi.cfg");
    std::fs::write(&cfg, pi_cfg(&dir, &pepper)).map_err(|e| format!("pi.cfg: {e}"))?;
    pi_manage(venv, &cfg, &["setup", "create_enckey"])?;
    pi_manage(venv, &cfg, &["setup", "create_audit_keys"])?;
    pi_manage(venv, &cfg, &["setup", "create_tables"])?;
    pi_manage(venv, &cfg, &["admin", "add", "admin", "-p", ADMIN_PASSWORD])?;
    std::fs::write(&marker, "").map_err(|e| e.to_string())?;
    Ok(dir)
}

impl Privacyidea {
    /// Sets privacyIDEA up in `dir` from `venv` (config, keys, tables, admin,
    /// a passwd resolver with `users` users, poll-only push policies), starts
    /// gunicorn with 4 workers and enrolls one push token per user.
    pub fn start(venv: &Path, dir: &Path, users: u64) -> Result<Self, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = |name: &str| -> PathBuf { dir.join(name) };
        let template = setup_template(venv)?;
        for file in TEMPLATE_FILES {
            std::fs::copy(template.join(file), path(file))
                .map_err(|e| format!("copy {file}: {e}"))?;
        }
        let pepper = std::fs::read_to_string(template.join("pepper")).map_err(|e| e.to_string())?;
        let cfg = path("pi.cfg");
        std::fs::write(&cfg, pi_cfg(dir, pepper.trim())).map_err(|e| format!("pi.cfg: {e}"))?;
        let passwd: String = (0..users)
            .map(|i| {
                format!(
                    "pi{i}:x:{}:{}:Bench user {i}:/home/pi{i}:/bin/sh\n",
                    20000 + i,
                    20000 + i
                )
            })
            .collect();
        std::fs::write(path("passwd"), passwd).map_err(|e| format!("passwd: {e}"))?;

        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(path("gunicorn.log")).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let app = format!(
            "privacyidea.app:create_app(config_name='production', config_file='{}', silent=True)",
            cfg.display()
        );
        let mut gunicorn = Service::spawn(
            "gunicorn (privacyIDEA)",
            Command::new(venv.join("bin/gunicorn"))
                .args(["--workers", "4", "--bind", &format!("127.0.0.1:{port}")])
                .args(["--timeout", "120", "--chdir"])
                .arg(dir)
                .arg(&app)
                .env("PRIVACYIDEA_CONFIGFILE", &cfg)
                .stdout(log)
                .stderr(log_err),
        )?;
        wait_http(&format!("{base}/"), &mut gunicorn, Duration::from_secs(120))?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let phones = runtime.block_on(configure(&base, &path("passwd"), users, &template))?;
        Ok(Self {
            gunicorn,
            base,
            phones,
        })
    }
}

async fn configure(
    base: &str,
    passwd: &Path,
    users: u64,
    keys: &Path,
) -> Result<Vec<Phone>, String> {
    let http = http_client();
    let auth = call(
        &http,
        "POST",
        format!("{base}/auth"),
        &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        None,
    )
    .await?;
    let token = auth["result"]["value"]["token"]
        .as_str()
        .ok_or("no admin token")?
        .to_owned();
    let admin = |path: &str, body: Value| {
        let http = http.clone();
        let token = token.clone();
        let url = format!("{base}{path}");
        async move {
            let response = http
                .post(&url)
                .header("authorization", token)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status != 200 || body["result"]["status"] != true {
                return Err(format!("POST {url}: {status} {body}"));
            }
            Ok::<Value, String>(body)
        }
    };
    let passwd = passwd.display().to_string();
    admin(
        "/resolver/bench",
        serde_json::json!({"type": "passwdresolver", "fileName": passwd}),
    )
    .await?;
    admin("/realm/bench", serde_json::json!({"resolvers": "bench"})).await?;
    admin("/defaultrealm/bench", serde_json::json!({})).await?;
    admin(
        "/policy/bench-push-enroll",
        serde_json::json!({
            "scope": "enrollment",
            "active": true,
            "action": {
                "push_firebase_configuration": "poll only",
                "push_registration_url": format!("{base}/ttype/push"),
                "push_ssl_verify": "0",
            },
        }),
    )
    .await?;
    admin(
        "/policy/bench-push-auth",
        serde_json::json!({
            "scope": "authentication",
            "active": true,
            "action": {
                "push_allow_polling": "allow",
                "push_ssl_verify": "0",
            },
        }),
    )
    .await?;
    let mut phones = Vec::new();
    for i in 0..users {
        let user = format!("pi{i}");
        let init = admin(
            "/token/init",
            serde_json::json!({"type": "push", "genkey": 1, "user": user, "realm": "bench"}),
        )
        .await?;
        let serial = init["detail"]["serial"]
            .as_str()
            .ok_or_else(|| format!("token/init: no serial: {init}"))?
            .to_owned();
        let credential = init["detail"]["enrollment_credential"]
            .as_str()
            .ok_or_else(|| format!("token/init: no enrollment_credential: {init}"))?
            .to_owned();
        let (key_der, spki) = phone_key(keys, i)?;
        call(
            &http,
            "POST",
            format!("{base}/ttype/push"),
            &[
                ("enrollment_credential", &credential),
                ("serial", &serial),
                ("fbtoken", "poll-only"),
                ("pubkey", &STANDARD.encode(&spki)),
            ],
            None,
        )
        .await?;
        phones.push(Phone {
            user,
            serial,
            key_der: STANDARD.encode(&key_der),
        });
    }
    Ok(phones)
}
