//! `sparkbridge send <provider> <event>`: a sample event, authenticated as the provider would.

use sparkbridge::config::Env;
use sparkbridge::core::envelope::Provider;
use sparkbridge::core::sender::{authenticate, SenderCredentials};

use crate::error::CliError;

pub async fn run(
    provider: Provider,
    event: &str,
    url: &str,
    new_id: bool,
    json: bool,
) -> Result<(), CliError> {
    let mut env = Env::process();
    crate::defaults::apply(&mut env);
    let sample = crate::samples::load(provider.as_str(), event)?;
    let id = match sample
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("webhook-id"))
    {
        Some((_, v)) if !new_id => v.clone(),
        _ => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    };
    let now = chrono::Utc::now().timestamp();
    let auth = authenticate(
        provider,
        &sample.body,
        &id,
        &SenderCredentials::from_env(&env),
        now,
    )?;
    let mut target =
        reqwest::Url::parse(url).map_err(|e| CliError::Usage(format!("--url {url:?}: {e}")))?;
    if target.path() == "/" || target.path().is_empty() {
        target.set_path(&format!("/webhooks/{provider}"));
    }
    if let Some(q) = &auth.query {
        let joined = match target.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{q}"),
            _ => q.clone(),
        };
        target.set_query(Some(&joined));
    }
    let method = reqwest::Method::from_bytes(sample.method.as_bytes()).map_err(|e| {
        CliError::Unreadable(format!("the sample's method {:?}: {e}", sample.method))
    })?;
    let mut req = reqwest::Client::new().request(method, target.clone());
    for (k, v) in &auth.headers {
        req = req.header(k, v);
    }
    let resp = req
        .body(sample.body.clone())
        .send()
        .await
        .map_err(|e| CliError::Http(format!("POST {target}: {e}")))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({"status": status.as_u16(), "url": target.as_str(), "webhook_id": id, "body": text})
        );
    } else {
        println!(
            "{} {} -> {}{}",
            provider,
            event,
            status,
            if text.is_empty() {
                String::new()
            } else {
                format!(" {text}")
            }
        );
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(CliError::Failed(format!("{target} answered {status}")))
    }
}
