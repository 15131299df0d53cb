//! `sparkbridge subscriber show EMAIL` and `sparkbridge screen [--dry-run]`: against the
//! deployed table (TABLE_NAME, QUEUE_URL) or, with `--url`, a running `sparkbridge dev`.

use std::sync::Arc;

use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::sqs::SqsQueue;
use sparkbridge::config::{Env, ScreenerFunctionConfig, TABLE_NAME};
use sparkbridge::core::SubscriberState;
use sparkbridge::ports::{EventQueue, SubscriberStore};
use sparkbridge::screener::ScreenReport;

use crate::error::CliError;

async fn fetch_json(method: reqwest::Method, url: String) -> Result<serde_json::Value, CliError> {
    let resp = reqwest::Client::new()
        .request(method, &url)
        .send()
        .await
        .map_err(|e| CliError::Http(format!("{url}: {e}")))?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| CliError::Http(format!("{url}: {e}")))?;
    if !status.is_success() {
        return Err(CliError::Http(format!(
            "{url} answered {status}: {}",
            v["error"].as_str().unwrap_or("")
        )));
    }
    Ok(v)
}

pub async fn show(email: &str, url: Option<&str>, json: bool) -> Result<(), CliError> {
    let state: SubscriberState = match url {
        Some(base) => {
            let path: String =
                percent_encoding::utf8_percent_encode(email, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            let v = fetch_json(
                reqwest::Method::GET,
                format!("{}/_dev/subscribers/{path}", base.trim_end_matches('/')),
            )
            .await?;
            serde_json::from_value(v)?
        }
        None => DynamoStore::from_conf(
            &sparkbridge::adapters::aws::sdk_config().await,
            Env::process().required(TABLE_NAME)?,
        )
        .get(email)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no subscriber {email}")))?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(());
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("email:            {}", state.email);
    println!("sparkloop id:     {}", opt(&state.sparkloop_id));
    println!(
        "referral status:  {}",
        state.referral_status.map_or("-", |s| s.as_str())
    );
    println!("source:           {}", opt(&state.source));
    println!("partner:          {}", opt(&state.partner_id));
    println!("campaign:         {}", opt(&state.campaign_id));
    println!(
        "screening:        {} -> {}",
        state
            .screening_started_at
            .map_or("-".into(), |t| t.to_rfc3339()),
        state
            .screening_deadline
            .map_or("-".into(), |t| t.to_rfc3339())
    );
    println!("screened:         {}", opt(&state.screened));
    println!("esp status:       {}", opt(&state.esp_status));
    let count = |k: &str| state.signals.iter().filter(|s| s.kind == k).count();
    println!(
        "signals:          {} deliveries, {} opens, {} clicks",
        count("deliveries"),
        count("opens"),
        count("clicks")
    );
    println!("history:");
    for h in &state.history {
        println!("  {h}");
    }
    Ok(())
}

pub async fn screen(dry_run: bool, url: Option<&str>, json: bool) -> Result<(), CliError> {
    let report: ScreenReport = match url {
        Some(base) => {
            let q = if dry_run { "?dry_run=true" } else { "" };
            let v = fetch_json(
                reqwest::Method::POST,
                format!("{}/_dev/screen{q}", base.trim_end_matches('/')),
            )
            .await?;
            serde_json::from_value(v)?
        }
        None => {
            // the screener function's settings; `--dry-run` rather than SCREENING_DRY_RUN
            let cfg = ScreenerFunctionConfig::from_env(&Env::process())?;
            let aws = sparkbridge::adapters::aws::sdk_config().await;
            let store: Arc<dyn SubscriberStore> =
                Arc::new(DynamoStore::from_conf(&aws, cfg.table_name));
            let queue: Arc<dyn EventQueue> = Arc::new(SqsQueue::from_conf(&aws, &cfg.queue));
            sparkbridge::screener::run(&store, &queue, &cfg.screening, chrono::Utc::now(), dry_run)
                .await?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if report.dry_run {
        "would reject"
    } else {
        "rejected"
    };
    for (email, why) in &report.rejected {
        println!("{verb} {email}: {why}");
    }
    println!(
        "checked {}, passed {}, not yet due {}, ended unjudged {}, {verb} {}",
        report.checked,
        report.passed,
        report.not_due,
        report.expired,
        report.rejected.len()
    );
    Ok(())
}
