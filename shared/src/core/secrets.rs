//! Secret settings kept in one AWS Secrets Manager secret (`SECRETS_ARN`): its SecretString is
//! a JSON object whose keys are the variable names (`{"SPARKLOOP_API_KEY": "..."}`). The pure
//! parts: which variables each function reads, reading the object, picking those variables
//! (a value in the secret over the environment's), and when to read the secret again.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::secret::Secret;

pub const LOOPS_SIGNING_SECRET: &str = "LOOPS_SIGNING_SECRET";
pub const ESPUTNIK_WEBHOOK_USER: &str = "ESPUTNIK_WEBHOOK_USER";
pub const ESPUTNIK_WEBHOOK_PASSWORD: &str = "ESPUTNIK_WEBHOOK_PASSWORD";
pub const ESPUTNIK_WEBHOOK_TOKEN: &str = "ESPUTNIK_WEBHOOK_TOKEN";
pub const SPARKLOOP_WEBHOOK_TOKEN: &str = "SPARKLOOP_WEBHOOK_TOKEN";
pub const SPARKLOOP_API_KEY: &str = "SPARKLOOP_API_KEY";
pub const LOOPS_API_KEY: &str = "LOOPS_API_KEY";
pub const ESPUTNIK_API_KEY: &str = "ESPUTNIK_API_KEY";

/// Every variable that may come from the secret.
pub const KEYS: [&str; 8] = [
    LOOPS_SIGNING_SECRET,
    ESPUTNIK_WEBHOOK_USER,
    ESPUTNIK_WEBHOOK_PASSWORD,
    ESPUTNIK_WEBHOOK_TOKEN,
    SPARKLOOP_WEBHOOK_TOKEN,
    SPARKLOOP_API_KEY,
    LOOPS_API_KEY,
    ESPUTNIK_API_KEY,
];

/// How long values read from the secret are used before it is read again
/// (`SECRETS_TTL_SECS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// After a failed read the next one is tried this soon (or after the TTL, when shorter): an
/// outage is neither hammered on every request nor waited out for a whole TTL.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// The functions that read secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    IngestLoops,
    IngestEsputnik,
    IngestSparkloop,
    Worker,
    Reconciler,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Self::IngestLoops => "ingest-loops",
            Self::IngestEsputnik => "ingest-esputnik",
            Self::IngestSparkloop => "ingest-sparkloop",
            Self::Worker => "worker",
            Self::Reconciler => "reconciler",
        }
    }
}

/// The secret variables a function reads (`keys`: only these are kept from the secret) and
/// those it cannot run without (`required`, a subset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    pub keys: Vec<&'static str>,
    pub required: Vec<&'static str>,
}

impl Needs {
    /// The part of these needs about `keys` only.
    pub fn only(&self, keys: &[&str]) -> Self {
        Self {
            keys: self
                .keys
                .iter()
                .copied()
                .filter(|k| keys.contains(k))
                .collect(),
            required: self
                .required
                .iter()
                .copied()
                .filter(|k| keys.contains(k))
                .collect(),
        }
    }
}

/// What `component` reads from the secret. eSputnik's webhook credentials are each optional
/// (a user and password, or a token: `WebhookAuth` says which combinations work). The worker
/// and the reconciler need the SparkLoop key and the key of the ESP in `esp` (`ESP`), unless
/// `dry_run` (`DRY_RUN`): with a secret configured, a key missing from it is a mistake, not a
/// request for a dry run.
pub fn needs(component: Component, esp: Option<&str>, dry_run: bool) -> Needs {
    let (keys, required) = match component {
        Component::IngestLoops => (vec![LOOPS_SIGNING_SECRET], true),
        Component::IngestSparkloop => (vec![SPARKLOOP_WEBHOOK_TOKEN], true),
        Component::IngestEsputnik => (
            vec![
                ESPUTNIK_WEBHOOK_USER,
                ESPUTNIK_WEBHOOK_PASSWORD,
                ESPUTNIK_WEBHOOK_TOKEN,
            ],
            false,
        ),
        Component::Worker | Component::Reconciler => {
            let mut keys = vec![SPARKLOOP_API_KEY];
            match esp.map(str::trim) {
                Some("loops") => keys.push(LOOPS_API_KEY),
                Some("esputnik") => keys.push(ESPUTNIK_API_KEY),
                _ => {}
            }
            (keys, !dry_run)
        }
    };
    Needs {
        required: if required { keys.clone() } else { Vec::new() },
        keys,
    }
}

