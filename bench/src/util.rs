//! Small helpers shared by the bench subcommands: statistics, /proc readings, JSON output.

use std::time::Duration;

use serde_json::{json, Value};

/// Summary of a set of durations, in milliseconds.
pub fn summary_ms(samples: &[Duration]) -> Value {
    if samples.is_empty() {
        return json!({"n": 0});
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).expect("no NaN durations"));
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    json!({
        "n": ms.len(),
        "min_ms": round3(ms[0]),
        "p50_ms": round3(percentile(&ms, 50.0)),
        "p90_ms": round3(percentile(&ms, 90.0)),
        "p99_ms": round3(percentile(&ms, 99.0)),
        "max_ms": round3(ms[ms.len() - 1]),
        "mean_ms": round3(mean),
    })
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[Duration]) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    v[v.len() / 2]
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e3)
}

/// A field of /proc/<pid>/status in kB (`VmHWM`, `VmRSS`), if the process still exists.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// CPU time (user + system, all threads) a process has used, from /proc/<pid>/stat, in ms.
/// USER_HZ is 100 on Linux: 10 ms resolution, so read it around many invocations.
pub fn proc_cpu_ms(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// Prints the result and, with `--out`, writes it to a file as well.
pub fn emit(out: Option<&std::path::Path>, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    if let Some(path) = out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("{text}");
    Ok(())
}

/// Binds 127.0.0.1:0 and returns the listener with its port.
pub async fn listen_local() -> Result<(tokio::net::TcpListener, u16), String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok((l, port))
}

/// A free loopback port (bound then released) for a child process to listen on.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
    })
}
