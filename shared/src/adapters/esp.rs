//! ESP contact clients (SparkLoop -> ESP): Loops and eSputnik, built like the SparkLoop
//! client (timeouts, rate limit, the shared classification), and a dry-run stand-in.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{json, Map, Value};

use crate::adapters::sparkloop::{
    api_base, http_client, read_json, read_ok, send, send_reading, ClientSettings, KeyNotSet,
};
use crate::config::{ConfigError, EspChoice, EspConfig};
use crate::core::lifecycle::EspCall;
use crate::core::mask::mask_email;
use crate::core::outbound::{CallOutcome, Goal, Missing};
use crate::core::reconcile::EspContact;
use crate::core::secret::Secret;
use crate::core::secrets::{ESPUTNIK_API_KEY, LOOPS_API_KEY};
use crate::core::{Properties, Property};
use crate::ports::{AccessCheck, EspApi};
use crate::secrets::{Live, Secrets};
use strum::IntoEnumIterator;

/// GETs JSON, classifying failures like every other call. A 404 is a failure here: both
/// ESPs answer a search with no match as 200 and an empty list, so a 404 is a wrong URL, and
/// reading it as "absent" would make the reconciler unsubscribe every referral.
async fn fetch_json(req: reqwest::RequestBuilder) -> Result<Value, CallOutcome> {
    let text = read_ok(req).await?;
    serde_json::from_str(&text).map_err(|e| CallOutcome::Permanent {
        status: 200,
        body: format!("unreadable answer: {e}"),
    })
}

/// What the Loops docs print as the API's base URL, or part of it.
pub const LOOPS_URL_SUFFIXES: &[&str] = &["/api/v1", "/api", "/v1"];
/// What the eSputnik docs print (`https://esputnik.com/api/`), or part of it.
pub const ESPUTNIK_URL_SUFFIXES: &[&str] = &["/api/v1", "/api", "/v1"];

pub const DEFAULT_LOOPS_URL: &str = "https://app.loops.so";
pub const DEFAULT_ESPUTNIK_URL: &str = "https://esputnik.com";

/// Logical property -> the ESP's property name. Defaults below; `ESP_PROPERTY_NAMES` (JSON)
/// renames them, and an empty name turns one off.
#[derive(Debug, Clone)]
pub struct PropertyNames(BTreeMap<String, String>);

impl Default for PropertyNames {
    fn default() -> Self {
        Self(
            Property::iter()
                .map(|p| (p.as_str().to_string(), p.default_esp_name().to_string()))
                .collect(),
        )
    }
}

impl PropertyNames {
    /// `ESP_PROPERTY_NAMES` (a JSON object, logical name -> the ESP's name) over the defaults.
    pub fn from_json(text: Option<&str>) -> Result<Self, ConfigError> {
        const NAME: &str = "ESP_PROPERTY_NAMES";
        let mut names = Self::default();
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            let overrides: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
                ConfigError::unshown(NAME, format!("is not a JSON object of strings: {e}"))
            })?;
            for (k, v) in overrides {
                if !names.0.contains_key(&k) {
                    return Err(ConfigError::unshown(
                        NAME,
                        format!(
                            "names an unknown property {k:?} (known: {})",
                            names.0.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                names.0.insert(k, v);
            }
        }
        Ok(names)
    }

    /// The ESP-named properties, skipping those turned off.
    pub fn map(&self, props: &Properties) -> Vec<(String, Value)> {
        props
            .iter()
            .filter_map(|(k, v)| {
                self.0
                    .get(k.as_str())
                    .filter(|n| !n.is_empty())
                    .map(|n| (n.clone(), v.clone()))
            })
            .collect()
    }
}

fn limiter(per_sec: u32) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(
        NonZeroU32::new(per_sec.max(1)).expect("max(1) is non-zero"),
    ))
}

pub struct LoopsClient {
    http: reqwest::Client,
    base: String,
    /// Read per call: a rotation in the secret reaches it without a restart.
    key: Live<Secret>,
    names: PropertyNames,
    limiter: DefaultDirectRateLimiter,
}

impl LoopsClient {
    /// Loops allows 10 requests per second per team.
    pub fn new(
        base_url: &str,
        key: Secret,
        names: PropertyNames,
        settings: &ClientSettings,
        per_sec: u32,
    ) -> Self {
        Self::with_key(base_url, Live::fixed(key), names, settings, per_sec)
    }

