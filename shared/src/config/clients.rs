//! Settings of the clients several functions share: the queue, the state table, and the
//! SparkLoop and ESP APIs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, Env};
use crate::adapters::esp::{PropertyNames, DEFAULT_ESPUTNIK_URL, DEFAULT_LOOPS_URL};
use crate::adapters::sparkloop::{rate_share, ClientSettings, DEFAULT_API_URL};
use crate::adapters::sqs::DEFAULT_MAX_MESSAGE_BYTES;

/// The state table's name (required where the table is used).
pub const TABLE_NAME: &str = "TABLE_NAME";

/// The event queue, as ingest, the screener and the reconciler send to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// `QUEUE_URL` (required).
    pub queue_url: String,
    /// `MAX_MESSAGE_BYTES` (default 262144): larger events are kept in reference form.
    pub max_message_bytes: usize,
}

impl QueueConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: env.required("QUEUE_URL")?,
            max_message_bytes: env.number("MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)?,
        })
    }
}

/// The worker's queues: the event queue (back-off through visibility) and the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkQueueConfig {
    /// `QUEUE_URL` (required).
    pub queue_url: String,
    /// `DLQ_URL` (required).
    pub dlq_url: String,
}

impl WorkQueueConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_url: env.required("QUEUE_URL")?,
            dlq_url: env.required("DLQ_URL")?,
        })
    }
}

/// The SparkLoop client (worker, reconciler). Without `SPARKLOOP_API_KEY`, or with `DRY_RUN`,
/// calls are only logged, and the client's settings are not needed: a function then starts
/// whatever `client` holds (`sparkbridge config check` reports it either way).
#[derive(Debug, Clone)]
pub struct SparkLoopConfig {
    /// `DRY_RUN`: log each call, make none.
    pub dry_run: bool,
    pub client: Result<SparkLoopClientConfig, ConfigError>,
}

/// What the SparkLoop client is built with when it makes calls.
#[derive(Debug, Clone)]
pub struct SparkLoopClientConfig {
    /// `SPARKLOOP_API_URL` (default `https://api.sparkloop.app`; https unless
    /// `SPARKBRIDGE_ALLOW_HTTP=true` or loopback).
    pub api_url: String,
    /// The rate this instance may use: `SPARKLOOP_RATE_PER_MIN` (default 60, the stack's total)
    /// shared by `WORKER_MAX_CONCURRENCY` worker instances and the reconciler ([`rate_share`]);
    /// the timeout is `HTTP_TIMEOUT_SECS` (default 10).
    pub settings: ClientSettings,
}

impl SparkLoopConfig {
    pub fn from_env(env: &Env) -> Self {
        Self {
            dry_run: env.flag("DRY_RUN"),
            client: SparkLoopClientConfig::from_env(env),
        }
    }
}

impl SparkLoopClientConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let api_url = env
            .get("SPARKLOOP_API_URL")
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_API_URL)
            .to_string();
        env.api_url("SPARKLOOP_API_URL", &api_url)?;
        let total = env.number("SPARKLOOP_RATE_PER_MIN", 60u32)?;
        let instances = env.optional_number::<u32>("WORKER_MAX_CONCURRENCY")?;
        Ok(Self {
            api_url,
            settings: ClientSettings {
                rate_per_min: rate_share(total, instances),
                total_timeout: Duration::from_secs(env.number("HTTP_TIMEOUT_SECS", 10u64)?),
                ..ClientSettings::default()
            },
        })
    }
}

/// The ESP client (worker, reconciler): `ESP` and that ESP's settings.
#[derive(Debug, Clone)]
pub struct EspConfig {
    /// `DRY_RUN`: log each call, make none.
    pub dry_run: bool,
    /// Timeouts (`HTTP_TIMEOUT_SECS`, default 10).
    pub settings: ClientSettings,
    pub esp: EspChoice,
}

