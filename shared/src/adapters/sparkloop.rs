//! SparkLoop API v2 over reqwest (rustls), and a dry-run stand-in that only logs.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;

use crate::config::{ConfigError, SparkLoopConfig};
use crate::core::mask::mask_email;
use crate::core::outbound::{
    classify, parse_retry_after, redirect_refused, CallOutcome, Goal, Missing, SparkLoopCall,
};
use crate::core::reconcile::{parse_referral_page, ReferralPage};
use crate::core::secret::Secret;
use crate::core::secrets::SPARKLOOP_API_KEY;
use crate::ports::{AccessCheck, SparkLoopApi};
use crate::secrets::{Live, Secrets};

pub const DEFAULT_API_URL: &str = "https://api.sparkloop.app";

/// Everything but RFC 3986 unreserved characters is encoded in a path segment, so an
/// address like `a+b@x.io` becomes `a%2Bb%40x.io` and cannot be read back as a space.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode_identifier(id: &str) -> String {
    // "." and ".." would be read as path steps by URL parsing: encode their dots too.
    if id.chars().all(|c| c == '.') {
        return id.replace('.', "%2E");
    }
    utf8_percent_encode(id, PATH_SEGMENT).to_string()
}

/// Timeouts and rate limit for an outbound API client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub rate_per_min: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            rate_per_min: 60,
        }
    }
}

/// Redirects are never followed: reqwest would forward the API key to whatever host a 3xx
/// names, and turn a POST into a GET. A 3xx is parked with its `Location` instead.
pub fn http_client(settings: &ClientSettings) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.total_timeout)
        .user_agent(concat!("sparkbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS client with static settings builds")
}

/// The part of a configured API URL before the versioned path, which the clients append
/// themselves. The providers' docs print their base URLs with or without the API prefix
/// (`https://app.loops.so/api`, `https://esputnik.com/api/`, `https://api.sparkloop.app/v2`);
/// kept as given, each would be called as `.../api/api/v1/...` and answer 404 on every call.
/// `suffixes` are the prefixes a provider's docs print, longest first.
pub fn api_base(url: &str, suffixes: &[&str]) -> String {
    let url = url.trim_end_matches('/');
    suffixes
        .iter()
        .find_map(|s| url.strip_suffix(s))
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string()
}

/// SparkLoop's docs print `https://api.sparkloop.app/v2`; `/api/v2` and `/api` are common
/// slips when copying a URL from other providers, accepted the same way.
pub const SPARKLOOP_URL_SUFFIXES: &[&str] = &["/api/v2", "/v2", "/api"];

pub struct SparkLoopClient {
    http: reqwest::Client,
    base: String,
    /// Read per call: a rotation in the secret reaches it without a restart.
    key: Live<Secret>,
    limiter: DefaultDirectRateLimiter,
}

impl SparkLoopClient {
    pub fn new(base_url: &str, key: Secret, settings: &ClientSettings) -> Self {
        Self::with_key(base_url, Live::fixed(key), settings)
    }

    /// A client whose key follows the secret settings (see `crate::secrets`).
    pub fn with_key(base_url: &str, key: Live<Secret>, settings: &ClientSettings) -> Self {
        let per_min = NonZeroU32::new(settings.rate_per_min.max(1)).expect("max(1) is non-zero");
        Self {
            http: http_client(settings),
            base: api_base(base_url, SPARKLOOP_URL_SUFFIXES),
            key,
            limiter: RateLimiter::direct(Quota::per_minute(per_min)),
        }
    }

    fn request(
        &self,
        target: &str,
        call: &SparkLoopCall,
    ) -> (Method, String, Option<serde_json::Value>) {
        let id = encode_identifier(target);
        let base = &self.base;
        match call {
            SparkLoopCall::Unsubscribe => (
                Method::PUT,
                format!("{base}/v2/subscribers/{id}/unsubscribe"),
                None,
            ),
            SparkLoopCall::Reject => (
                Method::PUT,
                format!("{base}/v2/subscribers/{id}/reject"),
                None,
            ),
            SparkLoopCall::Confirm => (
                Method::PUT,
                format!("{base}/v2/subscribers/{id}"),
                Some(serde_json::json!({"status": "confirmed"})),
            ),
            SparkLoopCall::ChangeEmail { new_email } => (
                Method::PUT,
                format!("{base}/v2/subscribers/{id}"),
                Some(serde_json::json!({"email": new_email})),
            ),
        }
    }
}

#[async_trait]
impl SparkLoopApi for SparkLoopClient {
    async fn call(&self, target: &str, call: &SparkLoopCall) -> CallOutcome {
        self.limiter.until_ready().await;
        let (method, url, body) = self.request(target, call);
        let key = self.key.get().await;
        let mut req = self
            .http
            .request(method, url)
            .header("X-Api-Key", key.expose());
        req = match body {
            Some(b) => req.json(&b),
            None => req.header("content-type", "application/json; charset=utf-8"),
        };
        send(req, call.goal(), Missing::NotASubscriber).await
    }