    /// A client whose key follows the secret settings (see `crate::secrets`).
    pub fn with_key(
        base_url: &str,
        key: Live<Secret>,
        names: PropertyNames,
        settings: &ClientSettings,
        per_sec: u32,
    ) -> Self {
        Self {
            http: http_client(settings),
            base: api_base(base_url, LOOPS_URL_SUFFIXES),
            key,
            names,
            limiter: limiter(per_sec),
        }
    }

    /// `PUT /api/v1/contacts/update` is an upsert, so every call is safe to repeat. It never
    /// sends `subscribed: true`, which would re-subscribe someone who left.
    pub fn body(&self, call: &EspCall) -> Value {
        let mut body = Map::new();
        body.insert("email".into(), json!(call.email()));
        let props = match call {
            EspCall::Upsert {
                first_name,
                source,
                properties,
                ..
            } => {
                if let Some(f) = first_name {
                    body.insert("firstName".into(), json!(f));
                }
                if let Some(s) = source {
                    body.insert("source".into(), json!(s));
                }
                properties
            }
            EspCall::Unsubscribe { properties, .. } => {
                body.insert("subscribed".into(), json!(false));
                properties
            }
            EspCall::Properties { properties, .. } => properties,
        };
        for (k, v) in self.names.map(props) {
            body.insert(k, v);
        }
        Value::Object(body)
    }
}

