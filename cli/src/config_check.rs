//! `sparkbridge config check [--online]`: builds every component from the environment, as the
//! deployed functions would, and says exactly what is missing or malformed. With `--online` it
//! also makes one cheap authenticated read against each configured API, with the clients the
//! functions use (the same base URL normalization, no redirects followed). With `SECRETS_ARN`
//! set it reads that secret once and checks each function against it: a key a function needs
//! that is in neither the secret nor the environment fails, named.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sparkbridge::adapters::memory_queue::MemoryQueue;
use sparkbridge::adapters::memory_secrets::MemorySecret;
use sparkbridge::adapters::secretsmanager::SecretsManagerSource;
use sparkbridge::config::{
    ConfigError, Env, EspChoice, EspConfig, EsputnikWebhookConfig, SecretsConfig, SparkLoopConfig,
    TABLE_NAME,
};
use sparkbridge::core::outbound::CallOutcome;
use sparkbridge::core::secret::Secret;
use sparkbridge::core::secrets::{
    parse_object, pick, ESPUTNIK_API_KEY, KEYS, LOOPS_API_KEY, SPARKLOOP_API_KEY,
};
use sparkbridge::ports::{AccessCheck, EventQueue, SecretSource};
use sparkbridge::reconcile::ReconcileConfig;
use sparkbridge::screener::ScreeningConfig;
use sparkbridge::secrets::{Component, Secrets, SECRETS_ARN};
use sparkbridge::worker::WorkerConfig;

use crate::error::CliError;

#[derive(Serialize)]
struct Check {
    component: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(json: bool, online: bool) -> Result<(), CliError> {
    let env = Env::process();
    let queue: Arc<dyn EventQueue> = Arc::new(MemoryQueue::new(Duration::from_secs(1), 1, 1));
    let secret = SecretSettings::load(&env).await;
    let mut checks: Vec<Check> = secret.check().into_iter().collect();
    checks.extend([
        check(
            "ingest-loops",
            secret
                .secrets(Component::IngestLoops, None)
                .await
                .and_then(|s| {
                    sparkbridge::ingest::loops::LoopsIngest::from_secrets(queue.clone(), &s)
                        .map_err(CliError::from)
                })
                .map(|_| "LOOPS_SIGNING_SECRET ok".into()),
        ),
        check(
            "ingest-esputnik",
            secret
                .secrets(Component::IngestEsputnik, None)
                .await
                .and_then(|s| {
                    let webhook = EsputnikWebhookConfig::from_env(&env)?;
                    sparkbridge::ingest::esputnik::EsputnikIngest::from_secrets(
                        queue.clone(),
                        &s,
                        webhook,
                    )
                    .map_err(CliError::from)
                })
                .map(|_| "webhook auth and ESPUTNIK_TIMEZONE ok".into()),
        ),
        check(
            "ingest-sparkloop",
            secret
                .secrets(Component::IngestSparkloop, None)
                .await
                .and_then(|s| {
                    sparkbridge::ingest::sparkloop::SparkloopIngest::from_secrets(queue, &s)
                        .map_err(CliError::from)
                })
                .map(|_| "SPARKLOOP_WEBHOOK_TOKEN ok".into()),
        ),
        check(
            "worker",
            WorkerConfig::from_env(&env)
                .map(|c| {
                    format!(
                        "retry window {} s, max attempts {}, base delay {} s, confirm signups {}",
                        c.retry.window_secs,
                        c.retry.max_attempts,
                        c.backoff.base_secs,
                        c.rules.confirm_signups
                    )
                })
                .map_err(CliError::from),
        ),
        check(
            "sparkloop-api",
            secret
                .secrets(Component::Worker, Some(&[SPARKLOOP_API_KEY]))
                .await
                .and_then(|s| sparkloop_api(&SparkLoopConfig::from_env(&env), &s)),
        ),
        check(
            "esp",
            secret
                .secrets(Component::Worker, Some(&[LOOPS_API_KEY, ESPUTNIK_API_KEY]))
                .await
                .and_then(|s| esp(EspConfig::from_env(&env), &s)),
        ),
        check(
            "screener",
            ScreeningConfig::from_env(&env)
                .map(|c| {
                    format!(
                        "enabled {}, {} days, {} partner rule(s)",
                        c.enabled,
                        c.days,
                        c.partners.len()
                    )
                })
                .map_err(CliError::from),
        ),
        check(
            "reconciler",
            ReconcileConfig::from_env(&env)
                .map(|c| {
                    format!(
                        "looks back {} days, queues SparkLoop unsubscribes for at most {:.1}% of the referrals compared",
                        c.since.num_days(),
                        c.max_unsubscribe_share * 100.0
                    )
                })
                .map_err(CliError::from),
        ),
    ]);
    for name in ["QUEUE_URL", "DLQ_URL", TABLE_NAME] {
        let set = env.get(name).is_some_and(|v| !v.is_empty());
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
        checks.extend(online_checks(&env, &secret).await);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
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
        Err(CliError::Failed(format!("{failed} configuration error(s)")))
    }
}

fn check(component: &'static str, r: Result<String, CliError>) -> Check {
    match r {
        Ok(detail) => Check {
            component,
            ok: true,
            detail,
        },
        Err(e) => Check {
            component,
            ok: false,
            detail: e.to_string(),
        },
    }
}

/// The secret settings as configured (`SECRETS_ARN` read once, when set): each function is
/// checked against them as it would be at start-up.
struct SecretSettings {
    /// `ESP`, `DRY_RUN` and the secret variables of the environment.
    cfg: SecretsConfig,
    secret: SecretState,
}

enum SecretState {
    /// `SECRETS_ARN` is not set: the environment only.
    Unset,
    Read {
        arn: String,
        text: Secret,
        ttl: Result<Duration, ConfigError>,
    },
    Unreadable {
        arn: String,
        error: String,
    },
}

impl SecretSettings {
    async fn load(env: &Env) -> Self {
        let cfg = SecretsConfig::environment(env);
        let Some(arn) = SecretsConfig::arn(env) else {
            return Self {
                cfg,
                secret: SecretState::Unset,
            };
        };
        let aws = sparkbridge::adapters::aws::sdk_config().await;
        let secret = match SecretsManagerSource::from_conf(&aws, arn.clone())
            .read()
            .await
        {
            Ok(text) => SecretState::Read {
                arn,
                text,
                ttl: SecretsConfig::ttl(env),
            },
            Err(e) => SecretState::Unreadable {
                arn,
                error: e.to_string(),
            },
        };
        Self { cfg, secret }
    }

