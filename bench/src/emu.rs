//! A local Lambda Runtime API (the part a custom runtime talks to): spawns a bootstrap with
//! `AWS_LAMBDA_RUNTIME_API` pointing here and records
//! - init time: from spawning the process to its first `GET /runtime/invocation/next`;
//! - per-invocation duration: from handing an event to the waiting `next` to the `response`;
//! - peak RSS (`VmHWM`) after the invocations, and the bytes the function logged.
//!
//! The same server answers anything else as a fake SparkLoop (200 `{}`), so the worker's
//! outbound calls stay on loopback. SQS and DynamoDB are a moto server.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use sparkbridge::core::envelope::Provider;
use std::io::Read;
use tokio::sync::{mpsc, oneshot};

use crate::events::{self, Samples};
use crate::fake::Fake;
use crate::util::{self, ms};

#[derive(clap::Args, Debug)]
pub struct LambdaArgs {
    /// Label for the result (defaults to the binary's file name)
    #[arg(long)]
    label: Option<String>,
    /// The bootstrap to run (a function binary, or an interpreter with --arg)
    #[arg(long)]
    bin: PathBuf,
    /// Extra arguments for the binary (e.g. the Python handler script)
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Run the binary under qemu-user: `qemu-aarch64 -L /usr/aarch64-linux-gnu`
    #[arg(long)]
    qemu: bool,
    /// Which events to invoke it with: loops, esputnik, sparkloop, worker, screener, none
    #[arg(long, default_value = "none")]
    kind: String,
    /// Process starts to time (init only: killed after the first `next`)
    #[arg(long, default_value_t = 20)]
    spawns: usize,
    /// Invocations in one extra process after the init runs (duration, peak RSS, log bytes)
    #[arg(long, default_value_t = 0)]
    invocations: usize,
    /// Sample events
    #[arg(long, default_value = "events")]
    events_dir: PathBuf,
    /// moto server for SQS and DynamoDB
    #[arg(long, env = "BENCH_MOTO_URL", default_value = "http://127.0.0.1:5055")]
    moto: String,
    /// Lambda memory setting passed to the runtime (the template's MemorySize)
    #[arg(long, default_value_t = 128)]
    memory_mb: u32,
    /// Do not create moto resources (a baseline that never calls AWS)
    #[arg(long)]
    no_aws: bool,
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Emu {
    first_next: Mutex<Option<oneshot::Sender<Instant>>>,
    events: tokio::sync::Mutex<mpsc::Receiver<(String, String)>>,
    responses: mpsc::UnboundedSender<(String, Instant, String, bool)>,
    init_error: Mutex<Option<String>>,
}

async fn next(State(emu): State<Arc<Emu>>) -> Response {
    let now = Instant::now();
    if let Some(tx) = emu.first_next.lock().unwrap().take() {
        let _ = tx.send(now);
    }
    let mut rx = emu.events.lock().await;
    match rx.recv().await {
        Some((id, body)) => {
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            Response::builder()
                .status(200)
                .header("lambda-runtime-aws-request-id", id)
                .header("lambda-runtime-deadline-ms", deadline.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench",
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                )
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("static response")
        }
        // The run is over: hold the poll open until the process is killed.
        None => {
            drop(rx);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Body::empty())
        }
    }
}

async fn respond(State(emu): State<Arc<Emu>>, Path(id): Path<String>, body: String) -> Response {
    let _ = emu.responses.send((id, Instant::now(), body, false));
    accepted()
}

async fn error(State(emu): State<Arc<Emu>>, Path(id): Path<String>, body: String) -> Response {
    let _ = emu.responses.send((id, Instant::now(), body, true));
    accepted()
}

async fn init_error(State(emu): State<Arc<Emu>>, body: String) -> Response {
    *emu.init_error.lock().unwrap() = Some(body);
    accepted()
}