#[async_trait]
impl EspApi for LoopsClient {
    fn name(&self) -> &'static str {
        "loops"
    }

    async fn call(&self, call: &EspCall) -> CallOutcome {
        self.limiter.until_ready().await;
        let body = self.body(call);
        let key = self.key.get().await;
        let req = self
            .http
            .put(format!("{}/api/v1/contacts/update", self.base))
            .bearer_auth(key.expose())
            .json(&body);
        // An upsert never answers "already": Loops documents 409 as a conflict (an email or
        // userId another contact holds), a failure to park, not a state that holds.
        match send(req, Goal::Value, Missing::Failure).await {
            // A 400 naming a property means it does not exist in Loops yet: say which to create.
            CallOutcome::Permanent {
                status: 400,
                body: text,
            } if text.to_ascii_lowercase().contains("propert") => {
                let sent: Vec<&str> = body
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .map(String::as_str)
                            .filter(|k| !["email", "firstName", "source", "subscribed"].contains(k))
                            .collect()
                    })
                    .unwrap_or_default();
                CallOutcome::Permanent {
                    status: 400,
                    body: format!("{text} — create these contact properties in Loops (Settings → API → Contact properties) or rename them with ESP_PROPERTY_NAMES: {}", sent.join(", ")),
                }
            }
            other => other,
        }
    }

    /// `GET /api/v1/contacts/find?email=`: `[]` when absent, else the contact's `subscribed`.
    async fn lookup(&self, email: &str) -> Result<EspContact, CallOutcome> {
        self.limiter.until_ready().await;
        let key = self.key.get().await;
        let req = self
            .http
            .get(format!("{}/api/v1/contacts/find", self.base))
            .query(&[("email", email)])
            .bearer_auth(key.expose());
        let v = fetch_json(req).await?;
        Ok(match v.as_array().and_then(|a| a.first()) {
            None => EspContact::Absent,
            Some(c) if c.get("subscribed").and_then(Value::as_bool) == Some(false) => {
                EspContact::Unsubscribed
            }
            Some(_) => EspContact::Subscribed,
        })
    }

    fn lookup_url(&self) -> Option<String> {
        Some(format!("{}/api/v1/contacts/find", self.base))
    }

    /// `GET /api/v1/api-key`: `{"success": true, "teamName": ...}` for a valid key.
    async fn check_access(&self) -> Option<AccessCheck> {
        self.limiter.until_ready().await;
        let url = format!("{}/api/v1/api-key", self.base);
        let key = self.key.get().await;
        let req = self.http.get(&url).bearer_auth(key.expose());
        let outcome = match read_json(req).await {
            Ok(v) if v.get("success").and_then(Value::as_bool) == Some(false) => {
                Err(CallOutcome::Permanent {
                    status: 200,
                    body: v.to_string(),
                })
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        Some(AccessCheck { url, outcome })
    }
}

pub struct EsputnikClient {
    http: reqwest::Client,
    base: String,
    /// Read per call: a rotation in the secret reaches it without a restart.
    key: Live<Secret>,
    /// Logical property -> eSputnik additional-field id (`ESPUTNIK_FIELD_IDS`).
    field_ids: BTreeMap<String, i64>,
    limiter: DefaultDirectRateLimiter,
}

impl EsputnikClient {
    pub fn new(
        base_url: &str,
        key: Secret,
        field_ids: BTreeMap<String, i64>,
        settings: &ClientSettings,
        per_sec: u32,
    ) -> Self {
        Self::with_key(base_url, Live::fixed(key), field_ids, settings, per_sec)
    }

    /// A client whose key follows the secret settings (see `crate::secrets`).
    pub fn with_key(
        base_url: &str,
        key: Live<Secret>,
        field_ids: BTreeMap<String, i64>,
        settings: &ClientSettings,
        per_sec: u32,
    ) -> Self {
        Self {
            http: http_client(settings),
            base: api_base(base_url, ESPUTNIK_URL_SUFFIXES),
            key,
            field_ids,
            limiter: limiter(per_sec),
        }
    }

    fn fields(&self, props: &Properties) -> Vec<Value> {
        props
            .iter()
            .filter_map(|(k, v)| {
                let id = self.field_ids.get(k.as_str())?;
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some(json!({"id": id, "value": text}))
            })
            .collect()
    }

    /// `POST /api/v1/contacts` with `dedupeOn: "email"`: adds the contact, or updates the one
    /// holding that address. The single-contact `POST /api/v1/contact` is documented (in its
    /// older form) to always create a new contact, which would duplicate a subscriber on every
    /// update; the bulk form names the match. Only the fields sent are updated.
    pub fn upsert_body(&self, email: &str, first_name: Option<&str>, props: &Properties) -> Value {
        let ids: Vec<i64> = props
            .keys()
            .filter_map(|k| self.field_ids.get(k.as_str()).copied())
            .collect();
        json!({
            "contacts": [self.contact_body(email, first_name, props)],
            "dedupeOn": "email",
            "customFieldsIDs": ids,
        })
    }

    /// One contact as the contacts API takes it (the email channel and additional fields).
    pub fn contact_body(&self, email: &str, first_name: Option<&str>, props: &Properties) -> Value {
        let mut body =
            json!({"channels": [{"type": "email", "value": email}], "fields": self.fields(props)});
        if let Some(f) = first_name {
            body["firstName"] = json!(f);
        }
        body
    }

    async fn post(&self, path: &str, body: &Value) -> CallOutcome {
        self.limiter.until_ready().await;
        let key = self.key.get().await;
        let req = self
            .http
            .post(format!("{}/api/v1/{path}", self.base))
            .basic_auth("sparkbridge", Some(key.expose()))
            .json(body);
        match send_reading(req, Goal::State, Missing::Failure).await {
            // eSputnik refuses an identical request made moments ago: it was applied.
            (CallOutcome::Permanent { body, .. }, _) if body.contains("Duplicated request") => {
                CallOutcome::AlreadyDone
            }
            (CallOutcome::Done, text) => refused_in_import(&text).unwrap_or(CallOutcome::Done),
            (other, _) => other,
        }
    }
}

#[async_trait]
impl EspApi for EsputnikClient {
    fn name(&self) -> &'static str {
        "esputnik"
    }

    async fn call(&self, call: &EspCall) -> CallOutcome {
        match call {
            EspCall::Upsert {
                email,
                first_name,
                properties,
                source,
            } => {
                let mut props = properties.clone();
                if let Some(s) = source {
                    props.entry(Property::Source).or_insert_with(|| json!(s));
                }
                self.post(
                    "contacts",
                    &self.upsert_body(email, first_name.as_deref(), &props),
                )
                .await
            }
            EspCall::Unsubscribe { email, properties } => {
                let outcome = self
                    .post("emails/unsubscribed/add", &json!({"emails": [email]}))
                    .await;
                if !outcome.is_success() || self.fields(properties).is_empty() {
                    return outcome;
                }
                self.post("contacts", &self.upsert_body(email, None, properties))
                    .await
            }
            EspCall::Properties { email, properties } => {
                if self.fields(properties).is_empty() {
                    tracing::info!(email = %mask_email(email), "no ESPUTNIK_FIELD_IDS mapping for these properties; nothing to update");
                    return CallOutcome::Done;
                }
                self.post("contacts", &self.upsert_body(email, None, properties))
                    .await
            }
        }
    }

    /// `GET /api/v1/contacts?email=`: no contact is absent. eSputnik's search does not
    /// document a subscription flag; an email channel marked `unsubscribed` (or a contact
    /// whose email channel is missing) is read as unsubscribed, otherwise subscribed.
    async fn lookup(&self, email: &str) -> Result<EspContact, CallOutcome> {
        self.limiter.until_ready().await;
        let key = self.key.get().await;
        let req = self
            .http
            .get(format!("{}/api/v1/contacts", self.base))
            .query(&[("email", email), ("startindex", "1"), ("maxrows", "1")])
            .basic_auth("sparkbridge", Some(key.expose()));
        let v = fetch_json(req).await?;
        let Some(contact) = v.as_array().and_then(|a| a.first()) else {
            return Ok(EspContact::Absent);
        };
        let channel = contact
            .get("channels")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("email"))
            });
        Ok(match channel {
            None => EspContact::Unsubscribed,
            Some(c)
                if c.get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("unsubscribed")) =>
            {
                EspContact::Unsubscribed
            }
            Some(_) => EspContact::Subscribed,
        })
    }

    fn lookup_url(&self) -> Option<String> {
        Some(format!("{}/api/v1/contacts", self.base))
    }

    /// `GET /api/v1/account/info`, with the Basic auth every call uses.
    async fn check_access(&self) -> Option<AccessCheck> {
        self.limiter.until_ready().await;
        let url = format!("{}/api/v1/account/info", self.base);
        let key = self.key.get().await;
        let req = self
            .http
            .get(&url)
            .basic_auth("sparkbridge", Some(key.expose()));
        let outcome = read_json(req).await.map(|_| ());
        Some(AccessCheck { url, outcome })
    }
}

