//! Secret settings that follow a rotation without a deploy.
//!
//! With `SECRETS_ARN` set, a function reads that Secrets Manager secret at start-up (a JSON
//! object of variable names to values), keeps the keys it needs (`core::secrets::needs`) and
//! reads it again once its values are older than `SECRETS_TTL_SECS` (default 300): lazily, on
//! the first use after that, so an idle (frozen) Lambda environment makes no calls. Handlers
//! and clients hold [`Live`] values (signing keys, tokens, an API key) and take the current
//! one per request or call; a `Live` value is rebuilt only when the secret's values changed.
//! A failed read, or new values the function refuses, leaves the last good ones in use and
//! logs a warning naming what failed, never a value. A value in the secret wins over the same
//! environment variable.
//!
//! Without `SECRETS_ARN` the values come from the environment, read once at start-up
//! (`crate::config::SecretsConfig`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::adapters::secretsmanager::SecretsManagerSource;
use crate::config::SecretsConfig;
use crate::core::secrets::{refresh_due, resolve, SecretsError};
use crate::ports::{SecretReadError, SecretSource};

pub use crate::config::{SECRETS_ARN, SECRETS_TTL_SECS};
pub use crate::core::secrets::{Component, Needs, SecretValues};

/// Why the secret's values could not be used: it could not be read, or what it holds is
/// refused. Messages name keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] SecretReadError),
    #[error(transparent)]
    Refused(#[from] SecretsError),
    #[error("no answer within {} s", .0.as_secs())]
    TimedOut(Duration),
}

/// A function cannot start with the secret in `SECRETS_ARN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SECRETS_ARN={arn}: {source}")]
pub struct StartError {
    pub arn: String,
    #[source]
    pub source: LoadError,
}

/// The longest a request or call waits for the secret to be read again; past it the last
/// values are used (and the read counts as failed).
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// The values as of one read of the secret. `version` grows each time they change.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub values: SecretValues,
}

struct State {
    snapshot: Arc<Snapshot>,
    read_at: Instant,
    /// The last failed attempt since the last successful read.
    failed_at: Option<Instant>,
}

/// The secret's values for one function, read again when older than the TTL.
pub struct SecretsCache {
    source: Arc<dyn SecretSource>,
    needs: Needs,
    env: SecretValues,
    ttl: Duration,
    state: RwLock<State>,
    reading: tokio::sync::Mutex<()>,
}

impl SecretsCache {
    /// Reads the secret once; an unreadable secret, or one that lacks a required key that
    /// the environment lacks too, is an error naming what is wrong.
    pub async fn load(
        source: Arc<dyn SecretSource>,
        needs: Needs,
        env: SecretValues,
        ttl: Duration,
    ) -> Result<Self, LoadError> {
        let values = read(source.as_ref(), &needs, &env).await?;
        Ok(Self {
            source,
            needs,
            env,
            ttl,
            state: RwLock::new(State {
                snapshot: Arc::new(Snapshot { version: 0, values }),
                read_at: Instant::now(),
                failed_at: None,
            }),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// The values as of the last successful read, without reading.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot
            .clone()
    }

    fn due(&self, now: Instant) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        refresh_due(
            now.saturating_duration_since(state.read_at),
            state.failed_at.map(|f| now.saturating_duration_since(f)),
            self.ttl,
        )
    }

    /// The current values: when the TTL has passed the secret is read first. One caller
    /// reads at a time; the others go on with the last values meanwhile.
    pub async fn current(&self) -> Arc<Snapshot> {
        if !self.due(Instant::now()) {
            return self.snapshot();
        }
        let Ok(_reading) = self.reading.try_lock() else {
            return self.snapshot();
        };
        if !self.due(Instant::now()) {
            return self.snapshot();
        }
        let result = tokio::time::timeout(
            REFRESH_TIMEOUT,
            read(self.source.as_ref(), &self.needs, &self.env),
        )
        .await
        .unwrap_or(Err(LoadError::TimedOut(REFRESH_TIMEOUT)));
        let now = Instant::now();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(values) => {
                if !values.same_as(&state.snapshot.values) {
                    let keys = values.names().collect::<Vec<_>>().join(",");
                    state.snapshot = Arc::new(Snapshot {
                        version: state.snapshot.version + 1,
                        values,
                    });
                    tracing::info!(keys = %keys, "secrets: new values read from the secret");
                }
                state.read_at = now;
                state.failed_at = None;
            }
            Err(error) => {
                tracing::warn!(
                    error = %error,
                    "secrets: reading the secret failed; the last values read stay in use"
                );
                state.failed_at = Some(now);
            }
        }
        state.snapshot.clone()
    }
}

async fn read(
    source: &dyn SecretSource,
    needs: &Needs,
    env: &SecretValues,
) -> Result<SecretValues, LoadError> {
    let text = source.read().await?;
    Ok(resolve(text.expose(), needs, env)?)
}

/// Builds a value from the secret values; a refusal is logged by what it says.
type Build<T> = Box<dyn Fn(&SecretValues) -> Result<T, String> + Send + Sync>;