fn accepted() -> Response {
    Response::builder()
        .status(202)
        .body(Body::from(r#"{"status":"OK"}"#))
        .expect("static response")
}

/// One emulator instance (one execution environment).
struct Server {
    port: u16,
    first_next: oneshot::Receiver<Instant>,
    events: mpsc::Sender<(String, String)>,
    responses: mpsc::UnboundedReceiver<(String, Instant, String, bool)>,
    emu: Arc<Emu>,
}

async fn start_server(fake: &Arc<Fake>) -> Result<Server, String> {
    let (first_tx, first_rx) = oneshot::channel();
    let (ev_tx, ev_rx) = mpsc::channel(1);
    let (resp_tx, resp_rx) = mpsc::unbounded_channel();
    let emu = Arc::new(Emu {
        first_next: Mutex::new(Some(first_tx)),
        events: tokio::sync::Mutex::new(ev_rx),
        responses: resp_tx,
        init_error: Mutex::new(None),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(emu.clone())
        .fallback_service(fake.router());
    let (listener, port) = util::listen_local().await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server {
        port,
        first_next: first_rx,
        events: ev_tx,
        responses: resp_rx,
        emu,
    })
}

/// Output of a child process: byte and line counts, and the tail for error messages.
#[derive(Default)]
struct Captured {
    bytes: AtomicU64,
    lines: AtomicU64,
    tail: Mutex<Vec<u8>>,
}

fn drain<R: Read + Send + 'static>(mut r: R, into: Arc<Captured>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    into.bytes.fetch_add(n as u64, Ordering::SeqCst);
                    let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
                    into.lines.fetch_add(lines as u64, Ordering::SeqCst);
                    let mut tail = into.tail.lock().unwrap();
                    tail.extend_from_slice(&buf[..n]);
                    let excess = tail.len().saturating_sub(4096);
                    tail.drain(..excess);
                }
            }
        }
    });
}

/// Everything the function needs from its environment, as Lambda would set it.
fn lambda_env(args: &LambdaArgs, port: u16, aws: &AwsResources) -> Vec<(String, String)> {
    let name = label(args);
    let mut env: Vec<(String, String)> = vec![
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("SPARKLOOP_API_KEY", "bench-api-key"),
        ("SPARKLOOP_RATE_PER_MIN", "1000000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("AWS_LAMBDA_RUNTIME_API".into(), format!("127.0.0.1:{port}")));
    env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), name.clone()));
    env.push((
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
        args.memory_mb.to_string(),
    ));
    env.push((
        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
        format!("/aws/lambda/{name}"),
    ));
    env.push((
        "AWS_LAMBDA_LOG_STREAM_NAME".into(),
        "2026/11/25/[$LATEST]bench".into(),
    ));
    env.push(("AWS_ENDPOINT_URL".into(), args.moto.clone()));
    env.push(("QUEUE_URL".into(), aws.queue_url.clone()));
    env.push(("DLQ_URL".into(), aws.dlq_url.clone()));
    env.push(("TABLE_NAME".into(), aws.table.clone()));
    env.push((
        "SPARKLOOP_API_URL".into(),
        format!("http://127.0.0.1:{port}"),
    ));
    for (k, v) in events::secret_env() {
        env.push((k.to_string(), v));
    }
    env
}

fn label(args: &LambdaArgs) -> String {
    args.label.clone().unwrap_or_else(|| {
        args.bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bootstrap".into())
    })
}

