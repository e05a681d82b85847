//! Figures: latency percentiles and CPU time of processes from Linux `/proc`.

use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The `q` quantile (0..=1) of `sorted` microseconds, in milliseconds.
pub fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// `(parent pid, user + system CPU seconds)` of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, (utime + stime) as f64 / TICKS_PER_SEC))
}

/// User + system CPU seconds of process `pid` (all its threads).
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    stat(pid).map(|(_, cpu)| cpu)
}

/// CPU seconds of `root` and all its descendants alive now (PostgreSQL's
/// postmaster and backends, gunicorn's master and workers).
pub fn tree_cpu_secs(root: u32) -> f64 {
    let mut procs = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, cpu)) = stat(pid) {
                procs.push((pid, ppid, cpu));
            }
        }
    }
    let mut members = vec![root];
    let mut total = 0.0;
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for &(pid, ppid, cpu) in &procs {
            if pid == parent {
                total += cpu;
            }
            if ppid == parent && !members.contains(&pid) {
                members.push(pid);
            }
        }
        i += 1;
    }
    total
}

/// Bytes of a file, 0 when missing.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Bytes of every file under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => file_size(&e.path()),
        })
        .sum()
}

/// The machine's 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
