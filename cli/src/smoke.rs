//! `sparkbridge smoke`: proves a deployed stack (or a `sparkbridge dev --aws` server) works end
//! to end. One authenticated test event per provider goes to its webhook URL; then the state
//! table is watched until the worker has marked each event's dedupe record COMPLETED.
//!
//! Each event is about a test identity of its own (`smoke+<run>@example.invalid`, SparkLoop
//! subscriber `smoke_<run>`, Loops webhook-id `msg_smoke_<run>`), so it never touches a real
//! subscriber, and two runs never deduplicate against each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::sender::{authenticate, SenderCredentials};

use crate::error::CliError;

/// The options of `sparkbridge smoke` (its about text is the subcommand's, in main.rs).
#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("target").required(true).args(["stack", "url"])),
    after_help = "\
Each provider's outcome:
  passed         answered 2xx and its dedupe record reached COMPLETED within --timeout
  not_sent       no credentials to authenticate it (LOOPS_SIGNING_SECRET, ESPUTNIK_WEBHOOK_USER
                 and ESPUTNIK_WEBHOOK_PASSWORD or ESPUTNIK_WEBHOOK_TOKEN, SPARKLOOP_WEBHOOK_TOKEN:
                 the values deployed, read as `sparkbridge send` reads them)
  unreachable    no HTTP answer (DNS, TLS, connection, timeout)
  refused        a 3xx or 4xx at ingest (401: the secret or token differs from the deployed one)
  ingest_failed  a 5xx at ingest (503: the queue refused the event)
  parked         on the dead-letter queue (matched by its dedupe_id attribute), with its reason
  not_processed  queued, but not COMPLETED within --timeout (the worker is not running, is
                 behind, or is retrying: its log names the dedupe id)

Without --live the events make no outbound call: Loops email.opened and eSputnik DELIVERED
record an engagement signal, SparkLoop new_offer_lead has no ESP effect. With --live, Loops
email.unsubscribed and eSputnik UNSUBSCRIBED make a SparkLoop unsubscribe of the test address,
and SparkLoop sync_subscriber (rejected) an ESP unsubscribe of it; whether those calls are made
depends on the stack's DryRun setting and API keys.

With --url, the state table and the DLQ come from TABLE_NAME and DLQ_URL; with --stack, from
the stack's outputs. The DLQ is read like `sparkbridge dlq list`: nothing is consumed.
Exit status 0 only if every provider passed."
)]
pub struct SmokeArgs {
    /// The CloudFormation stack: webhook URLs, state table and DLQ from its outputs
    #[arg(long)]
    pub stack: Option<String>,
    /// The bridge's base URL instead (BASE/webhooks/{loops,esputnik,sparkloop}); a loopback
    /// URL (`sparkbridge dev --aws`) gets dev's default webhook secrets for unset variables
    #[arg(long)]
    pub url: Option<String>,
    /// Send events that make outbound calls on the test address (see below)
    #[arg(long)]
    pub live: bool,
    /// Print a machine-readable summary instead of one line per provider
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait, from the first request, for every event to be COMPLETED
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

const PROVIDERS: [Provider; 3] = [Provider::Loops, Provider::Esputnik, Provider::Sparkloop];
/// How often the state table is read while waiting.
const POLL: Duration = Duration::from_millis(250);
/// How often the DLQ is read while waiting (and once more at the end, for what is still waiting).
const DLQ_EVERY: Duration = Duration::from_secs(5);
/// The most DLQ messages one look reads.
const DLQ_SCAN_MAX: usize = 1_000;

/// Where the events go and where their results are read.
struct Target {
    /// `stack NAME` or the base URL, for the summary.
    label: String,
    stack: Option<String>,
    urls: HashMap<Provider, reqwest::Url>,
    table: String,
    dlq_url: Option<String>,
    /// The stack's `DryRun` parameter, when read from the stack.
    dry_run: Option<String>,
    loopback: bool,
}

/// One test event, as its provider would send it, and the dedupe record it will leave.
pub(crate) struct SmokeEvent {
    provider: Provider,
    /// Loops' `webhook-id` (the other providers send none).
    webhook_id: String,
    body: Vec<u8>,
    /// The envelope ingest builds from it (its `received_at` aside).
    envelope: Envelope,
}

impl SmokeEvent {
    /// The state table's key of the event's dedupe record (`adapters::dynamodb`).
    fn table_key(&self) -> String {
        format!("idem#{}", self.envelope.idempotency_key())
    }
}

/// The test identity of one run.
pub(crate) struct Identity {
    pub run: String,
    pub email: String,
    pub sparkloop_id: String,
}

impl Identity {
    fn new() -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        Identity {
            email: format!("smoke+{run}@example.invalid"),
            sparkloop_id: format!("smoke_{run}"),
            run,
        }
    }
}