/// Secret values by variable name. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct SecretValues(BTreeMap<String, Secret>);

impl SecretValues {
    /// The variables in `keys` that `env` has (blank means not set).
    pub fn from_env(keys: &[&str], env: impl Fn(&str) -> Option<String>) -> Self {
        Self(
            keys.iter()
                .filter_map(|k| Secret::from_opt(env(k)).map(|s| (k.to_string(), s)))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// The value as text, `""` when not set.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).map_or("", Secret::expose)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn values(&self) -> impl Iterator<Item = &Secret> {
        self.0.values()
    }

    /// Same names and same values (compared in constant time).
    pub fn same_as(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((ka, va), (kb, vb))| ka == kb && va.matches(vb.expose().as_bytes()))
    }
}

impl FromIterator<(String, Secret)> for SecretValues {
    fn from_iter<I: IntoIterator<Item = (String, Secret)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecretValues")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What is wrong with the secret. Messages name variables and JSON positions, never values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("the secret's value is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the secret's value is not a JSON object of variable names to strings")]
    NotAnObject,
    #[error("{0} in the secret is not a string")]
    NotAString(String),
    #[error("{} {} in neither the secret (SECRETS_ARN) nor the environment", .0.join(", "), if .0.len() == 1 { "is" } else { "are" })]
    Missing(Vec<&'static str>),
}

/// Reads the SecretString as a JSON object. A syntax error is reported by position only: the
/// parser's message could quote the text.
pub fn parse_object(
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, SecretsError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(SecretsError::NotAnObject),
        Err(e) => Err(SecretsError::NotJson {
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// The variables in `keys` that the object holds. Other keys are ignored (one secret may
/// serve every function); `null` and blank strings count as absent; any other non-string
/// value of a key in `keys` is an error naming the key.
pub fn pick(
    object: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Result<SecretValues, SecretsError> {
    let mut out = BTreeMap::new();
    for key in keys {
        match object.get(*key) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) => {
                if let Some(secret) = Secret::from_opt(Some(s.clone())) {
                    out.insert(key.to_string(), secret);
                }
            }
            Some(_) => return Err(SecretsError::NotAString(key.to_string())),
        }
    }
    Ok(SecretValues(out))
}

/// Each of `keys` from the secret, or else from the environment.
pub fn merge(from_secret: &SecretValues, env: &SecretValues, keys: &[&str]) -> SecretValues {
    keys.iter()
        .filter_map(|k| {
            from_secret
                .get(k)
                .or_else(|| env.get(k))
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

/// The required variables that `values` lacks.
pub fn missing(values: &SecretValues, required: &[&'static str]) -> Vec<&'static str> {
    required
        .iter()
        .copied()
        .filter(|k| values.get(k).is_none())
        .collect()
}

/// The values a function runs with, from the secret's text and the environment: parse, pick
/// the function's keys, prefer the secret's values, and refuse when a required one is
/// missing from both.
pub fn resolve(
    text: &str,
    needs: &Needs,
    env: &SecretValues,
) -> Result<SecretValues, SecretsError> {
    let from_secret = pick(&parse_object(text)?, &needs.keys)?;
    let values = merge(&from_secret, env, &needs.keys);
    match missing(&values, &needs.required) {
        absent if absent.is_empty() => Ok(values),
        absent => Err(SecretsError::Missing(absent)),
    }
}

/// Whether to read the secret again: the last successful read is `since_read` old, and the
/// last failed attempt after it, if any, `since_failure` old.
pub fn refresh_due(since_read: Duration, since_failure: Option<Duration>, ttl: Duration) -> bool {
    since_read >= ttl && since_failure.is_none_or(|f| f >= ttl.min(RETRY_AFTER_FAILURE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> SecretValues {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SecretValues::from_env(&KEYS, |k| map.get(k).cloned())
    }

    /// Variable names and values, as a test expects them.
    type Pairs<'a> = Vec<(&'a str, &'a str)>;

    fn owned(pairs: Pairs) -> Vec<(String, String)> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn shown(values: &SecretValues) -> Vec<(String, String)> {
        values
            .0
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }

    #[test]
    fn each_function_keeps_only_its_own_keys() {
        // (function, ESP, DRY_RUN, keys kept, keys required)
        type Case<'a> = (Component, Option<&'a str>, bool, Vec<&'a str>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                Component::IngestLoops,
                None,
                false,
                vec![LOOPS_SIGNING_SECRET],
                vec![LOOPS_SIGNING_SECRET],
            ),
            (
                Component::IngestSparkloop,
                Some("loops"),
                true,
                vec![SPARKLOOP_WEBHOOK_TOKEN],
                vec![SPARKLOOP_WEBHOOK_TOKEN],
            ),
            (
                Component::IngestEsputnik,
                None,
                false,
                vec![
                    ESPUTNIK_WEBHOOK_USER,
                    ESPUTNIK_WEBHOOK_PASSWORD,
                    ESPUTNIK_WEBHOOK_TOKEN,
                ],
                vec![],
            ),
            (
                Component::Worker,
                Some("loops"),
                false,
                vec![SPARKLOOP_API_KEY, LOOPS_API_KEY],
                vec![SPARKLOOP_API_KEY, LOOPS_API_KEY],
            ),
            (
                Component::Reconciler,
                Some("esputnik"),
                false,
                vec![SPARKLOOP_API_KEY, ESPUTNIK_API_KEY],
                vec![SPARKLOOP_API_KEY, ESPUTNIK_API_KEY],
            ),
            (
                Component::Worker,
                None,
                false,
                vec![SPARKLOOP_API_KEY],
                vec![SPARKLOOP_API_KEY],
            ),
            (
                Component::Worker,
                Some("loops"),
                true,
                vec![SPARKLOOP_API_KEY, LOOPS_API_KEY],
                vec![],
            ),
        ];
        for (component, esp, dry, keys, required) in cases {
            let n = needs(component, esp, dry);
            assert_eq!(n.keys, keys, "{component:?} {esp:?} {dry}");
            assert_eq!(n.required, required, "{component:?} {esp:?} {dry}");
        }
        let worker = needs(Component::Worker, Some("loops"), false);
        assert_eq!(
            worker.only(&[LOOPS_API_KEY]),
            Needs {
                keys: vec![LOOPS_API_KEY],
                required: vec![LOOPS_API_KEY]
            }
        );
    }

    #[test]
    fn the_secret_must_be_a_json_object_and_errors_never_quote_it() {
        let cases: Vec<(&str, Result<usize, SecretsError>)> = vec![
            (r#"{}"#, Ok(0)),
            (r#"{"A": "x", "B": 1}"#, Ok(2)),
            (
                r#"hunter2"#,
                Err(SecretsError::NotJson { line: 1, column: 1 }),
            ),
            (
                "{\"A\": \"hunter2\"",
                Err(SecretsError::NotJson {
                    line: 1,
                    column: 15,
                }),
            ),
            (r#""hunter2""#, Err(SecretsError::NotAnObject)),
            (r#"["hunter2"]"#, Err(SecretsError::NotAnObject)),
            ("", Err(SecretsError::NotJson { line: 1, column: 0 })),
        ];
        for (text, want) in cases {
            let got = parse_object(text).map(|m| m.len());
            assert_eq!(got, want, "{text:?}");
            if let Err(e) = got {
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
        }
    }

    #[test]
    fn picking_keeps_the_asked_keys_that_hold_strings() {
        let object = parse_object(
            r#"{"LOOPS_SIGNING_SECRET": " whsec_x ", "SPARKLOOP_API_KEY": "k",
                "SPARKLOOP_WEBHOOK_TOKEN": "", "LOOPS_API_KEY": null, "OTHER": 5,
                "ESPUTNIK_API_KEY": 42}"#,
        )
        .unwrap();
        let cases: Vec<(Vec<&str>, Result<Pairs, SecretsError>)> = vec![
            (
                vec![LOOPS_SIGNING_SECRET],
                Ok(vec![(LOOPS_SIGNING_SECRET, "whsec_x")]),
            ),
            (
                vec![SPARKLOOP_API_KEY, LOOPS_API_KEY, SPARKLOOP_WEBHOOK_TOKEN],
                Ok(vec![(SPARKLOOP_API_KEY, "k")]),
            ),
            (vec![ESPUTNIK_WEBHOOK_TOKEN], Ok(vec![])),
            (
                vec![SPARKLOOP_API_KEY, ESPUTNIK_API_KEY],
                Err(SecretsError::NotAString(ESPUTNIK_API_KEY.into())),
            ),
        ];
        for (keys, want) in cases {
            let got = pick(&object, &keys).map(|v| shown(&v));
            let want = want.map(owned);
            assert_eq!(got, want, "{keys:?}");
        }
    }

    #[test]
    fn a_value_in_the_secret_wins_over_the_environment() {
        let needs = needs(Component::Worker, Some("loops"), false);
        // (the secret's text, the environment, the values or the error)
        let cases: Vec<(&str, Pairs, Result<Pairs, SecretsError>)> = vec![
            (
                r#"{"SPARKLOOP_API_KEY": "from-secret", "LOOPS_API_KEY": "l"}"#,
                vec![("SPARKLOOP_API_KEY", "from-env")],
                Ok(vec![
                    ("LOOPS_API_KEY", "l"),
                    ("SPARKLOOP_API_KEY", "from-secret"),
                ]),
            ),
            (
                r#"{"SPARKLOOP_API_KEY": "s"}"#,
                vec![("LOOPS_API_KEY", "from-env"), ("LOOPS_SIGNING_SECRET", "w")],
                Ok(vec![
                    ("LOOPS_API_KEY", "from-env"),
                    ("SPARKLOOP_API_KEY", "s"),
                ]),
            ),
            (
                r#"{"SPARKLOOP_API_KEY": "s", "ESPUTNIK_API_KEY": "e"}"#,
                vec![],
                Err(SecretsError::Missing(vec![LOOPS_API_KEY])),
            ),
            (
                r#"{"SPARKLOOP_API_KEY": " "}"#,
                vec![("SPARKLOOP_API_KEY", " ")],
                Err(SecretsError::Missing(vec![
                    SPARKLOOP_API_KEY,
                    LOOPS_API_KEY,
                ])),
            ),
        ];
        for (text, env_pairs, want) in cases {
            let got = resolve(text, &needs, &env(&env_pairs)).map(|v| shown(&v));
            let want = want.map(owned);
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn a_missing_key_is_named() {
        assert_eq!(
            SecretsError::Missing(vec![LOOPS_SIGNING_SECRET]).to_string(),
            "LOOPS_SIGNING_SECRET is in neither the secret (SECRETS_ARN) nor the environment"
        );
        assert_eq!(
            SecretsError::Missing(vec![SPARKLOOP_API_KEY, LOOPS_API_KEY]).to_string(),
            "SPARKLOOP_API_KEY, LOOPS_API_KEY are in neither the secret (SECRETS_ARN) nor the environment"
        );
        assert_eq!(
            SecretsError::NotAString("LOOPS_API_KEY".into()).to_string(),
            "LOOPS_API_KEY in the secret is not a string"
        );
    }

    #[test]
    fn debug_shows_names_never_values() {
        let v = env(&[("SPARKLOOP_API_KEY", "hunter2")]);
        assert_eq!(format!("{v:?}"), r#"SecretValues(["SPARKLOOP_API_KEY"])"#);
    }

    #[test]
    fn same_as_compares_names_and_values() {
        let a = env(&[("SPARKLOOP_API_KEY", "k1")]);
        assert!(a.same_as(&env(&[("SPARKLOOP_API_KEY", "k1")])));
        assert!(!a.same_as(&env(&[("SPARKLOOP_API_KEY", "k2")])));
        assert!(!a.same_as(&env(&[("LOOPS_API_KEY", "k1")])));
        assert!(!a.same_as(&env(&[
            ("SPARKLOOP_API_KEY", "k1"),
            ("LOOPS_API_KEY", "k1")
        ])));
        assert!(!a.same_as(&SecretValues::default()));
    }

    #[test]
    fn the_secret_is_read_again_once_older_than_the_ttl() {
        let s = Duration::from_secs;
        // (since the last read, since a failed attempt after it, ttl, due)
        let cases = [
            (s(0), None, s(300), false),
            (s(299), None, s(300), false),
            (s(300), None, s(300), true),
            (s(301), None, s(300), true),
            (s(1), None, s(1), true),
            // after a failure: again 30 s later, or after the TTL when it is shorter
            (s(400), Some(s(10)), s(300), false),
            (s(400), Some(s(29)), s(300), false),
            (s(400), Some(s(30)), s(300), true),
            (s(3), Some(Duration::from_millis(500)), s(1), false),
            (s(3), Some(s(1)), s(1), true),
        ];
        for (since_read, since_failure, ttl, due) in cases {
            assert_eq!(
                refresh_due(since_read, since_failure, ttl),
                due,
                "{since_read:?} {since_failure:?} {ttl:?}"
            );
        }
    }
}