struct Rebuild<T> {
    cache: Arc<SecretsCache>,
    build: Build<T>,
}

/// A value built from secret settings (signing keys, a token list, an API key), current as
/// of the secret's last read. Take it with [`Live::get`] per request or call.
pub struct Live<T> {
    /// The value and the snapshot version it was built from (or refused at).
    built: RwLock<(u64, Arc<T>)>,
    rebuild: Option<Rebuild<T>>,
}

impl<T> Live<T> {
    /// A value that never changes (environment variables, tests).
    pub fn fixed(value: T) -> Self {
        Self {
            built: RwLock::new((0, Arc::new(value))),
            rebuild: None,
        }
    }

    /// The current value. When the secret's values changed, it is rebuilt from them; if they
    /// are refused (a malformed new signing secret, say) the previous value stays in use.
    pub async fn get(&self) -> Arc<T> {
        let Some(r) = &self.rebuild else {
            return self
                .built
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .clone();
        };
        let snapshot = r.cache.current().await;
        {
            let built = self.built.read().unwrap_or_else(|e| e.into_inner());
            if built.0 >= snapshot.version {
                return built.1.clone();
            }
        }
        let mut built = self.built.write().unwrap_or_else(|e| e.into_inner());
        if built.0 < snapshot.version {
            match (r.build)(&snapshot.values) {
                Ok(value) => *built = (snapshot.version, Arc::new(value)),
                Err(error) => {
                    tracing::warn!(
                        error = %error,
                        "secrets: the new values are refused; the previous ones stay in use"
                    );
                    built.0 = snapshot.version;
                }
            }
        }
        built.1.clone()
    }
}

impl<T> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.rebuild.is_some() {
            "Live(from the secret)"
        } else {
            "Live(fixed)"
        })
    }
}

/// Where a function's secret settings come from.
#[derive(Clone)]
pub enum Secrets {
    /// The environment variables, as read at start-up.
    Environment(SecretValues),
    /// The secret in `SECRETS_ARN`, read again after the TTL.
    Managed(Arc<SecretsCache>),
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Environment(_) => f.write_str("Secrets::Environment"),
            Self::Managed(c) => write!(f, "Secrets::Managed({:?})", c.snapshot().values),
        }
    }
}

impl Secrets {
    /// The values the environment sets, with no secret.
    pub fn environment(values: SecretValues) -> Self {
        Self::Environment(values)
    }

    /// For `component`: the secret in `cfg.secret` (read now, then again after its TTL), or
    /// the environment's values when there is none. The keys needed follow `ESP` and `DRY_RUN`.
    pub async fn load(
        aws: &aws_config::SdkConfig,
        cfg: &SecretsConfig,
        component: Component,
    ) -> Result<Self, StartError> {
        let Some(secret) = &cfg.secret else {
            return Ok(Self::Environment(cfg.env.clone()));
        };
        let source = Arc::new(SecretsManagerSource::from_conf(aws, secret.arn.clone()));
        Self::managed(source, cfg.needs(component), cfg.env.clone(), secret.ttl)
            .await
            .map_err(|source| StartError {
                arn: secret.arn.clone(),
                source,
            })
    }

    /// Reads `source` now and keeps `needs.keys` from it (or from `env`), read again after
    /// `ttl`.
    pub async fn managed(
        source: Arc<dyn SecretSource>,
        needs: Needs,
        env: SecretValues,
        ttl: Duration,
    ) -> Result<Self, LoadError> {
        Ok(Self::Managed(Arc::new(
            SecretsCache::load(source, needs, env, ttl).await?,
        )))
    }

    /// The values now (the environment's, or the secret's as last read).
    pub fn values(&self) -> SecretValues {
        match self {
            Self::Environment(values) => values.clone(),
            Self::Managed(cache) => cache.snapshot().values.clone(),
        }
    }