/// The event kind each provider gets. Without `live`, none makes an outbound call (checked
/// against `core::rules` in the tests below). With it: Loops and eSputnik unsubscribes make a
/// SparkLoop unsubscribe of the test address (SparkLoop answers 404 for an address it does
/// not track, which is done); a SparkLoop `sync_subscriber` whose status is `rejected` makes
/// an ESP unsubscribe of it: `subscribed: false` in Loops, the unsubscribed list in eSputnik.
/// Any SparkLoop event that adds or updates a contact instead (a pending referral, a reward)
/// would create a subscribed contact that later campaigns would mail.
pub(crate) fn kind(provider: Provider, live: bool) -> &'static str {
    match (provider, live) {
        (Provider::Loops, false) => "email.opened",
        (Provider::Loops, true) => "email.unsubscribed",
        (Provider::Esputnik, false) => "DELIVERED",
        (Provider::Esputnik, true) => "UNSUBSCRIBED",
        (Provider::Sparkloop, false) => "new_offer_lead",
        (Provider::Sparkloop, true) => "sync_subscriber",
        (Provider::Sparkbridge, _) => "none",
    }
}

/// Builds the event and computes its dedupe id with ingest's own parsers.
pub(crate) fn event(
    provider: Provider,
    id: &Identity,
    live: bool,
    now: DateTime<Utc>,
) -> Result<SmokeEvent, CliError> {
    let kind = kind(provider, live);
    let run = &id.run;
    let webhook_id = format!("msg_smoke_{run}");
    let (body, envelope) = match provider {
        Provider::Loops => {
            let body = serde_json::json!({
                "eventName": kind,
                "eventTime": now.timestamp(),
                "webhookSchemaVersion": "1.0.0",
                "sourceType": "campaign",
                "campaignId": format!("smoke_{run}"),
                "email": {
                    "id": format!("smoke_{run}"),
                    "emailMessageId": format!("smoke_{run}"),
                    "subject": "sparkbridge smoke test",
                },
                // no contact id: nothing is recorded for a contact, with or without
                // DETECT_EMAIL_CHANGES
                "contactIdentity": {"id": null, "email": id.email, "userId": null},
            })
            .to_string();
            let n = sparkbridge::core::loops::parse(body.as_bytes())
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let env = Envelope::new(provider, webhook_id.clone(), now, n);
            (body, env)
        }
        Provider::Esputnik => {
            let body = serde_json::json!([{
                "activityStatus": kind,
                "activityDateTime": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "email": id.email,
                "mediaType": "email",
                "iid": format!("smoke-{run}"),
                "messageName": "sparkbridge smoke test",
                "statusData": {},
            }])
            .to_string();
            let el = sparkbridge::core::esputnik::split(body.as_bytes(), chrono_tz::UTC)
                .into_iter()
                .next()
                .ok_or_else(|| CliError::Failed("the eSputnik test event has no element".into()))?;
            let env = Envelope::new(provider, el.dedupe_id, now, el.event);
            (body, env)
        }
        Provider::Sparkloop => {
            let mut subscriber = serde_json::json!({
                "id": id.sparkloop_id,
                "email": id.email,
                "name": "sparkbridge smoke test",
                "created_at": now.timestamp(),
            });
            if live {
                subscriber["referral_status"] = serde_json::json!("rejected");
            }
            let body = serde_json::json!({"type": kind, "subscriber": subscriber}).to_string();
            let (dedupe_id, n) = sparkbridge::core::sparkloop::parse(body.as_bytes())
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let env = Envelope::new(provider, dedupe_id, now, n);
            (body, env)
        }
        Provider::Sparkbridge => return Err(CliError::Usage("sparkbridge has no webhook".into())),
    };
    Ok(SmokeEvent {
        provider,
        webhook_id,
        body: body.into_bytes(),
        envelope,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Passed,
    NotSent,
    Unreachable,
    Refused,
    IngestFailed,
    Parked,
    NotProcessed,
}

impl Outcome {
    /// As in `--json` and `--help`.
    fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::NotSent => "not_sent",
            Outcome::Unreachable => "unreachable",
            Outcome::Refused => "refused",
            Outcome::IngestFailed => "ingest_failed",
            Outcome::Parked => "parked",
            Outcome::NotProcessed => "not_processed",
        }
    }
}