/// `ESP`: which ESP, and its settings. Each rate limit is needed only when the ESP's key is
/// there (without one calls are only logged), so a function starts whatever it holds.
#[derive(Debug, Clone)]
pub enum EspChoice {
    /// `ESP` is not set: SparkLoop -> ESP calls are only logged.
    None,
    Loops {
        /// `LOOPS_API_URL` (default `https://app.loops.so`).
        api_url: String,
        /// `ESP_PROPERTY_NAMES`.
        names: PropertyNames,
        /// `LOOPS_RATE_PER_SEC` (default 10, Loops' limit per team).
        rate_per_sec: Result<u32, ConfigError>,
    },
    Esputnik {
        /// `ESPUTNIK_API_URL` (default `https://esputnik.com`).
        api_url: String,
        /// `ESPUTNIK_FIELD_IDS`: logical property -> eSputnik field id.
        field_ids: BTreeMap<String, i64>,
        /// `ESPUTNIK_RATE_PER_SEC` (default 5).
        rate_per_sec: Result<u32, ConfigError>,
    },
}

impl EspConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings = ClientSettings {
            total_timeout: Duration::from_secs(env.number("HTTP_TIMEOUT_SECS", 10u64)?),
            ..ClientSettings::default()
        };
        let esp = match env.non_blank("ESP") {
            None => EspChoice::None,
            Some("loops") => {
                let api_url = env.non_blank("LOOPS_API_URL").unwrap_or(DEFAULT_LOOPS_URL);
                env.api_url("LOOPS_API_URL", api_url)?;
                EspChoice::Loops {
                    api_url: api_url.to_string(),
                    names: PropertyNames::from_json(env.non_blank("ESP_PROPERTY_NAMES"))?,
                    rate_per_sec: env.number("LOOPS_RATE_PER_SEC", 10u32),
                }
            }
            Some("esputnik") => {
                let api_url = env
                    .non_blank("ESPUTNIK_API_URL")
                    .unwrap_or(DEFAULT_ESPUTNIK_URL);
                env.api_url("ESPUTNIK_API_URL", api_url)?;
                let field_ids = match env.non_blank("ESPUTNIK_FIELD_IDS") {
                    Some(t) => serde_json::from_str(t).map_err(|e| {
                        ConfigError::unshown(
                            "ESPUTNIK_FIELD_IDS",
                            format!("is not a JSON object of field ids: {e}"),
                        )
                    })?,
                    None => BTreeMap::new(),
                };
                EspChoice::Esputnik {
                    api_url: api_url.to_string(),
                    field_ids,
                    rate_per_sec: env.number("ESPUTNIK_RATE_PER_SEC", 5u32),
                }
            }
            Some(other) => {
                return Err(ConfigError::quoted(
                    "ESP",
                    other,
                    "must be loops or esputnik",
                ))
            }
        };
        Ok(Self {
            dry_run: env.flag("DRY_RUN"),
            settings,
            esp,
        })
    }

    /// The ESP's name (`none`, `loops`, `esputnik`).
    pub fn name(&self) -> &'static str {
        match self.esp {
            EspChoice::None => "none",
            EspChoice::Loops { .. } => "loops",
            EspChoice::Esputnik { .. } => "esputnik",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    #[test]
    fn queues_need_their_urls() {
        let cases: Vec<(Vars, Result<QueueConfig, &str>)> = vec![
            (
                &[("QUEUE_URL", "https://q")],
                Ok(QueueConfig {
                    queue_url: "https://q".into(),
                    max_message_bytes: 262_144,
                }),
            ),
            (
                &[("QUEUE_URL", "https://q"), ("MAX_MESSAGE_BYTES", "1024")],
                Ok(QueueConfig {
                    queue_url: "https://q".into(),
                    max_message_bytes: 1024,
                }),
            ),
            (
                &[("QUEUE_URL", " ")],
                Err("environment variable QUEUE_URL is not set"),
            ),
            (
                &[("QUEUE_URL", "https://q"), ("MAX_MESSAGE_BYTES", "-1")],
                Err(r#"MAX_MESSAGE_BYTES="-1" is not a valid number"#),
            ),
        ];
        for (vars, want) in cases {
            let got = QueueConfig::from_env(&Env::from_pairs(vars.iter().copied()));
            assert_eq!(
                got.map_err(|e| e.to_string()),
                want.map_err(String::from),
                "{vars:?}"
            );
        }
        let err = WorkQueueConfig::from_env(&Env::from_pairs([("QUEUE_URL", "q")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "DLQ_URL" });
    }

    #[test]
    fn sparkloop_settings_are_checked_even_when_no_call_is_made() {
        let cfg = SparkLoopConfig::from_env(&Env::from_pairs([
            ("SPARKLOOP_RATE_PER_MIN", "120"),
            ("WORKER_MAX_CONCURRENCY", "5"),
            ("HTTP_TIMEOUT_SECS", "4"),
        ]));
        let client = cfg.client.unwrap();
        assert_eq!(client.api_url, DEFAULT_API_URL);
        assert_eq!(
            client.settings.rate_per_min, 20,
            "a share of the stack's total"
        );
        assert_eq!(client.settings.total_timeout, Duration::from_secs(4));
        assert!(!cfg.dry_run);
        for (name, value, want) in [
            (
                "SPARKLOOP_API_URL",
                "http://169.254.169.254",
                r#"SPARKLOOP_API_URL="http://169.254.169.254" must be an https:// URL"#,
            ),
            (
                "SPARKLOOP_RATE_PER_MIN",
                "fast",
                r#"SPARKLOOP_RATE_PER_MIN="fast" is not a valid number"#,
            ),
            (
                "WORKER_MAX_CONCURRENCY",
                "x",
                r#"WORKER_MAX_CONCURRENCY="x" is not a valid number"#,
            ),
            (
                "HTTP_TIMEOUT_SECS",
                "-5",
                r#"HTTP_TIMEOUT_SECS="-5" is not a valid number"#,
            ),
        ] {
            let cfg =
                SparkLoopConfig::from_env(&Env::from_pairs([(name, value), ("DRY_RUN", "on")]));
            assert!(cfg.dry_run);
            let err = cfg.client.unwrap_err();
            assert_eq!((err.name(), err.to_string().as_str()), (name, want));
        }
    }

    #[test]
    fn esp_settings_name_the_variable_at_fault() {
        let loops = EspConfig::from_env(&Env::from_pairs([
            ("ESP", "loops"),
            ("LOOPS_API_URL", "http://127.0.0.1:9"),
            ("LOOPS_RATE_PER_SEC", "often"),
        ]))
        .unwrap();
        match &loops.esp {
            EspChoice::Loops {
                api_url,
                rate_per_sec,
                ..
            } => {
                assert_eq!(api_url, "http://127.0.0.1:9");
                assert_eq!(
                    rate_per_sec.as_ref().unwrap_err().name(),
                    "LOOPS_RATE_PER_SEC"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(EspConfig::from_env(&Env::default()).unwrap().name(), "none");
        let esputnik = EspConfig::from_env(&Env::from_pairs([
            ("ESP", "esputnik"),
            ("ESPUTNIK_FIELD_IDS", r#"{"status": 101}"#),
        ]))
        .unwrap();
        match esputnik.esp {
            EspChoice::Esputnik {
                api_url,
                field_ids,
                rate_per_sec,
            } => {
                assert_eq!(api_url, DEFAULT_ESPUTNIK_URL);
                assert_eq!(field_ids, BTreeMap::from([("status".to_string(), 101)]));
                assert_eq!(rate_per_sec, Ok(5));
            }
            other => panic!("{other:?}"),
        }
        for (vars, name, want) in [
            (
                vec![("ESP", "mailchimp")],
                "ESP",
                r#"ESP="mailchimp" must be loops or esputnik"#,
            ),
            (
                vec![("ESP", "loops"), ("HTTP_TIMEOUT_SECS", "soon")],
                "HTTP_TIMEOUT_SECS",
                r#"HTTP_TIMEOUT_SECS="soon" is not a valid number"#,
            ),
            (
                vec![("ESP", "loops"), ("LOOPS_API_URL", "ftp://x")],
                "LOOPS_API_URL",
                r#"LOOPS_API_URL="ftp://x" must be an https:// URL"#,
            ),
            (
                vec![("ESP", "loops"), ("ESP_PROPERTY_NAMES", "status=x")],
                "ESP_PROPERTY_NAMES",
                "ESP_PROPERTY_NAMES is not a JSON object of strings",
            ),
            (
                vec![
                    ("ESP", "esputnik"),
                    ("ESPUTNIK_FIELD_IDS", r#"{"status": "a"}"#),
                ],
                "ESPUTNIK_FIELD_IDS",
                "ESPUTNIK_FIELD_IDS is not a JSON object of field ids",
            ),
        ] {
            let err = EspConfig::from_env(&Env::from_pairs(vars.clone())).unwrap_err();
            assert_eq!(err.name(), name, "{vars:?}");
            assert!(err.to_string().starts_with(want), "{err} for {vars:?}");
        }
    }
}