/// The bulk contacts import answers 200 with the contacts it refused (`failedContacts`): a
/// refused contact was not added, so the call failed (parked with eSputnik's reasons) and is
/// never recorded as an add the reconciler would later read as "vanished".
fn refused_in_import(text: &str) -> Option<CallOutcome> {
    let answer: Value = serde_json::from_str(text).ok()?;
    let failed = answer.get("failedContacts")?.as_array()?;
    (!failed.is_empty()).then(|| CallOutcome::Permanent {
        status: 200,
        body: format!(
            "eSputnik refused the contact: {}",
            crate::core::envelope::truncate(&Value::Array(failed.clone()).to_string(), 1_000)
        ),
    })
}

/// Used when no ESP is configured, its key is missing, or `DRY_RUN=true`.
pub struct DryRunEsp(pub &'static str);

#[async_trait]
impl EspApi for DryRunEsp {
    fn name(&self) -> &'static str {
        self.0
    }

    async fn call(&self, call: &EspCall) -> CallOutcome {
        // The record's line says `esp.<call>=dry_run`: this detail only when asked for.
        tracing::debug!(esp = self.0, call = call.name(), email = %mask_email(call.email()), "dry run: would call the ESP");
        CallOutcome::DryRun
    }

    async fn lookup(&self, _email: &str) -> Result<EspContact, CallOutcome> {
        Ok(EspContact::Unknown)
    }
}