/// What ingest's answer means: `None` when the event was queued (any 2xx).
pub(crate) fn classify_answer(status: u16) -> Option<Outcome> {
    match status {
        200..=299 => None,
        500..=599 => Some(Outcome::IngestFailed),
        // 1xx never ends a request; 3xx (redirects are not followed) and 4xx are refusals
        _ => Some(Outcome::Refused),
    }
}

#[derive(Debug, Serialize)]
struct ProviderReport {
    provider: Provider,
    kind: String,
    /// The webhook URL, without its query (an eSputnik token is never printed).
    url: String,
    dedupe_id: String,
    table_key: String,
    outcome: Outcome,
    http_status: Option<u16>,
    /// Time to ingest's answer.
    http_ms: Option<u64>,
    /// Time from the request to the record seen COMPLETED.
    completed_ms: Option<u64>,
    /// The record's last status seen: COMPLETED, IN_PROGRESS or absent.
    record: Option<String>,
    /// What the worker recorded with the completion (`done`, `ignored`).
    worker_outcome: Option<String>,
    detail: String,
    #[serde(skip)]
    sent_at: Option<Instant>,
}

impl ProviderReport {
    /// Queued, and neither COMPLETED nor found parked yet.
    fn waiting(&self) -> bool {
        self.outcome == Outcome::NotProcessed && self.sent_at.is_some()
    }
}

#[derive(Debug, Serialize)]
struct Summary {
    passed: bool,
    live: bool,
    target: String,
    stack: Option<String>,
    table: String,
    dlq_url: Option<String>,
    timeout_secs: u64,
    email: String,
    sparkloop_id: String,
    /// What the events call out to, and on what that depends.
    outbound: String,
    providers: Vec<ProviderReport>,
}

