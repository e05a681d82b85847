//! Child processes: services killed when dropped, and the worker pool.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::worker::{Command as WorkerCommand, Outcome, Setup};

/// A service process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Service {
    /// What it is, for messages.
    pub name: String,
    child: Child,
}

impl Service {
    /// Starts `cmd` as a service named `name`.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self, String> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        watchdog(child.id());
        Ok(Self {
            name: name.into(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited ({status})", self.name)),
            _ => Ok(()),
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops `child` when this process ends, even when it is killed and `Drop`
/// never runs (a detached shell polls for our pid, as tests/support's
/// PostgreSQL watchdog does).
fn watchdog(child: u32) {
    // The child's start time (field 22 of its stat) tells it from a later
    // process that reuses its pid.
    let started = std::fs::read_to_string(format!("/proc/{child}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 1..)?.to_owned();
            rest.split_whitespace().nth(19).map(str::to_owned)
        })
        .unwrap_or_default();
    let same = format!(
        "[ \"$(sed 's/.*) //' /proc/{child}/stat 2>/dev/null | cut -d' ' -f20)\" = \"{started}\" ]"
    );
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; {same} && kill -TERM {child}; \
         sleep 5; {same} && kill -KILL {child}",
        me = std::process::id()
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Waits until `GET url` answers (any status) or `service` exits.
pub fn wait_http(url: &str, service: &mut Service, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let hostport = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    loop {
        service.check_alive()?;
        if let Ok(mut stream) = std::net::TcpStream::connect(&hostport) {
            let path = url
                .trim_start_matches("http://")
                .find('/')
                .map(|i| &url["http://".len() + i..])
                .unwrap_or("/");
            let request = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut first = String::new();
                let mut reader = BufReader::new(stream);
                if reader.read_line(&mut first).is_ok() && first.starts_with("HTTP/") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not answer at {url} in time", service.name));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A message from a worker's stdout.
enum FromWorker {
    Ready,
    Progress(u64),
    Outcome(Outcome),
    Failed(String),
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    progress: u64,
}

/// Worker processes (this binary re-executed as `countersign-bench worker`).
pub struct Workers {
    workers: Vec<Worker>,
    events: mpsc::Receiver<(usize, FromWorker)>,
}

impl Workers {
    /// Starts one worker per setup and waits until each has enrolled its devices.
    pub fn start(setups: Vec<Setup>) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
        let (tx, events) = mpsc::channel();
        let mut workers = Vec::new();
        for (index, setup) in setups.into_iter().enumerate() {
            let mut child = Command::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("start worker: {e}"))?;
            let mut stdin = child.stdin.take().ok_or("worker stdin")?;
            let stdout = child.stdout.take().ok_or("worker stdout")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    let event = if value.get("ready").is_some() {
                        FromWorker::Ready
                    } else if let Some(n) = value.get("progress").and_then(|v| v.as_u64()) {
                        FromWorker::Progress(n)
                    } else {
                        match serde_json::from_value::<Outcome>(value) {
                            Ok(o) => FromWorker::Outcome(o),
                            Err(e) => FromWorker::Failed(format!("worker answer: {e}")),
                        }
                    };
                    if tx.send((index, event)).is_err() {
                        return;
                    }
                }
                let _ = tx.send((index, FromWorker::Failed("worker exited".into())));
            });
            let line = serde_json::to_string(&setup).map_err(|e| e.to_string())?;
            writeln!(stdin, "{line}").map_err(|e| format!("worker stdin: {e}"))?;
            workers.push(Worker {
                child,
                stdin,
                progress: 0,
            });
        }
        let pool = Self { workers, events };
        let mut ready = 0;
        while ready < pool.workers.len() {
            match pool.next_event(Duration::from_secs(600))? {
                (_, FromWorker::Ready) => ready += 1,
                (_, FromWorker::Failed(e)) => return Err(format!("worker setup: {e}")),
                _ => {}
            }
        }
        Ok(pool)
    }

    fn next_event(&self, limit: Duration) -> Result<(usize, FromWorker), String> {
        self.events
            .recv_timeout(limit)
            .map_err(|_| "workers went silent".to_string())
    }

    /// Runs `commands[i]` on worker i (all at once) and merges their outcomes.
    /// `on_progress` gets the logins done so far about every second.
    pub fn run(
        &mut self,
        commands: &[WorkerCommand],
        mut on_progress: impl FnMut(u64),
    ) -> Result<Outcome, String> {
        for (worker, command) in self.workers.iter_mut().zip(commands) {
            worker.progress = 0;
            let line = serde_json::to_string(command).map_err(|e| e.to_string())?;
            writeln!(worker.stdin, "{line}").map_err(|e| format!("worker stdin: {e}"))?;
        }
        let mut merged = Outcome::default();
        let mut left = self.workers.len();
        while left > 0 {
            match self.next_event(Duration::from_secs(900))? {
                (i, FromWorker::Progress(n)) => {
                    self.workers[i].progress = n;
                    on_progress(self.workers.iter().map(|w| w.progress).sum());
                }
                (_, FromWorker::Outcome(o)) => {
                    merged.latencies_us.extend(o.latencies_us);
                    merged.errors += o.errors;
                    if merged.first_error.is_none() {
                        merged.first_error = o.first_error;
                    }
                    merged.wall_secs = merged.wall_secs.max(o.wall_secs);
                    merged.cpu_secs += o.cpu_secs;
                    left -= 1;
                }
                (_, FromWorker::Failed(e)) => return Err(e),
                (_, FromWorker::Ready) => {}
            }
        }
        merged.latencies_us.sort_unstable();
        Ok(merged)
    }

    /// The number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = writeln!(w.stdin, "\"quit\"");
        }
        for w in &mut self.workers {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(w.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// Splits `total` into `parts` near-equal shares.
pub fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts = parts.max(1) as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}
