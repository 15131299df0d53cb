//! `sparkbridge config check [--online]`: builds every component from the environment, as the
//! deployed functions would, and says exactly what is missing or malformed. With `--online` it
//! also makes one cheap authenticated read against each configured API, with the clients the
//! functions use (the same base URL normalization, no redirects followed). With `SECRETS_ARN`
//! set it reads that secret once and checks each function against it: a key a function needs
//! that is in neither the secret nor the environment fails, named.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shared::adapters::esp::{DEFAULT_ESPUTNIK_URL, DEFAULT_LOOPS_URL};
use shared::adapters::memory_queue::MemoryQueue;
use shared::adapters::memory_secrets::MemorySecret;
use shared::adapters::secretsmanager::SecretsManagerSource;
use shared::core::outbound::CallOutcome;
use shared::core::secret::Secret;
use shared::core::secrets::{
    needs, parse_object, pick, ESPUTNIK_API_KEY, KEYS, LOOPS_API_KEY, SPARKLOOP_API_KEY,
};
use shared::ports::{AccessCheck, EventQueue, SecretSource};
use shared::secrets::{env_values, Component, SecretValues, Secrets, SECRETS_ARN};

#[derive(Serialize)]
struct Check {
    component: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(json: bool, online: bool) -> Result<(), String> {
    let queue: Arc<dyn EventQueue> = Arc::new(MemoryQueue::new(Duration::from_secs(1), 1, 1));
    let secret = SecretSettings::load().await;
    let mut checks: Vec<Check> = secret.check().into_iter().collect();
    checks.extend([
        check(
            "ingest-loops",
            secret
                .secrets(Component::IngestLoops, None)
                .await
                .and_then(|s| shared::ingest::loops::LoopsIngest::from_secrets(queue.clone(), &s))
                .map(|_| "LOOPS_SIGNING_SECRET ok".into()),
        ),
        check(
            "ingest-esputnik",
            secret
                .secrets(Component::IngestEsputnik, None)
                .await
                .and_then(|s| {
                    shared::ingest::esputnik::EsputnikIngest::from_secrets(queue.clone(), &s)
                })
                .map(|_| "webhook auth and ESPUTNIK_TIMEZONE ok".into()),
        ),
        check(
            "ingest-sparkloop",
            secret
                .secrets(Component::IngestSparkloop, None)
                .await
                .and_then(|s| shared::ingest::sparkloop::SparkloopIngest::from_secrets(queue, &s))
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
        check(
            "sparkloop-api",
            secret
                .secrets(Component::Worker, Some(&[SPARKLOOP_API_KEY]))
                .await
                .and_then(|s| sparkloop_api(&s)),
        ),
        check(
            "esp",
            secret
                .secrets(Component::Worker, Some(&[LOOPS_API_KEY, ESPUTNIK_API_KEY]))
                .await
                .and_then(|s| esp(&s)),
        ),
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
    ]);
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
        checks.extend(online_checks(&secret).await);
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

/// The secret in `SECRETS_ARN`, read once; each function is checked against it as it would
/// be at start-up.
enum SecretSettings {
    /// `SECRETS_ARN` is not set: the environment only.
    Unset,
    Read {
        arn: String,
        text: Secret,
        ttl: Result<Duration, String>,
    },
    Unreadable {
        arn: String,
        error: String,
    },
}

impl SecretSettings {
    async fn load() -> Self {
        let Some(arn) = shared::secrets::arn_from_env() else {
            return Self::Unset;
        };
        let aws = shared::adapters::aws::sdk_config().await;
        match SecretsManagerSource::from_conf(&aws, arn.clone())
            .read()
            .await
        {
            Ok(text) => Self::Read {
                arn,
                text,
                ttl: shared::secrets::ttl_from_env(),
            },
            Err(e) => Self::Unreadable {
                arn,
                error: e.to_string(),
            },
        }
    }

    /// The line about the secret itself: read (which keys it holds, never their values), or
    /// why not.
    fn check(&self) -> Option<Check> {
        let (ok, detail) = match self {
            Self::Unset => return None,
            Self::Unreadable { arn, error } => (false, format!("{SECRETS_ARN}={arn}: {error}")),
            Self::Read { arn, text, ttl } => match (parse_object(text.expose()), ttl) {
                (Err(e), _) => (false, format!("{SECRETS_ARN}={arn}: {e}")),
                (Ok(_), Err(e)) => (false, e.clone()),
                (Ok(object), Ok(ttl)) => {
                    let known: Vec<&str> = KEYS
                        .iter()
                        .copied()
                        .filter(|k| object.contains_key(*k))
                        .collect();
                    (
                        true,
                        format!(
                            "{SECRETS_ARN}={arn} read, read again every {} s; holds {}",
                            ttl.as_secs(),
                            if known.is_empty() {
                                "none of the known keys".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    )
                }
            },
        };
        Some(Check {
            component: "secrets",
            ok,
            detail,
        })
    }

    /// The secret settings `component` would start with (only those among `only`, when
    /// given): the environment's, or the secret's over the environment's. A key it needs
    /// that neither has is an error naming the key and who needs it.
    async fn secrets(
        &self,
        component: Component,
        only: Option<&[&str]>,
    ) -> Result<Secrets, String> {
        let who = match component {
            Component::Worker | Component::Reconciler => "worker, reconciler",
            other => other.name(),
        };
        match self {
            Self::Unset => Ok(Secrets::environment()),
            Self::Unreadable { .. } => Err(format!(
                "not checked: the secret in {SECRETS_ARN} could not be read (see above; needed by {who})"
            )),
            Self::Read { text, .. } => {
                let mut needs = needs(
                    component,
                    std::env::var("ESP").ok().as_deref(),
                    shared::config::flag("DRY_RUN"),
                );
                if let Some(keys) = only {
                    needs = needs.only(keys);
                }
                let source = Arc::new(MemorySecret::new(text.expose()));
                Secrets::managed(source, needs, env_values(), Duration::from_secs(300))
                    .await
                    .map_err(|e| format!("{e} (needed by {who})"))
            }
        }
    }

    /// The API keys configured (the environment's and the secret's), to keep out of what is
    /// printed: an API may echo what it was sent.
    fn api_keys(&self) -> Vec<String> {
        const API_KEYS: [&str; 3] = [SPARKLOOP_API_KEY, LOOPS_API_KEY, ESPUTNIK_API_KEY];
        let mut out: Vec<String> = SecretValues::from_env(&API_KEYS, |k| std::env::var(k).ok())
            .values()
            .map(|v| v.expose().to_string())
            .collect();
        if let Self::Read { text, .. } = self {
            if let Some(from_secret) = parse_object(text.expose())
                .ok()
                .and_then(|o| pick(&o, &API_KEYS).ok())
            {
                out.extend(from_secret.values().map(|v| v.expose().to_string()));
            }
        }
        out
    }
}

fn sparkloop_api(secrets: &Secrets) -> Result<String, String> {
    shared::adapters::sparkloop::from_secrets(secrets)?;
    let url = std::env::var("SPARKLOOP_API_URL")
        .unwrap_or_else(|_| shared::adapters::sparkloop::DEFAULT_API_URL.into());
    shared::config::check_api_url("SPARKLOOP_API_URL", &url)?;
    shared::config::number("SPARKLOOP_RATE_PER_MIN", 60u32)?;
    if secrets.values().get(SPARKLOOP_API_KEY).is_none() {
        return Ok("SPARKLOOP_API_KEY not set: dry run (calls are logged, not made)".into());
    }
    Ok(format!("key set, {url}"))
}

/// Builds the ESP client as the worker does (property names, field ids, rate limits), then
/// says whether its key is there.
fn esp(secrets: &Secrets) -> Result<String, String> {
    shared::adapters::esp::from_secrets(secrets)?;
    match std::env::var("ESP").unwrap_or_default().as_str() {
        "" => Ok("ESP not set (SparkLoop -> ESP sync off)".into()),
        "loops" => key_and_url(secrets, LOOPS_API_KEY, "LOOPS_API_URL", DEFAULT_LOOPS_URL),
        "esputnik" => key_and_url(
            secrets,
            ESPUTNIK_API_KEY,
            "ESPUTNIK_API_URL",
            DEFAULT_ESPUTNIK_URL,
        ),
        other => Err(format!("ESP={other:?} must be loops or esputnik")),
    }
}

fn key_and_url(secrets: &Secrets, key: &str, url: &str, default: &str) -> Result<String, String> {
    let u = std::env::var(url).unwrap_or_else(|_| default.into());
    shared::config::check_api_url(url, &u)?;
    if secrets.values().get(key).is_none() {
        return Err(format!("{key} is not set"));
    }
    Ok(format!("{key} set, {u}"))
}

/// One authenticated read per configured API, each on one line naming the URL it tried.
async fn online_checks(secret: &SecretSettings) -> Vec<Check> {
    let hidden = secret.api_keys();
    let mut checks = Vec::new();
    let sparkloop = secret
        .secrets(Component::Worker, Some(&[SPARKLOOP_API_KEY]))
        .await
        .and_then(|s| shared::adapters::sparkloop::from_secrets(&s));
    checks.push(match sparkloop {
        Ok(client) => access("sparkloop online", client.check_access().await, &hidden),
        Err(_) => not_built("sparkloop online"),
    });
    let esp = secret
        .secrets(Component::Worker, Some(&[LOOPS_API_KEY, ESPUTNIK_API_KEY]))
        .await
        .and_then(|s| shared::adapters::esp::from_secrets(&s));
    checks.push(match esp {
        Ok(client) => {
            let component = match client.name() {
                "loops" => "loops online",
                "esputnik" => "esputnik online",
                _ => "esp online",
            };
            access(component, client.check_access().await, &hidden)
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

fn access(component: &'static str, check: Option<AccessCheck>, hidden: &[String]) -> Check {
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
        detail: without_keys(&detail, hidden),
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
fn without_keys(text: &str, hidden: &[String]) -> String {
    let mut out = text.to_string();
    for key in hidden {
        let key = key.trim();
        if key.len() >= 4 {
            out = out.replace(key, "[key]");
        }
    }
    out
}