pub async fn run(args: SmokeArgs) -> Result<(), CliError> {
    let conf = sparkbridge::adapters::aws::sdk_config().await;
    let target = resolve(&args, &conf).await?;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    // Nothing is sent that could not be watched.
    ddb.get_item()
        .table_name(&target.table)
        .key("pk", AttributeValue::S("idem#smoke#probe".into()))
        .send()
        .await
        .map_err(|e| {
            CliError::Aws(format!(
                "cannot read the state table {}: {}",
                target.table,
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ))
        })?;

    let (creds, defaulted) = credentials(target.loopback);
    let identity = Identity::new();
    let now = Utc::now();
    let events = PROVIDERS
        .iter()
        .map(|p| event(*p, &identity, args.live, now))
        .collect::<Result<Vec<_>, _>>()?;
    let outbound = outbound_note(args.live, target.dry_run.as_deref());
    if !args.json {
        println!(
            "smoke test of {} as {} (SparkLoop id {})",
            target.label, identity.email, identity.sparkloop_id
        );
        println!("{outbound}");
        if !defaulted.is_empty() {
            println!(
                "using development default webhook secrets for {} (loopback URL)",
                defaulted.join(", ")
            );
        }
        if target.dlq_url.is_none() {
            println!("DLQ_URL is not set: a parked event shows as not processed");
        }
    }

    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
                .expect("a static template parses"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(args.timeout.clamp(1, 30)))
        .build()
        .map_err(|e| CliError::Http(e.to_string()))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let mut reports = Vec::new();
    for ev in &events {
        bar.set_message(format!("sending {} {}", ev.provider, ev.envelope.kind));
        reports.push(send(&http, &target, &creds, ev).await);
    }

    // The DLQ is read beside the table, so a slow read never delays seeing a completion.
    let wanted: Vec<EventId> = reports
        .iter()
        .filter(|r| r.sent_at.is_some())
        .map(|r| (r.provider, r.dedupe_id.clone()))
        .collect();
    let found = Arc::new(Mutex::new(DlqFindings::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = target.dlq_url.clone().map(|url| {
        tokio::spawn(watch_dlq(
            sqs.clone(),
            url,
            wanted.clone(),
            found.clone(),
            stopped,
        ))
    });
    loop {
        let waiting: Vec<usize> = (0..reports.len())
            .filter(|i| reports[*i].waiting())
            .collect();
        if waiting.is_empty() {
            break;
        }
        bar.set_message(progress(&reports));
        for i in &waiting {
            let r = &mut reports[*i];
            match read_record(&ddb, &target.table, &r.table_key).await {
                Ok(Some((status, outcome))) => {
                    if status == "COMPLETED" {
                        r.outcome = Outcome::Passed;
                        r.completed_ms = r.sent_at.map(|t| t.elapsed().as_millis() as u64);
                        r.worker_outcome = outcome;
                        r.detail.clear();
                    }
                    r.record = Some(status);
                }
                Ok(None) => {}
                // a read that fails now may work on the next look; said if it never does
                Err(e) => r.detail = format!("state table read failed: {e}"),
            }
        }
        apply_dlq(&mut reports, &found.lock().expect("not poisoned"));
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    // Stopped between two reads: a read under way finishes and releases what it hid.
    let _ = stop.send(true);
    if let Some(w) = watcher {
        let _ = w.await;
    }
    if let Some(url) = &target.dlq_url {
        if reports.iter().any(ProviderReport::waiting) {
            // one last look: parked since the watcher's last read
            let mut last = DlqFindings::default();
            last.merge(look_in_dlq(&sqs, url, &wanted).await);
            apply_dlq(&mut reports, &last);
        }
    }
    for r in reports.iter_mut().filter(|r| r.waiting()) {
        let seen = match r.record.as_deref() {
            Some(status) => format!("its dedupe record is {status}"),
            None => "no dedupe record yet (not picked up, or released to be retried)".to_string(),
        };
        let last_error = if r.detail.is_empty() {
            String::new()
        } else {
            format!("; last {}", r.detail)
        };
        let dlq = if target.dlq_url.is_none() {
            " (the DLQ was not read: DLQ_URL is not set)"
        } else {
            ""
        };
        r.detail = format!(
            "queued, not COMPLETED within {} s: {seen}{dlq}; the worker's log names dedupe id {}{last_error}",
            args.timeout, r.dedupe_id
        );
    }
    bar.finish_and_clear();

    let passed = reports.iter().all(|r| r.outcome == Outcome::Passed);
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome != Outcome::Passed)
        .map(|r| format!("{} {}", r.provider, r.outcome.label()))
        .collect();
    if args.json {
        let summary = Summary {
            passed,
            live: args.live,
            target: target.label.clone(),
            stack: target.stack.clone(),
            table: target.table.clone(),
            dlq_url: target.dlq_url.clone(),
            timeout_secs: args.timeout,
            email: identity.email.clone(),
            sparkloop_id: identity.sparkloop_id.clone(),
            outbound,
            providers: reports,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for r in &reports {
            println!("{}", line(r));
        }
    }
    if passed {
        if !args.json {
            println!("smoke passed: every provider's event was processed");
        }
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "smoke failed: {}",
            failed.join(", ")
        )))
    }
}