fn spawn(args: &LambdaArgs, env: &[(String, String)]) -> Result<(Child, Instant), String> {
    // Absolute, but not resolved: a venv's python finds its venv through its own path.
    let bin = std::path::absolute(&args.bin).map_err(|e| format!("{}: {e}", args.bin.display()))?;
    let mut cmd = if args.qemu {
        let mut c = std::process::Command::new("qemu-aarch64");
        c.arg("-L").arg("/usr/aarch64-linux-gnu").arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    cmd.args(&args.args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    Ok((Child(child), started))
}

/// A child process that is killed when dropped.
struct Child(std::process::Child);

impl Child {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.0.try_wait(), Ok(None))
    }

    /// Resolves when the process has exited (polled: std children have no async wait).
    async fn wait_exit(&mut self) {
        while !self.exited() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct AwsResources {
    queue_url: String,
    dlq_url: String,
    table: String,
    /// To empty the queue now and then: moto's SendMessageBatch slows down as its queue grows
    /// (about 230 ms per request at 3,000 messages), which would time moto, not the function.
    sqs: Option<aws_sdk_sqs::Client>,
}

/// A fresh queue, DLQ and table on moto (the names are unique per run).
async fn aws_resources(moto: &str, needed: bool) -> Result<AwsResources, String> {
    let placeholder = AwsResources {
        queue_url: format!("{moto}/123456789012/bench-unused"),
        dlq_url: format!("{moto}/123456789012/bench-unused-dlq"),
        table: "bench-unused".into(),
        sqs: None,
    };
    if !needed {
        return Ok(placeholder);
    }
    let conf = crate::aws::moto_config(moto).await?;
    let (queue_url, dlq_url, table) = crate::aws::fresh_resources(&conf).await?;
    Ok(AwsResources {
        queue_url,
        dlq_url,
        table,
        sqs: Some(aws_sdk_sqs::Client::new(&conf)),
    })
}

/// The event for invocation `i` of a run.
fn event_for(
    kind: &str,
    samples: &Samples,
    run: &str,
    i: usize,
) -> Result<(String, usize), String> {
    Ok(match kind {
        "loops" => {
            let body =
                events::loops_body(samples, "email.unsubscribed", &format!("u{i}@example.com"))?;
            let id = format!("msg_emu_{run}_{i}");
            let s = samples.apigw("loops", "email.unsubscribed")?;
            (events::signed_apigw(s, Provider::Loops, &body, &id), 1)
        }
        "esputnik" => {
            let s = samples.apigw("esputnik", "batch")?;
            let body = s["body"].as_str().unwrap_or_default().to_string();
            let n = serde_json::from_str::<Vec<Value>>(&body)
                .map(|v| v.len())
                .unwrap_or(1);
            (events::signed_apigw(s, Provider::Esputnik, &body, "-"), n)
        }
        "sparkloop" => {
            let s = samples.apigw("sparkloop", "sync_subscriber")?;
            let body = s["body"].as_str().unwrap_or_default().to_string();
            (events::signed_apigw(s, Provider::Sparkloop, &body, "-"), 1)
        }
        "worker" => {
            let mut bodies = Vec::new();
            for j in 0..10 {
                let body = events::loops_body(
                    samples,
                    "email.unsubscribed",
                    &format!("w{i}-{j}@example.com"),
                )?;
                bodies.push(events::loops_envelope(
                    &body,
                    &format!("msg_emu_{run}_{i}_{j}"),
                )?);
            }
            let ev = sparkbridge::local::sqs_event(&events::deliveries(bodies));
            (serde_json::to_string(&ev).map_err(|e| e.to_string())?, 10)
        }
        "screener" | "reconciler" => (
            json!({"version": "0", "id": format!("{run}-{i}"), "detail-type": "Scheduled Event",
                   "source": "aws.events", "account": "123456789012",
                   "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1",
                   "resources": [], "detail": {}})
            .to_string(),
            0,
        ),
        other => return Err(format!("no events for kind {other:?}")),
    })
}

/// Whether a response means the invocation did its job.
fn ok_response(kind: &str, body: &str) -> bool {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match kind {
        "loops" | "esputnik" | "sparkloop" => v["statusCode"] == 200,
        "worker" => v["batchItemFailures"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        _ => true,
    }
}

/// Invocations between two purges of the bench queue (see `AwsResources::sqs`).
const PURGE_EVERY: usize = 50;

pub async fn run(args: LambdaArgs) -> Result<(), String> {
    let aws = aws_resources(&args.moto, !args.no_aws).await?;
    let fake = Fake::new(Duration::ZERO);
    let samples = Samples::new(&args.events_dir);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();

    // 1. Init time, one fresh process per sample.
    let mut inits = Vec::new();
    for _ in 0..args.spawns {
        let server = start_server(&fake).await?;
        let env = lambda_env(&args, server.port, &aws);
        let (mut child, started) = spawn(&args, &env)?;
        let (out, err) = (Arc::new(Captured::default()), Arc::new(Captured::default()));
        drain(child.0.stdout.take().expect("piped"), out.clone());
        drain(child.0.stderr.take().expect("piped"), err.clone());
        let first = tokio::select! {
            t = server.first_next => t.ok(),
            _ = child.wait_exit() => None,
            _ = tokio::time::sleep(Duration::from_secs(20)) => None,
        };
        drop(child);
        match first {
            Some(t) => inits.push(t.duration_since(started)),
            None => {
                return Err(format!(
                    "{} never asked for an event; init error: {:?}; stdout: {}; stderr: {}",
                    label(&args),
                    server.emu.init_error.lock().unwrap(),
                    String::from_utf8_lossy(&out.tail.lock().unwrap()),
                    String::from_utf8_lossy(&err.tail.lock().unwrap()),
                ))
            }
        }
    }

    // 2. Invocations in one process: durations, peak RSS, log volume.
    let mut load = Value::Null;
    if args.invocations > 0 && args.kind != "none" {
        let mut server = start_server(&fake).await?;
        let env = lambda_env(&args, server.port, &aws);
        let (mut child, started) = spawn(&args, &env)?;
        let pid = child.id();
        let (out, err) = (Arc::new(Captured::default()), Arc::new(Captured::default()));
        drain(child.0.stdout.take().expect("piped"), out.clone());
        drain(child.0.stderr.take().expect("piped"), err.clone());
        let init = tokio::time::timeout(Duration::from_secs(20), &mut server.first_next)
            .await
            .map_err(|_| format!("{} did not start", label(&args)))?
            .map_err(|_| "emulator dropped".to_string())?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rss_after_init = util::proc_status_kb(pid, "VmRSS");
        let cpu0 = util::proc_cpu_ms(pid);
        let (bytes0, lines0) = (
            out.bytes.load(Ordering::SeqCst) + err.bytes.load(Ordering::SeqCst),
            out.lines.load(Ordering::SeqCst) + err.lines.load(Ordering::SeqCst),
        );
        let mut durations = Vec::new();
        let mut first_invocation = None;
        let (mut failed, mut events_per_invocation) = (0usize, 0usize);
        let mut failure_sample = None;
        let wall = Instant::now();
        for i in 0..args.invocations {
            if i > 0 && i % PURGE_EVERY == 0 {
                // Between invocations, so outside every timed window (the function is idle,
                // waiting on `next`); the function's CPU time is unaffected.
                if let Some(sqs) = &aws.sqs {
                    let _ = sqs.purge_queue().queue_url(&aws.queue_url).send().await;
                }
            }
            let (event, n) = event_for(&args.kind, &samples, &run_id, i)?;
            events_per_invocation = n;
            let id = format!("req-{run_id}-{i}");
            let sent = Instant::now();
            server
                .events
                .send((id.clone(), event))
                .await
                .map_err(|_| "emulator stopped".to_string())?;
            let (rid, at, body, is_error) =
                tokio::time::timeout(Duration::from_secs(30), server.responses.recv())
                    .await
                    .map_err(|_| format!("invocation {i} timed out"))?
                    .ok_or("emulator stopped")?;
            if rid != id || is_error || !ok_response(&args.kind, &body) {
                failed += 1;
                failure_sample.get_or_insert(body.chars().take(500).collect::<String>());
            }
            let d = at.duration_since(sent);
            if i == 0 {
                first_invocation = Some(d);
            } else {
                durations.push(d);
            }
        }
        let wall = wall.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let hwm = util::proc_status_kb(pid, "VmHWM");
        let cpu = util::proc_cpu_ms(pid).zip(cpu0).map(|(b, a)| b - a);
        let rss = util::proc_status_kb(pid, "VmRSS");
        let bytes = out.bytes.load(Ordering::SeqCst) + err.bytes.load(Ordering::SeqCst) - bytes0;
        let lines = out.lines.load(Ordering::SeqCst) + err.lines.load(Ordering::SeqCst) - lines0;
        drop(child);
        let n = args.invocations as f64;
        load = json!({
            "invocations": args.invocations,
            "events_per_invocation": events_per_invocation,
            "failed": failed,
            "failure_sample": failure_sample,
            "init_ms": ms(init.duration_since(started)),
            "first_invocation_ms": first_invocation.map(ms),
            "warm": util::summary_ms(&durations),
            "wall_s": util::round3(wall.as_secs_f64()),
            "cpu_ms_per_invocation": cpu.map(|c| util::round3(c / n)),
            "cpu_ms_init": cpu0,
            "vm_hwm_kb": hwm,
            "vm_rss_kb": rss,
            "vm_rss_after_init_kb": rss_after_init,
            "log_bytes_per_invocation": util::round3(bytes as f64 / n),
            "log_lines_per_invocation": util::round3(lines as f64 / n),
            "fake_sparkloop_calls": fake.calls(),
            "rss_is_of": if args.qemu { "qemu-aarch64 process (emulator included)" } else { "the function process" },
        });
    }

    let result = json!({
        "label": label(&args),
        "bin": args.bin,
        "qemu": args.qemu,
        "kind": args.kind,
        "bin_bytes": std::fs::metadata(&args.bin).map(|m| m.len()).ok(),
        "init": util::summary_ms(&inits),
        "load": load,
        "machine": util::machine(),
    });
    util::emit(args.out.as_deref(), &result)
}
