//! Requests and events for the runs, built from the samples in `events/` and authenticated
//! at run time exactly as the providers would (`sparkbridge::core::sender`).

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::Value;
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::sender::{authenticate, SenderCredentials};
use sparkbridge::local::Delivery;

/// The development defaults of `cli/src/defaults.rs`; the bench passes them explicitly to
/// every process it starts, so the two sides always agree.
pub const LOOPS_SECRET: &str = "whsec_ZGV2LW9ubHktc2lnbmluZy1zZWNyZXQtc3Bhcmticmlk";
pub const ESPUTNIK_USER: &str = "dev";
pub const ESPUTNIK_PASSWORD: &str = "dev-password";
pub const SPARKLOOP_TOKEN: &str = "dev-sparkloop-token";

pub fn credentials() -> SenderCredentials {
    SenderCredentials {
        loops_secret: Some(LOOPS_SECRET.into()),
        esputnik_user: Some(ESPUTNIK_USER.into()),
        esputnik_password: Some(ESPUTNIK_PASSWORD.into()),
        esputnik_token: None,
        sparkloop_token: Some(SPARKLOOP_TOKEN.into()),
    }
}

/// Environment for a process that verifies what these helpers sign.
pub fn secret_env() -> Vec<(&'static str, String)> {
    vec![
        ("LOOPS_SIGNING_SECRET", LOOPS_SECRET.into()),
        ("ESPUTNIK_WEBHOOK_USER", ESPUTNIK_USER.into()),
        ("ESPUTNIK_WEBHOOK_PASSWORD", ESPUTNIK_PASSWORD.into()),
        ("SPARKLOOP_WEBHOOK_TOKEN", SPARKLOOP_TOKEN.into()),
    ]
}

pub struct Samples {
    dir: PathBuf,
}

impl Samples {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// An API Gateway v2 sample, as JSON.
    pub fn apigw(&self, provider: &str, name: &str) -> Result<Value, String> {
        let path = self.dir.join(provider).join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The raw body of a sample.
    pub fn body(&self, provider: &str, name: &str) -> Result<String, String> {
        Ok(self.apigw(provider, name)?["body"]
            .as_str()
            .ok_or_else(|| format!("events/{provider}/{name}.json has no string body"))?
            .to_string())
    }
}

/// A Loops body for `kind` about `email` (the sample's address replaced).
pub fn loops_body(samples: &Samples, kind: &str, email: &str) -> Result<String, String> {
    Ok(samples
        .body("loops", kind)?
        .replace("test@example.com", email))
}

/// Headers that authenticate `body` now, as `provider` would.
pub fn auth_headers(provider: Provider, body: &str, id: &str) -> Vec<(String, String)> {
    authenticate(
        provider,
        body.as_bytes(),
        id,
        &credentials(),
        Utc::now().timestamp(),
    )
    .expect("bench credentials are complete")
    .headers
}

/// An API Gateway v2 event for `sample` with `body` and fresh authentication.
pub fn signed_apigw(mut sample: Value, provider: Provider, body: &str, id: &str) -> String {
    sample["body"] = Value::String(body.to_string());
    let headers = sample["headers"]
        .as_object_mut()
        .expect("API Gateway samples have headers");
    headers.insert("content-length".into(), body.len().to_string().into());
    for (k, v) in auth_headers(provider, body, id) {
        headers.insert(k, Value::String(v));
    }
    sample.to_string()
}

/// The queue message body ingest would produce for a Loops delivery (the real code path).
pub fn loops_envelope(body: &str, dedupe_id: &str) -> Result<String, String> {
    let event = sparkbridge::core::loops::parse(body.as_bytes()).map_err(|e| e.to_string())?;
    let env = Envelope::new(Provider::Loops, dedupe_id.to_string(), Utc::now(), event);
    Ok(sparkbridge::ingest::to_message(&env).body)
}

/// The queue message body for a SparkLoop delivery.
pub fn sparkloop_envelope(body: &str) -> Result<String, String> {
    let (id, event) =
        sparkbridge::core::sparkloop::parse(body.as_bytes()).map_err(|e| e.to_string())?;
    let env = Envelope::new(Provider::Sparkloop, id, Utc::now(), event);
    Ok(sparkbridge::ingest::to_message(&env).body)
}

/// Deliveries (as the event source mapping would hand them over) for envelope bodies.
pub fn deliveries(bodies: Vec<String>) -> Vec<Delivery> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Delivery {
            id: format!("m-{}", uuid::Uuid::new_v4().simple()),
            receipt: format!("r-{i}-{}", uuid::Uuid::new_v4().simple()),
            body,
            attributes: Default::default(),
            receive_count: 1,
        })
        .collect()
}