/// The webhook URLs, table and DLQ from the stack's outputs, or from `--url` and the environment.
async fn resolve(args: &SmokeArgs, conf: &aws_config::SdkConfig) -> Result<Target, CliError> {
    let vars = sparkbridge::config::Env::process();
    let env = |n: &str| vars.non_blank(n).map(str::to_string);
    if let Some(base) = &args.url {
        let trimmed = base.trim_end_matches('/');
        let mut urls = HashMap::new();
        for p in PROVIDERS {
            let u = reqwest::Url::parse(&format!("{trimmed}/webhooks/{p}"))
                .map_err(|e| CliError::Usage(format!("--url {base:?}: {e}")))?;
            urls.insert(p, u);
        }
        let loopback = urls[&Provider::Loops].host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        });
        let table = env("TABLE_NAME").ok_or_else(|| {
            CliError::Usage(
                "smoke watches the state table: set TABLE_NAME (stack output StateTableName; \
                 for `sparkbridge dev`, run it with --aws) or use --stack"
                    .into(),
            )
        })?;
        return Ok(Target {
            label: trimmed.to_string(),
            stack: None,
            urls,
            table,
            dlq_url: env("DLQ_URL"),
            dry_run: None,
            loopback,
        });
    }
    let name = args
        .stack
        .as_deref()
        .ok_or_else(|| CliError::Usage("--stack or --url is required".into()))?;
    let cfn = aws_sdk_cloudformation::Client::new(conf);
    let described = cfn
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| {
            CliError::Aws(format!(
                "cannot read stack {name}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(e)
            ))
        })?;
    let stack = described
        .stacks()
        .first()
        .ok_or_else(|| CliError::Aws(format!("no stack {name}")))?;
    let outputs: HashMap<&str, &str> = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?, o.output_value()?)))
        .collect();
    let output = |key: &str| {
        outputs.get(key).map(|v| v.to_string()).ok_or_else(|| {
            CliError::Usage(format!(
                "stack {name} has no output {key} (is it sparkbridge's template.yaml?)"
            ))
        })
    };
    let mut urls = HashMap::new();
    for (p, key) in [
        (Provider::Loops, "LoopsWebhookUrl"),
        (Provider::Esputnik, "EsputnikWebhookUrl"),
        (Provider::Sparkloop, "SparkloopWebhookUrl"),
    ] {
        let u = output(key)?;
        urls.insert(
            p,
            reqwest::Url::parse(&u)
                .map_err(|e| CliError::Unreadable(format!("output {key} {u:?}: {e}")))?,
        );
    }
    let dry_run = stack
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("DryRun"))
        .and_then(|p| p.parameter_value())
        .map(str::to_string);
    Ok(Target {
        label: format!("stack {name}"),
        stack: Some(name.to_string()),
        urls,
        table: output("StateTableName")?,
        dlq_url: output("DeadLetterQueueUrl").ok().or_else(|| env("DLQ_URL")),
        dry_run,
        loopback: false,
    })
}

/// The credentials `send` uses. For a loopback URL (`sparkbridge dev`), an unset variable gets
/// dev's default, as `dev` itself does; returns the names so defaulted.
fn credentials(loopback: bool) -> (SenderCredentials, Vec<&'static str>) {
    let mut c = SenderCredentials::from_env(&sparkbridge::config::Env::process());
    let mut defaulted = Vec::new();
    if loopback {
        use crate::defaults as d;
        for (slot, name, value) in [
            (
                &mut c.loops_secret,
                "LOOPS_SIGNING_SECRET",
                d::LOOPS_SIGNING_SECRET,
            ),
            (
                &mut c.esputnik_user,
                "ESPUTNIK_WEBHOOK_USER",
                d::ESPUTNIK_WEBHOOK_USER,
            ),
            (
                &mut c.esputnik_password,
                "ESPUTNIK_WEBHOOK_PASSWORD",
                d::ESPUTNIK_WEBHOOK_PASSWORD,
            ),
            (
                &mut c.sparkloop_token,
                "SPARKLOOP_WEBHOOK_TOKEN",
                d::SPARKLOOP_WEBHOOK_TOKEN,
            ),
        ] {
            if slot.is_none() {
                *slot = Some(value.to_string());
                defaulted.push(name);
            }
        }
    }
    (c, defaulted)
}