    /// A value built by `build` from the secret values, rebuilt when they change (from the
    /// secret); the first build's error is returned, later ones are logged.
    pub fn live<T, E, F>(&self, build: F) -> Result<Live<T>, E>
    where
        E: std::fmt::Display + 'static,
        F: Fn(&SecretValues) -> Result<T, E> + Send + Sync + 'static,
    {
        match self {
            Self::Environment(values) => Ok(Live::fixed(build(values)?)),
            Self::Managed(cache) => {
                let snapshot = cache.snapshot();
                let value = build(&snapshot.values)?;
                Ok(Live {
                    built: RwLock::new((snapshot.version, Arc::new(value))),
                    rebuild: Some(Rebuild {
                        cache: cache.clone(),
                        build: Box::new(move |v| build(v).map_err(|e| e.to_string())),
                    }),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory_secrets::MemorySecret;
    use crate::core::secrets::{needs, LOOPS_API_KEY, SPARKLOOP_API_KEY};

    const TTL: Duration = Duration::from_millis(200);

    async fn worker_secrets(
        source: Arc<MemorySecret>,
        env: SecretValues,
    ) -> Result<Secrets, LoadError> {
        Secrets::managed(
            source,
            needs(Component::Worker, Some("loops"), false),
            env,
            TTL,
        )
        .await
    }

    fn key(v: &SecretValues) -> String {
        v.text(SPARKLOOP_API_KEY).to_string()
    }

    #[tokio::test]
    async fn a_rotation_reaches_live_values_after_the_ttl_and_not_before() {
        let source = Arc::new(MemorySecret::new(
            r#"{"SPARKLOOP_API_KEY": "k1", "LOOPS_API_KEY": "l1"}"#,
        ));
        let secrets = worker_secrets(source.clone(), SecretValues::default())
            .await
            .unwrap();
        let live = secrets.live(|v| Ok::<_, String>(key(v))).unwrap();
        assert_eq!(*live.get().await, "k1");
        source.set(Some(
            r#"{"SPARKLOOP_API_KEY": "k2", "LOOPS_API_KEY": "l1"}"#,
        ));
        assert_eq!(*live.get().await, "k1", "before the TTL");
        assert_eq!(source.reads(), 1, "no read before the TTL");
        tokio::time::sleep(TTL).await;
        assert_eq!(*live.get().await, "k2", "after the TTL");
        assert_eq!(source.reads(), 2);
        assert_eq!(*live.get().await, "k2");
        assert_eq!(source.reads(), 2, "one read per TTL");
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_last_values_and_is_retried_later() {
        let source = Arc::new(MemorySecret::new(
            r#"{"SPARKLOOP_API_KEY": "k1", "LOOPS_API_KEY": "l1"}"#,
        ));
        let secrets = worker_secrets(source.clone(), SecretValues::default())
            .await
            .unwrap();
        let live = secrets.live(|v| Ok::<_, String>(key(v))).unwrap();
        tokio::time::sleep(TTL).await;
        // unreadable, then readable without a key it needs: both keep the last values
        for broken in [
            None,
            Some(r#"{"SPARKLOOP_API_KEY": "k2"}"#),
            Some("not json"),
        ] {
            source.set(broken);
            let reads = source.reads();
            assert_eq!(*live.get().await, "k1", "{broken:?}");
            assert_eq!(source.reads(), reads + 1, "{broken:?}");
            assert_eq!(*live.get().await, "k1", "{broken:?}");
            assert_eq!(
                source.reads(),
                reads + 1,
                "not read again at once: {broken:?}"
            );
            tokio::time::sleep(TTL).await;
        }
        source.set(Some(
            r#"{"SPARKLOOP_API_KEY": "k3", "LOOPS_API_KEY": "l1"}"#,
        ));
        assert_eq!(
            *live.get().await,
            "k3",
            "read again once the secret is back"
        );
    }

    #[tokio::test]
    async fn refused_new_values_keep_the_previous_live_value() {
        let source = Arc::new(MemorySecret::new(
            r#"{"SPARKLOOP_API_KEY": "good-1", "LOOPS_API_KEY": "l"}"#,
        ));
        let secrets = worker_secrets(source.clone(), SecretValues::default())
            .await
            .unwrap();
        let live = secrets
            .live(|v| {
                let k = key(v);
                if k.starts_with("good") {
                    Ok(k)
                } else {
                    Err("SPARKLOOP_API_KEY is refused".to_string())
                }
            })
            .unwrap();
        source.set(Some(
            r#"{"SPARKLOOP_API_KEY": "bad", "LOOPS_API_KEY": "l"}"#,
        ));
        tokio::time::sleep(TTL).await;
        assert_eq!(*live.get().await, "good-1");
        source.set(Some(
            r#"{"SPARKLOOP_API_KEY": "good-2", "LOOPS_API_KEY": "l"}"#,
        ));
        tokio::time::sleep(TTL).await;
        assert_eq!(*live.get().await, "good-2");
    }

    #[tokio::test]
    async fn a_key_missing_from_the_secret_and_the_environment_is_named_at_start() {
        let source = Arc::new(MemorySecret::new(r#"{"SPARKLOOP_API_KEY": "k"}"#));
        let err = worker_secrets(source.clone(), SecretValues::default())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            LoadError::Refused(SecretsError::Missing(vec![LOOPS_API_KEY]))
        );
        assert_eq!(
            err.to_string(),
            "LOOPS_API_KEY is in neither the secret (SECRETS_ARN) nor the environment"
        );
        let env = SecretValues::from_env(&[LOOPS_API_KEY, SPARKLOOP_API_KEY], |k| {
            Some(format!("env-{k}"))
        });
        let secrets = worker_secrets(source, env).await.unwrap();
        let values = secrets.values();
        assert_eq!(values.text(LOOPS_API_KEY), "env-LOOPS_API_KEY");
        assert_eq!(values.text(SPARKLOOP_API_KEY), "k", "the secret wins");
        assert_eq!(
            format!("{secrets:?}"),
            r#"Secrets::Managed(SecretValues(["LOOPS_API_KEY", "SPARKLOOP_API_KEY"]))"#
        );
    }

    #[tokio::test]
    async fn an_unreadable_secret_stops_the_start() {
        let source = Arc::new(MemorySecret::new("{}"));
        source.set(None);
        let err = worker_secrets(source, SecretValues::default())
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Read(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("cannot read the secret"),
            "{err}"
        );
    }
}