    /// The line about the secret itself: read (which keys it holds, never their values), or
    /// why not.
    fn check(&self) -> Option<Check> {
        let (ok, detail) = match &self.secret {
            SecretState::Unset => return None,
            SecretState::Unreadable { arn, error } => {
                (false, format!("{SECRETS_ARN}={arn}: {error}"))
            }
            SecretState::Read { arn, text, ttl } => match (parse_object(text.expose()), ttl) {
                (Err(e), _) => (false, format!("{SECRETS_ARN}={arn}: {e}")),
                (Ok(_), Err(e)) => (false, e.to_string()),
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
    ) -> Result<Secrets, CliError> {
        let who = match component {
            Component::Worker | Component::Reconciler => "worker, reconciler",
            other => other.name(),
        };
        match &self.secret {
            SecretState::Unset => Ok(Secrets::environment(self.cfg.env.clone())),
            SecretState::Unreadable { .. } => Err(CliError::Failed(format!(
                "not checked: the secret in {SECRETS_ARN} could not be read (see above; needed by {who})"
            ))),
            SecretState::Read { text, .. } => {
                let mut needs = self.cfg.needs(component);
                if let Some(keys) = only {
                    needs = needs.only(keys);
                }
                let source = Arc::new(MemorySecret::new(text.expose()));
                Secrets::managed(source, needs, self.cfg.env.clone(), Duration::from_secs(300))
                    .await
                    .map_err(|e| CliError::Failed(format!("{e} (needed by {who})")))
            }
        }
    }

    /// The API keys configured (the environment's and the secret's), to keep out of what is
    /// printed: an API may echo what it was sent.
    fn api_keys(&self) -> Vec<String> {
        const API_KEYS: [&str; 3] = [SPARKLOOP_API_KEY, LOOPS_API_KEY, ESPUTNIK_API_KEY];
        let mut out: Vec<String> = API_KEYS
            .iter()
            .filter_map(|k| self.cfg.env.get(k))
            .map(|v| v.expose().to_string())
            .collect();
        if let SecretState::Read { text, .. } = &self.secret {
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

/// Builds the SparkLoop client as the worker does; its settings are checked even without a
/// key (they stop the worker once one is set).
fn sparkloop_api(cfg: &SparkLoopConfig, secrets: &Secrets) -> Result<String, CliError> {
    let client = cfg.client.clone()?;
    sparkbridge::adapters::sparkloop::from_secrets(cfg, secrets)?;
    if secrets.values().get(SPARKLOOP_API_KEY).is_none() {
        return Ok("SPARKLOOP_API_KEY not set: dry run (calls are logged, not made)".into());
    }
    Ok(format!("key set, {}", client.api_url))
}

/// Builds the ESP client as the worker does (property names, field ids, rate limits), then
/// says whether its key is there.
fn esp(cfg: Result<EspConfig, ConfigError>, secrets: &Secrets) -> Result<String, CliError> {
    let cfg = cfg?;
    sparkbridge::adapters::esp::from_secrets(&cfg, secrets)?;
    let (key, api_url, rate) = match &cfg.esp {
        EspChoice::None => return Ok("ESP not set (SparkLoop -> ESP sync off)".into()),
        EspChoice::Loops {
            api_url,
            rate_per_sec,
            ..
        } => (LOOPS_API_KEY, api_url, rate_per_sec),
        EspChoice::Esputnik {
            api_url,
            rate_per_sec,
            ..
        } => (ESPUTNIK_API_KEY, api_url, rate_per_sec),
    };
    rate.clone()?;
    if secrets.values().get(key).is_none() {
        return Err(CliError::Failed(format!("{key} is not set")));
    }
    Ok(format!("{key} set, {api_url}"))
}

/// One authenticated read per configured API, each on one line naming the URL it tried.
async fn online_checks(env: &Env, secret: &SecretSettings) -> Vec<Check> {
    let hidden = secret.api_keys();
    let mut checks = Vec::new();
    let sparkloop = secret
        .secrets(Component::Worker, Some(&[SPARKLOOP_API_KEY]))
        .await
        .and_then(|s| {
            sparkbridge::adapters::sparkloop::from_secrets(&SparkLoopConfig::from_env(env), &s)
                .map_err(CliError::from)
        });
    checks.push(match sparkloop {
        Ok(client) => access("sparkloop online", client.check_access().await, &hidden),
        Err(_) => not_built("sparkloop online"),
    });
    let esp = secret
        .secrets(Component::Worker, Some(&[LOOPS_API_KEY, ESPUTNIK_API_KEY]))
        .await
        .and_then(|s| {
            let cfg = EspConfig::from_env(env)?;
            sparkbridge::adapters::esp::from_secrets(&cfg, &s).map_err(CliError::from)
        });
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