fn outbound_note(live: bool, dry_run: Option<&str>) -> String {
    if !live {
        return "no outbound call: Loops email.opened and eSputnik DELIVERED record an engagement \
                signal, SparkLoop new_offer_lead has no ESP effect"
            .into();
    }
    let depends = match dry_run {
        Some(v) if v.eq_ignore_ascii_case("true") => {
            "this stack has DryRun=true: the calls are logged, not made".to_string()
        }
        Some(v) => {
            format!("this stack has DryRun={v}: the calls are made (unless its API keys are unset)")
        }
        None => "whether they are made depends on the stack's DryRun setting and API keys".into(),
    };
    format!(
        "--live: Loops email.unsubscribed and eSputnik UNSUBSCRIBED make a SparkLoop unsubscribe \
         of the test address, SparkLoop sync_subscriber (rejected) an ESP unsubscribe of it; \
         {depends}"
    )
}

/// Sends one event; the report says where it stopped, or `NotProcessed` with `sent_at` when queued.
async fn send(
    http: &reqwest::Client,
    target: &Target,
    creds: &SenderCredentials,
    ev: &SmokeEvent,
) -> ProviderReport {
    let url = target.urls[&ev.provider].clone();
    let mut shown = url.clone();
    shown.set_query(None);
    let mut report = ProviderReport {
        provider: ev.provider,
        kind: ev.envelope.kind.to_string(),
        url: shown.to_string(),
        dedupe_id: ev.envelope.dedupe_id.clone(),
        table_key: ev.table_key(),
        outcome: Outcome::NotProcessed,
        http_status: None,
        http_ms: None,
        completed_ms: None,
        record: None,
        worker_outcome: None,
        detail: String::new(),
        sent_at: None,
    };
    let auth = match authenticate(
        ev.provider,
        &ev.body,
        &ev.webhook_id,
        creds,
        Utc::now().timestamp(),
    ) {
        Ok(a) => a,
        Err(e) => {
            report.outcome = Outcome::NotSent;
            report.detail = e.to_string();
            return report;
        }
    };
    let mut url = url;
    if let Some(q) = &auth.query {
        let joined = match url.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{q}"),
            _ => q.clone(),
        };
        url.set_query(Some(&joined));
    }
    let mut req = http.post(url);
    for (k, v) in &auth.headers {
        req = req.header(k, v);
    }
    let sent_at = Instant::now();
    let resp = req.body(ev.body.clone()).send().await;
    report.http_ms = Some(sent_at.elapsed().as_millis() as u64);
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            report.outcome = Outcome::Unreachable;
            // without the URL: it may carry eSputnik's token
            report.detail = e.without_url().to_string();
            return report;
        }
    };
    let status = resp.status().as_u16();
    report.http_status = Some(status);
    match classify_answer(status) {
        None => report.sent_at = Some(sent_at),
        Some(outcome) => {
            report.outcome = outcome;
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| format!(" (Location: {})", printable(l, 200)));
            let body = resp.text().await.unwrap_or_default();
            report.detail = format!(
                "HTTP {status}{}{}",
                location.unwrap_or_default(),
                if body.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", printable(body.trim(), 300))
                }
            );
        }
    }
    report
}

/// The record's status and the worker's outcome, or `None` when there is no record.
async fn read_record(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<Option<(String, Option<String>)>, CliError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(CliError::aws)?;
    Ok(out.item().map(|item| {
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        (
            text("status").unwrap_or_else(|| "?".into()),
            text("outcome"),
        )
    }))
}

/// An event watched: its provider and dedupe id.
type EventId = (Provider, String);

/// A parked event found on the DLQ: the message id and the reason given.
#[derive(Debug, Clone)]
struct ParkedMessage {
    id: String,
    reason: String,
}

/// What the DLQ held of the events watched, and why the last read failed, if it did.
#[derive(Default)]
struct DlqFindings {
    parked: HashMap<EventId, ParkedMessage>,
    error: Option<String>,
}