    async fn referrals(&self, page: u32, per_page: u32) -> Result<ReferralPage, CallOutcome> {
        self.limiter.until_ready().await;
        let url = format!(
            "{}/v2/subscribers?type=referrals&page={page}&per_page={per_page}",
            self.base
        );
        let key = self.key.get().await;
        let req = self.http.get(url).header("X-Api-Key", key.expose());
        let text = read_ok(req).await?;
        serde_json::from_str(&text)
            .map(|v| parse_referral_page(&v))
            .map_err(|e| CallOutcome::Permanent {
                status: 200,
                body: format!("unreadable referral list: {e}"),
            })
    }

    fn referrals_url(&self) -> Option<String> {
        Some(format!("{}/v2/subscribers", self.base))
    }

    /// `GET /v2/subscribers?type=all&page=1&per_page=1`: a list of one at most.
    async fn check_access(&self) -> Option<AccessCheck> {
        self.limiter.until_ready().await;
        let url = format!("{}/v2/subscribers?type=all&page=1&per_page=1", self.base);
        let key = self.key.get().await;
        let req = self.http.get(&url).header("X-Api-Key", key.expose());
        let outcome = read_json(req).await.map(|_| ());
        Some(AccessCheck { url, outcome })
    }
}

/// [`read_ok`], then the body as JSON: a 200 that is not JSON (a web page where the API was
/// expected) is a permanent failure.
pub async fn read_json(req: reqwest::RequestBuilder) -> Result<serde_json::Value, CallOutcome> {
    let text = read_ok(req).await?;
    serde_json::from_str(&text).map_err(|e| CallOutcome::Permanent {
        status: 200,
        body: format!("unreadable answer: {e}"),
    })
}

/// Sends a read and returns its body when 2xx; any other answer (a 404 included: a list or
/// lookup route that answers 404 is a wrong URL) is the classified failure.
pub async fn read_ok(req: reqwest::RequestBuilder) -> Result<String, CallOutcome> {
    let resp = req.send().await.map_err(transport_failure)?;
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        return Err(redirect_refused(status, location(&resp)));
    }
    let retry_after = retry_after(&resp);
    let text = resp.text().await.unwrap_or_default();
    match classify(Goal::State, Missing::Failure, status, &text, retry_after) {
        CallOutcome::Done => Ok(text),
        other => Err(other),
    }
}

fn location(resp: &reqwest::Response) -> Option<&str> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
}

fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    parse_retry_after(
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    )
}

fn transport_failure(e: reqwest::Error) -> CallOutcome {
    let reason = if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        format!("transport error: {e}")
    };
    CallOutcome::Retry {
        reason,
        retry_after: None,
    }
}

/// Sends and classifies: the one path every outbound HTTP call shares.
pub async fn send(req: reqwest::RequestBuilder, goal: Goal, missing: Missing) -> CallOutcome {
    send_reading(req, goal, missing).await.0
}

/// [`send`], also handing back the answer's text, for calls whose 2xx body can still say
/// something failed.
pub async fn send_reading(
    req: reqwest::RequestBuilder,
    goal: Goal,
    missing: Missing,
) -> (CallOutcome, String) {
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return (transport_failure(e), String::new()),
    };
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        return (redirect_refused(status, location(&resp)), String::new());
    }
    let retry_after = retry_after(&resp);
    let text = resp.text().await.unwrap_or_default();
    (classify(goal, missing, status, &text, retry_after), text)
}

/// Used without `SPARKLOOP_API_KEY` or with `DRY_RUN=true`: logs each call it would make.
pub struct DryRunSparkLoop;

#[async_trait]
impl SparkLoopApi for DryRunSparkLoop {
    async fn call(&self, target: &str, call: &SparkLoopCall) -> CallOutcome {
        let shown = if target.contains('@') {
            mask_email(target)
        } else {
            target.to_string()
        };
        // The record's line says `sparkloop.<call>=dry_run`: this detail only when asked for.
        tracing::debug!(target_subscriber = %shown, call = call.name(), "dry run: would call SparkLoop");
        CallOutcome::DryRun
    }

    async fn referrals(&self, _page: u32, _per_page: u32) -> Result<ReferralPage, CallOutcome> {
        tracing::info!("dry run: no SPARKLOOP_API_KEY, so no referrals to list");
        Ok(ReferralPage::default())
    }
}

/// This instance's part of the stack's SparkLoop budget. `total` (`SPARKLOOP_RATE_PER_MIN`)
/// is shared by up to `worker_instances` (`WORKER_MAX_CONCURRENCY`) worker instances and the
/// reconciler, one share each, so together they never exceed it. Unset (a local run), one
/// process has it all. At least 1 a minute, so a small budget still makes progress.
pub fn rate_share(total: u32, worker_instances: Option<u32>) -> u32 {
    match worker_instances {
        None => total.max(1),
        Some(n) => (total / n.saturating_add(1)).max(1),
    }
}