/// The ESP client `cfg` asks for (`ESP`: `loops` | `esputnik`), with its API key from
/// `secrets` (read per call, so a rotation in the secret needs no restart). Without an ESP,
/// without its key, or with `DRY_RUN`, calls are only logged.
pub fn from_secrets(cfg: &EspConfig, secrets: &Secrets) -> Result<Arc<dyn EspApi>, ConfigError> {
    let key = |name: &'static str| -> Result<Option<Live<Secret>>, ConfigError> {
        if cfg.dry_run || secrets.values().get(name).is_none() {
            return Ok(None);
        }
        secrets
            .live(move |v| v.get(name).cloned().ok_or(KeyNotSet(name)))
            .map(Some)
            .map_err(|KeyNotSet(name)| ConfigError::Missing { name })
    };
    match &cfg.esp {
        EspChoice::None => {
            tracing::warn!("ESP is not set: SparkLoop -> ESP calls run in dry-run (set ESP=loops or ESP=esputnik)");
            Ok(Arc::new(DryRunEsp("none")))
        }
        EspChoice::Loops {
            api_url,
            names,
            rate_per_sec,
        } => match key(LOOPS_API_KEY)? {
            Some(key) => Ok(Arc::new(LoopsClient::with_key(
                api_url,
                key,
                names.clone(),
                &cfg.settings,
                rate_per_sec.clone()?,
            ))),
            None => {
                tracing::warn!(
                    "LOOPS_API_KEY is not set or DRY_RUN is on: Loops calls run in dry-run"
                );
                Ok(Arc::new(DryRunEsp("loops")))
            }
        },
        EspChoice::Esputnik {
            api_url,
            field_ids,
            rate_per_sec,
        } => {
            match key(ESPUTNIK_API_KEY)? {
                Some(key) => Ok(Arc::new(EsputnikClient::with_key(
                    api_url,
                    key,
                    field_ids.clone(),
                    &cfg.settings,
                    rate_per_sec.clone()?,
                ))),
                None => {
                    tracing::warn!("ESPUTNIK_API_KEY is not set or DRY_RUN is on: eSputnik calls run in dry-run");
                    Ok(Arc::new(DryRunEsp("esputnik")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Properties {
        BTreeMap::from([
            (Property::Status, json!("pending")),
            (Property::Referrals, json!(3)),
        ])
    }

    #[test]
    fn loops_bodies() {
        let names =
            PropertyNames::from_json(Some(r#"{"referrals":"rhTotRef","coupon":""}"#)).unwrap();
        let c = LoopsClient::new(
            "https://app.loops.so/",
            Secret::new("k"),
            names,
            &ClientSettings::default(),
            10,
        );
        let up = c.body(&EspCall::Upsert {
            email: "a@b.c".into(),
            first_name: Some("Ann".into()),
            source: Some("sparkloop-upscribe".into()),
            properties: props(),
        });
        assert_eq!(
            up,
            json!({"email":"a@b.c","firstName":"Ann","source":"sparkloop-upscribe","sparkloopStatus":"pending","rhTotRef":3})
        );
        let un = c.body(&EspCall::Unsubscribe {
            email: "a@b.c".into(),
            properties: BTreeMap::new(),
        });
        assert_eq!(un, json!({"email":"a@b.c","subscribed":false}));
        let pr = c.body(&EspCall::Properties {
            email: "a@b.c".into(),
            properties: BTreeMap::from([(Property::Coupon, json!("X"))]),
        });
        assert_eq!(
            pr,
            json!({"email":"a@b.c"}),
            "an empty name turns a property off"
        );
        assert!(PropertyNames::from_json(Some(r#"{"nope":"x"}"#)).is_err());
        assert!(PropertyNames::from_json(Some("[]")).is_err());
    }

    #[test]
    fn a_contact_refused_inside_the_import_is_a_failure() {
        let refused = r#"{"asyncSessionId":"s1","failedContacts":[{"channels":[{"value":"a@b.c"}],"errors":["bad field"]}]}"#;
        match refused_in_import(refused) {
            Some(CallOutcome::Permanent { status, body }) => {
                assert_eq!(status, 200);
                assert!(body.contains("bad field"), "{body}");
            }
            other => panic!("{other:?}"),
        }
        for accepted in [
            r#"{"asyncSessionId":"s1","failedContacts":[]}"#,
            r#"{"asyncSessionId":"s1"}"#,
            r#"{"id":1}"#,
            "",
            "not json",
        ] {
            assert_eq!(refused_in_import(accepted), None, "{accepted}");
        }
    }

    #[test]
    fn esputnik_bodies() {
        let c = EsputnikClient::new(
            "https://esputnik.com",
            Secret::new("k"),
            BTreeMap::from([("status".to_string(), 101)]),
            &ClientSettings::default(),
            5,
        );
        let b = c.upsert_body("a@b.c", Some("Ann"), &props());
        assert_eq!(
            b,
            json!({"contacts":[{"channels":[{"type":"email","value":"a@b.c"}],"fields":[{"id":101,"value":"pending"}],"firstName":"Ann"}],
                   "dedupeOn":"email","customFieldsIDs":[101]}),
            "contacts are matched on their address, never created twice"
        );
    }
}
