//! Figure 3: N distinct, signed Loops `email.unsubscribed` deliveries into `sparkbridge dev`
//! (in-memory queue and store), its worker calling a fake SparkLoop; time from the first
//! request sent to the last SparkLoop call received, exactly N calls, and the dev process's
//! peak RSS. Several N in one run (10,000 and 100,000 by default) show whether time and
//! memory grow with N alone.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use sparkbridge::core::envelope::Provider;

use crate::events::{self, Samples};
use crate::fake::Fake;
use crate::util::{self, ms};

#[derive(clap::Args, Debug)]
pub struct E2eArgs {
    /// The release `sparkbridge` binary
    #[arg(long, default_value = "target/release/sparkbridge")]
    dev_bin: PathBuf,
    /// Distinct events to send, one run per value and `--pollers` value (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    events: Vec<usize>,
    /// `sparkbridge dev --pollers` values to run (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "2,8")]
    pollers: Vec<usize>,
    /// Requests in flight from the sender
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value = "events")]
    events_dir: PathBuf,
    /// Where the dev server's logs go (one file per run)
    #[arg(long, default_value = "target/bench")]
    log_dir: PathBuf,
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Delivery {
    body: String,
    headers: Vec<(String, String)>,
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{base}/healthz did not answer within 15 s"))
}

/// Sends every delivery with `concurrency` in flight; returns the status counts.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    deliveries: &[Delivery],
    concurrency: usize,
) -> (usize, usize) {
    let statuses: Vec<u16> = stream::iter(deliveries)
        .map(|d| {
            let mut req = client.post(url).body(d.body.clone());
            for (k, v) in &d.headers {
                req = req.header(k, v);
            }
            async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    (ok, statuses.len() - ok)
}

async fn one_run(
    args: &E2eArgs,
    samples: &Samples,
    client: &reqwest::Client,
    events: usize,
    pollers: usize,
) -> Result<Value, String> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let deliveries: Vec<Delivery> = (0..events)
        .map(|i| {
            let body = events::loops_body(
                samples,
                "email.unsubscribed",
                &format!("e{i}-{run}@example.com"),
            )?;
            let id = format!("msg_e2e_{run}_{i}");
            let headers = events::auth_headers(Provider::Loops, &body, &id);
            Ok(Delivery { body, headers })
        })
        .collect::<Result<_, String>>()?;

    // Baseline, same run: the same sender making the same number of calls straight to a
    // fake SparkLoop (the HTTP floor of this box, no bridge in between).
    let direct = Fake::new(Duration::ZERO);
    let direct_url = direct.serve().await?;
    let t = Instant::now();
    let statuses: Vec<u16> = stream::iter(0..events)
        .map(|i| {
            let req = client
                .put(format!(
                    "{direct_url}/v2/subscribers/e{i}-{run}%40example.com/unsubscribe"
                ))
                .header("x-api-key", "bench");
            async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let direct_elapsed = t.elapsed();
    let direct_ok = statuses.iter().filter(|s| **s == 200).count();

    // The bridge.
    let fake = Fake::new(Duration::ZERO);
    let fake_url = fake.serve().await?;
    let port = util::free_port()?;
    std::fs::create_dir_all(&args.log_dir).map_err(|e| e.to_string())?;
    let log_path = args
        .log_dir
        .join(format!("e2e-dev-{events}-pollers{pollers}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&args.dev_bin);
    cmd.args([
        "dev",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--pollers",
        &pollers.to_string(),
    ])
    // In-memory queue and store: never the moto server the other figures use.
    .env_remove("AWS_ENDPOINT_URL")
    .env("SPARKLOOP_API_URL", &fake_url)
    .env("SPARKLOOP_API_KEY", "bench-api-key")
    .env("SPARKLOOP_RATE_PER_MIN", "1000000000")
    .envs(events::secret_env())
    .stdin(Stdio::null())
    .stdout(log.try_clone().map_err(|e| e.to_string())?)
    .stderr(log);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", args.dev_bin.display()))?;
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    if let Err(e) = wait_healthy(client, &base).await {
        let _ = child.kill();
        return Err(e);
    }

    let t0 = Instant::now();
    let (ok, refused) = send_all(
        client,
        &format!("{base}/webhooks/loops"),
        &deliveries,
        args.concurrency,
    )
    .await;
    let ingest_elapsed = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while fake.calls() < events as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = fake.last_call().map(|l| l.duration_since(t0));
    // Anything more (a duplicate call) would arrive now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = fake.calls();
    let distinct = fake.distinct_paths();
    let hwm = util::proc_status_kb(pid, "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let log_bytes = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let e2e = last.unwrap_or_default();
    Ok(json!({
        "pollers": pollers,
        "events": events,
        "sender_concurrency": args.concurrency,
        "ingest_200": ok,
        "ingest_refused": refused,
        "ingest_s": util::round3(ingest_elapsed.as_secs_f64()),
        "ingest_per_s": (ok as f64 / ingest_elapsed.as_secs_f64()).round(),
        "to_last_call_s": util::round3(e2e.as_secs_f64()),
        "events_per_s_end_to_end": (calls as f64 / e2e.as_secs_f64().max(1e-9)).round(),
        "sparkloop_calls": calls,
        "distinct_calls": distinct,
        "exactly_once": calls == events as u64 && distinct == events,
        "dev_vm_hwm_kb": hwm,
        "dev_log_bytes_per_event": util::round3(log_bytes as f64 / events as f64),
        "dev_log": log_path,
        "baseline_direct_calls_s": util::round3(direct_elapsed.as_secs_f64()),
        "baseline_direct_ok": direct_ok,
        "ratio_to_baseline": util::round3(e2e.as_secs_f64() / direct_elapsed.as_secs_f64()),
        "ingest_ms_total": ms(ingest_elapsed),
    }))
}

pub async fn run(args: E2eArgs) -> Result<(), String> {
    let samples = Samples::new(&args.events_dir);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    for &n in &args.events {
        for &p in &args.pollers {
            runs.push(one_run(&args, &samples, &client, n, p).await?);
        }
    }
    let result = json!({
        "runs": runs,
        "sparkloop_rate_per_min": 1_000_000_000u64,
        "machine": util::machine(),
    });
    util::emit(args.out.as_deref(), &result)
}