impl DlqFindings {
    fn merge(&mut self, read: Result<Vec<(EventId, ParkedMessage)>, CliError>) {
        match read {
            Ok(found) => {
                self.parked.extend(found);
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }
}

/// Reads the DLQ once for the events in `wanted`, matched by their `provider` and `dedupe_id`
/// attributes, with the reason the worker (`error`) or ingest (`parked_reason`) gave. Nothing
/// is consumed: what the read hid is released at once, as `sparkbridge dlq list` does.
async fn look_in_dlq(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    wanted: &[EventId],
) -> Result<Vec<(EventId, ParkedMessage)>, CliError> {
    let msgs = crate::dlq::scan(sqs, dlq_url, DLQ_SCAN_MAX).await?;
    crate::dlq::release(sqs, dlq_url, &msgs).await;
    let mut found = Vec::new();
    for m in &msgs {
        let (Some(provider), Some(id)) =
            (m.attributes.get("provider"), m.attributes.get("dedupe_id"))
        else {
            continue;
        };
        if let Some(w) = wanted
            .iter()
            .find(|(p, d)| p.as_str() == provider && d == id)
        {
            let reason = m
                .attributes
                .get("error")
                .or_else(|| m.attributes.get("parked_reason"))
                .map_or("no reason recorded", String::as_str);
            found.push((
                w.clone(),
                ParkedMessage {
                    id: m.id.clone(),
                    reason: reason.to_string(),
                },
            ));
        }
    }
    Ok(found)
}

/// Reads the DLQ every [`DLQ_EVERY`] into `found` until `stop` changes.
async fn watch_dlq(
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    wanted: Vec<EventId>,
    found: Arc<Mutex<DlqFindings>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DLQ_EVERY) => {}
            _ = stop.changed() => return,
        }
        let read = look_in_dlq(&sqs, &dlq_url, &wanted).await;
        found.lock().expect("not poisoned").merge(read);
    }
}

/// Marks each waiting event found on the DLQ as parked, with its reason.
fn apply_dlq(reports: &mut [ProviderReport], found: &DlqFindings) {
    for r in reports.iter_mut().filter(|r| r.waiting()) {
        if let Some(m) = found.parked.get(&(r.provider, r.dedupe_id.clone())) {
            r.outcome = Outcome::Parked;
            r.detail = format!(
                "on the DLQ (message {}): {}",
                m.id,
                printable(&m.reason, 300)
            );
        } else if let Some(e) = &found.error {
            r.detail = format!("DLQ read failed: {e}");
        }
    }
}

fn progress(reports: &[ProviderReport]) -> String {
    let parts: Vec<String> = reports
        .iter()
        .map(|r| {
            let state = match (r.outcome, r.completed_ms) {
                (Outcome::Passed, Some(ms)) => format!("COMPLETED {}", secs(ms)),
                (Outcome::NotProcessed, _) => {
                    r.record.clone().unwrap_or_else(|| "queued".to_string())
                }
                (o, _) => o.label().to_string(),
            };
            format!("{} {state}", r.provider)
        })
        .collect();
    format!("waiting for COMPLETED: {}", parts.join(" · "))
}

fn line(r: &ProviderReport) -> String {
    let verdict = if r.outcome == Outcome::Passed {
        "PASS".to_string()
    } else {
        format!("FAIL {}", r.outcome.label())
    };
    let http = match (r.http_status, r.http_ms) {
        (Some(s), Some(ms)) => format!("HTTP {s} in {ms} ms"),
        (None, Some(ms)) => format!("no answer after {ms} ms"),
        _ => "not sent".to_string(),
    };
    let rest = match r.outcome {
        Outcome::Passed => format!(
            "COMPLETED ({}) after {}",
            r.worker_outcome.as_deref().unwrap_or("-"),
            r.completed_ms.map_or_else(|| "-".into(), secs)
        ),
        _ => r.detail.clone(),
    };
    format!(
        "{:<10} {:<19} {:<19} {http}; {rest}",
        r.provider.as_str(),
        r.kind,
        verdict
    )
}

fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// At most `max` characters of `s`, control characters replaced, so an answer cannot forge
/// lines of its own.
fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparkbridge::core::rules::{decide, Action, Decision, Known, RulesConfig};

    fn configs() -> Vec<RulesConfig> {
        vec![
            RulesConfig::default(),
            RulesConfig {
                confirm_signups: true,
                ..RulesConfig::default()
            },
        ]
    }

    fn actions(ev: &SmokeEvent, cfg: &RulesConfig) -> Vec<Action> {
        match decide(&ev.envelope, &Known::default(), cfg) {
            Decision::Act(a) => a,
            Decision::Ignore(_) => Vec::new(),
            Decision::Park(reason) => panic!("{} parked: {reason}", ev.provider),
        }
    }

    #[test]
    fn without_live_no_event_calls_out() {
        let id = Identity::new();
        for p in PROVIDERS {
            let ev = event(p, &id, false, Utc::now()).unwrap();
            assert_eq!(ev.envelope.kind, kind(p, false), "a kind ingest knows");
            assert_eq!(ev.envelope.subscriber.email.as_deref(), Some(&*id.email));
            for cfg in configs() {
                for a in actions(&ev, &cfg) {
                    assert!(
                        matches!(a, Action::State(_)),
                        "{p}: only state is written, got {a:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn live_calls_touch_only_the_test_identity() {
        let id = Identity::new();
        assert!(id.email.ends_with("@example.invalid"));
        for p in PROVIDERS {
            let ev = event(p, &id, true, Utc::now()).unwrap();
            let mut calls = 0;
            for a in actions(&ev, &RulesConfig::default()) {
                match a {
                    Action::SparkLoop { target, call } => {
                        calls += 1;
                        assert!(target == id.email || target == id.sparkloop_id, "{p}");
                        assert_eq!(
                            call,
                            sparkbridge::core::outbound::SparkLoopCall::Unsubscribe,
                            "{p}"
                        );
                    }
                    Action::Esp(call) => {
                        calls += 1;
                        assert_eq!(call.email(), id.email, "{p}");
                        assert!(
                            matches!(
                                call,
                                sparkbridge::core::lifecycle::EspCall::Unsubscribe { .. }
                            ),
                            "{p}: never adds a subscribed contact"
                        );
                    }
                    _ => {}
                }
            }
            assert_eq!(calls, 1, "{p}: one outbound call with --live");
        }
    }

    #[test]
    fn every_run_has_its_own_dedupe_ids() {
        let (a, b) = (Identity::new(), Identity::new());
        let now = Utc::now();
        for p in PROVIDERS {
            let x = event(p, &a, false, now).unwrap();
            let y = event(p, &b, false, now).unwrap();
            assert_ne!(x.table_key(), y.table_key(), "{p}");
            assert!(x.table_key().starts_with(&format!("idem#{p}#")));
            // a retry of the same event is the same record
            assert_eq!(x.table_key(), event(p, &a, false, now).unwrap().table_key());
        }
        assert_eq!(
            event(Provider::Loops, &a, false, now)
                .unwrap()
                .envelope
                .dedupe_id,
            format!("msg_smoke_{}", a.run),
            "Loops: the webhook-id"
        );
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify_answer(200), None);
        assert_eq!(classify_answer(202), None);
        assert_eq!(classify_answer(401), Some(Outcome::Refused));
        assert_eq!(classify_answer(413), Some(Outcome::Refused));
        assert_eq!(classify_answer(302), Some(Outcome::Refused));
        assert_eq!(classify_answer(503), Some(Outcome::IngestFailed));
    }

    #[test]
    fn live_says_what_outbound_calls_depend_on() {
        assert!(outbound_note(false, Some("false")).starts_with("no outbound call"));
        assert!(outbound_note(true, Some("true")).contains("DryRun=true: the calls are logged"));
        assert!(outbound_note(true, Some("false")).contains("DryRun=false: the calls are made"));
        assert!(outbound_note(true, None).contains("depends on the stack's DryRun setting"));
    }

    #[test]
    fn printable_cuts_and_neutralizes() {
        assert_eq!(printable("a\nb", 10), "a b");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
