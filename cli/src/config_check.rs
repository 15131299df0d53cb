//! `sparkbridge config check [--online]`: builds every component from the environment, as the
//! deployed functions would, and says exactly what is missing or malformed. With `--online` it
//! also makes one cheap authenticated read against each configured API, with the clients the
//! functions use (the same base URL normalization, no redirects followed).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shared::adapters::esp::{DEFAULT_ESPUTNIK_URL, DEFAULT_LOOPS_URL};
use shared::adapters::memory_queue::MemoryQueue;
use shared::core::outbound::CallOutcome;
use shared::ports::{AccessCheck, EventQueue};

#[derive(Serialize)]
struct Check {
    component: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(json: bool, online: bool) -> Result<(), String> {
    let queue: Arc<dyn EventQueue> = Arc::new(MemoryQueue::new(Duration::from_secs(1), 1, 1));
    let mut checks = vec![
        check(
            "ingest-loops",
            shared::ingest::loops::LoopsIngest::from_env(queue.clone())
                .map(|_| "LOOPS_SIGNING_SECRET ok".into()),
        ),
        check(
            "ingest-esputnik",
            shared::ingest::esputnik::EsputnikIngest::from_env(queue.clone())
                .map(|_| "webhook auth and ESPUTNIK_TIMEZONE ok".into()),
        ),
        check(
            "ingest-sparkloop",
            shared::ingest::sparkloop::SparkloopIngest::from_env(queue)
                .map(|_| "SPARKLOOP_WEBHOOK_TOKEN ok".into()),
        ),
        check(
            "worker",
            shared::worker::WorkerConfig::from_env().map(|c| {
                format!(
                    "retry window {} s, max attempts {}, base delay {} s, confirm signups {}",
                    c.retry.window_secs,
                    c.retry.max_attempts,
                    c.backoff.base_secs,
                    c.rules.confirm_signups
                )
            }),
        ),
        check("sparkloop-api", sparkloop_api()),
        check("esp", esp()),
        check(
            "screener",
            shared::screener::ScreeningConfig::from_env().map(|c| {
                format!(
                    "enabled {}, {} days, {} partner rule(s)",
                    c.enabled,
                    c.days,
                    c.partners.len()
                )
            }),
        ),
        check(
            "reconciler",
            shared::reconcile::ReconcileConfig::from_env()
                .map(|c| {
                    format!(
                        "looks back {} days, queues SparkLoop unsubscribes for at most {:.1}% of the referrals compared",
                        c.since.num_days(),
                        c.max_unsubscribe_share * 100.0
                    )
                }),
        ),
    ];
    for name in ["QUEUE_URL", "DLQ_URL", "TABLE_NAME"] {
        let set = std::env::var(name).is_ok_and(|v| !v.is_empty());
        checks.push(Check {
            component: "aws",
            ok: true,
            detail: if set {
                format!("{name} set")
            } else {
                format!("{name} not set (needed when deployed or with `dev --aws`)")
            },
        });
    }
    if online {
        checks.extend(online_checks().await);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).map_err(|e| e.to_string())?
        );
    } else {
        for c in &checks {
            println!(
                "{} {:<17} {}",
                if c.ok { "ok " } else { "ERR" },
                c.component,
                c.detail
            );
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} configuration error(s)"))
    }
}

fn check(component: &'static str, r: Result<String, String>) -> Check {
    match r {
        Ok(detail) => Check {
            component,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            component,
            ok: false,
            detail,
        },
    }
}

fn sparkloop_api() -> Result<String, String> {
    shared::adapters::sparkloop::from_env()?;
    let url = std::env::var("SPARKLOOP_API_URL")
        .unwrap_or_else(|_| shared::adapters::sparkloop::DEFAULT_API_URL.into());
    shared::config::check_api_url("SPARKLOOP_API_URL", &url)?;
    shared::config::number("SPARKLOOP_RATE_PER_MIN", 60u32)?;
    if std::env::var("SPARKLOOP_API_KEY").map_or(true, |v| v.trim().is_empty()) {
        return Ok("SPARKLOOP_API_KEY not set: dry run (calls are logged, not made)".into());
    }
    Ok(format!("key set, {url}"))
}

/// Builds the ESP client as the worker does (property names, field ids, rate limits), then
/// says whether its key is there.
fn esp() -> Result<String, String> {
    shared::adapters::esp::from_env()?;
    match std::env::var("ESP").unwrap_or_default().as_str() {
        "" => Ok("ESP not set (SparkLoop -> ESP sync off)".into()),
        "loops" => key_and_url("LOOPS_API_KEY", "LOOPS_API_URL", DEFAULT_LOOPS_URL),
        "esputnik" => key_and_url("ESPUTNIK_API_KEY", "ESPUTNIK_API_URL", DEFAULT_ESPUTNIK_URL),
        other => Err(format!("ESP={other:?} must be loops or esputnik")),
    }
}

fn key_and_url(key: &str, url: &str, default: &str) -> Result<String, String> {
    let u = std::env::var(url).unwrap_or_else(|_| default.into());
    shared::config::check_api_url(url, &u)?;
    if std::env::var(key).map_or(true, |v| v.trim().is_empty()) {
        return Err(format!("{key} is not set"));
    }
    Ok(format!("{key} set, {u}"))
}

/// One authenticated read per configured API, each on one line naming the URL it tried.
async fn online_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match shared::adapters::sparkloop::from_env() {
        Ok(client) => access("sparkloop online", client.check_access().await),
        Err(_) => not_built("sparkloop online"),
    });
    checks.push(match shared::adapters::esp::from_env() {
        Ok(client) => {
            let component = match client.name() {
                "loops" => "loops online",
                "esputnik" => "esputnik online",
                _ => "esp online",
            };
            access(component, client.check_access().await)
        }
        Err(_) => not_built("esp online"),
    });
    checks
}

fn not_built(component: &'static str) -> Check {
    Check {
        component,
        ok: false,
        detail: "not called: its configuration is wrong (see above)".into(),
    }
}

fn access(component: &'static str, check: Option<AccessCheck>) -> Check {
    let Some(AccessCheck { url, outcome }) = check else {
        return Check {
            component,
            ok: true,
            detail: "not called: no API key, or DRY_RUN".into(),
        };
    };
    let (ok, detail) = match outcome {
        Ok(()) => (true, format!("GET {url}: key accepted")),
        Err(CallOutcome::Permanent { status, body }) => {
            let why = match status {
                300..=399 => "a redirect, not followed: check the API URL",
                401 | 403 => "the key was refused",
                404 => "no such route: check the API URL",
                200 => "not the API's answer: check the API URL",
                _ => "refused",
            };
            (
                false,
                format!(
                    "GET {url} answered HTTP {status} ({why}): {}",
                    shorten(&body)
                ),
            )
        }
        Err(CallOutcome::Retry { reason, .. }) => {
            (false, format!("GET {url} failed ({reason}): not verified"))
        }
        Err(other) => (false, format!("GET {url}: {}", other.label())),
    };
    Check {
        component,
        ok,
        detail: without_keys(&detail),
    }
}

/// The start of an API's answer, on one line.
fn shorten(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(200).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// An API may echo what it was sent: the configured keys never reach the output.
fn without_keys(text: &str) -> String {
    let mut out = text.to_string();
    for name in ["SPARKLOOP_API_KEY", "LOOPS_API_KEY", "ESPUTNIK_API_KEY"] {
        if let Ok(key) = std::env::var(name) {
            let key = key.trim();
            if key.len() >= 4 {
                out = out.replace(key, "[key]");
            }
        }
    }
    out
}