/// A secret API key is not set where it is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not set")]
pub struct KeyNotSet(pub &'static str);

/// The SparkLoop client `cfg` asks for, with `SPARKLOOP_API_KEY` from `secrets` (read per
/// call, so a rotation in the secret needs no restart). Without a key, or with `DRY_RUN`,
/// calls are only logged, and `cfg.client` is not used.
pub fn from_secrets(
    cfg: &SparkLoopConfig,
    secrets: &Secrets,
) -> Result<std::sync::Arc<dyn SparkLoopApi>, ConfigError> {
    if secrets.values().get(SPARKLOOP_API_KEY).is_none() || cfg.dry_run {
        tracing::warn!(
            reason = if cfg.dry_run {
                "DRY_RUN is on"
            } else {
                "SPARKLOOP_API_KEY is not set"
            },
            "SparkLoop calls run in dry-run: each is logged, none is made"
        );
        return Ok(std::sync::Arc::new(DryRunSparkLoop));
    }
    let client = cfg.client.clone()?;
    let key = secrets
        .live(|v| {
            v.get(SPARKLOOP_API_KEY)
                .cloned()
                .ok_or(KeyNotSet(SPARKLOOP_API_KEY))
        })
        .map_err(|KeyNotSet(name)| ConfigError::Missing { name })?;
    Ok(std::sync::Arc::new(SparkLoopClient::with_key(
        &client.api_url,
        key,
        &client.settings,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_total_is_shared_by_every_worker_instance_and_the_reconciler() {
        assert_eq!(rate_share(60, None), 60, "a local run has it all");
        assert_eq!(rate_share(60, Some(2)), 20);
        assert_eq!(rate_share(120, Some(5)), 20);
        assert_eq!(rate_share(10, Some(1000)), 1, "never zero");
        assert_eq!(rate_share(0, None), 1);
        for (total, n) in [(60u32, 2u32), (61, 3), (6000, 1000), (7, 6)] {
            let share = rate_share(total, Some(n));
            assert!(share * (n + 1) <= total.max(n + 1), "{total} {n}");
        }
    }

    #[test]
    fn identifiers_are_percent_encoded() {
        for (raw, want) in [
            ("a+b@x.io", "a%2Bb%40x.io"),
            ("sub_042448acb02a", "sub_042448acb02a"),
            ("we ird/../x@y.z", "we%20ird%2F..%2Fx%40y.z"),
            ("..", "%2E%2E"),
            (".", "%2E"),
        ] {
            assert_eq!(encode_identifier(raw), want);
        }
    }

    #[test]
    fn request_shapes() {
        let c = SparkLoopClient::new(
            "https://api.sparkloop.app/",
            Secret::new("k"),
            &ClientSettings::default(),
        );
        let (m, url, body) = c.request("a+b@x.io", &SparkLoopCall::Unsubscribe);
        assert_eq!(
            (m, url.as_str(), body),
            (
                Method::PUT,
                "https://api.sparkloop.app/v2/subscribers/a%2Bb%40x.io/unsubscribe",
                None
            )
        );
        let (_, url, _) = c.request("sub_1", &SparkLoopCall::Reject);
        assert_eq!(url, "https://api.sparkloop.app/v2/subscribers/sub_1/reject");
        for configured in [
            "https://api.sparkloop.app",
            "https://api.sparkloop.app/",
            "https://api.sparkloop.app/v2",
            "https://api.sparkloop.app/v2/",
            "https://api.sparkloop.app/api/v2",
        ] {
            let c = SparkLoopClient::new(configured, Secret::new("k"), &ClientSettings::default());
            let (_, url, _) = c.request("sub_1", &SparkLoopCall::Reject);
            assert_eq!(
                url, "https://api.sparkloop.app/v2/subscribers/sub_1/reject",
                "{configured}"
            );
        }
        let (_, url, body) = c.request("sub_1", &SparkLoopCall::Confirm);
        assert_eq!(url, "https://api.sparkloop.app/v2/subscribers/sub_1");
        assert_eq!(body.unwrap(), serde_json::json!({"status":"confirmed"}));
        let (_, _, body) = c.request(
            "o@x.io",
            &SparkLoopCall::ChangeEmail {
                new_email: "n@x.io".into(),
            },
        );
        assert_eq!(body.unwrap(), serde_json::json!({"email":"n@x.io"}));
    }

    #[test]
    fn api_base_drops_a_version_path_already_given() {
        for (configured, want) in [
            ("https://app.loops.so", "https://app.loops.so"),
            ("https://app.loops.so/api/v1", "https://app.loops.so"),
            ("https://app.loops.so/api/v1/", "https://app.loops.so"),
            ("https://app.loops.so/api", "https://app.loops.so"),
            ("https://app.loops.so/api/", "https://app.loops.so"),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
            (
                "https://proxy.example/esp/api/v1",
                "https://proxy.example/esp",
            ),
            (
                "https://proxy.example/api/v10",
                "https://proxy.example/api/v10",
            ),
        ] {
            assert_eq!(
                api_base(configured, super::super::esp::LOOPS_URL_SUFFIXES),
                want,
                "{configured}"
            );
        }
    }
}
