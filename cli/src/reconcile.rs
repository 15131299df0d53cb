//! `sparkbridge reconcile [--dry-run] [--since DAYS] [--force]`: compare SparkLoop, the ESP and
//! the state table, and queue the missed webhooks (TABLE_NAME, QUEUE_URL, the API keys from
//! the environment or SECRETS_ARN, as the reconciler function reads them).

use indicatif::{ProgressBar, ProgressStyle};
use sparkbridge::adapters::dynamodb::DynamoStore;
use sparkbridge::adapters::sqs::SqsQueue;
use sparkbridge::config::{Env, ReconcilerFunctionConfig};
use sparkbridge::reconcile::{Deps, ReconcileError, Summary};
use sparkbridge::secrets::{Component, Secrets};

use crate::error::CliError;

const KINDS: [&str; 4] = [
    "sparkloop_unsubscribe",
    "esp_unsubscribe",
    "esp_add",
    "state_correction",
];

pub async fn run(
    dry_run: bool,
    since_days: Option<i64>,
    force: bool,
    json: bool,
) -> Result<(), CliError> {
    let fc = ReconcilerFunctionConfig::from_env(&Env::process())?;
    let aws = sparkbridge::adapters::aws::sdk_config().await;
    let store = DynamoStore::from_conf(&aws, fc.table_name);
    let queue = SqsQueue::from_conf(&aws, &fc.queue);
    let secrets = Secrets::load(&aws, &fc.secrets, Component::Reconciler).await?;
    let sparkloop = sparkbridge::adapters::sparkloop::from_secrets(&fc.sparkloop, &secrets)?;
    let esp = sparkbridge::adapters::esp::from_secrets(&fc.esp, &secrets)?;
    let mut cfg = fc.reconcile;
    cfg.force = force;
    if let Some(days) = since_days {
        // the horizon asked for, from the newest referral: a saved checkpoint is not resumed
        cfg.since = chrono::Duration::days(days);
        cfg.resume = false;
    }
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}").expect("a static template parses"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let deps = Deps {
        sparkloop: sparkloop.as_ref(),
        esp: esp.as_ref(),
        store: &store,
        queue: &queue,
    };
    let progress = |s: &Summary| {
        bar.set_message(format!(
            "page {}: {} checked, {} in agreement, {} to repair",
            s.pages,
            s.checked,
            s.in_agreement,
            s.total_repaired()
        ))
    };
    let result =
        sparkbridge::reconcile::run(&deps, &cfg, chrono::Utc::now(), dry_run, None, &progress)
            .await;
    bar.finish_and_clear();
    let (summary, refused) = match result {
        Ok(summary) => (summary, None),
        Err(ReconcileError::Refused { refusal, summary }) => (*summary, Some(refusal)),
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, dry_run);
    }
    match refused {
        Some(refusal) => Err(ReconcileError::Refused {
            refusal,
            summary: Box::new(summary),
        }
        .into()),
        None => Ok(()),
    }
}

fn print_summary(summary: &Summary, dry_run: bool) {
    let verb = if dry_run {
        "would repair"
    } else {
        "repaired (queued)"
    };
    for line in &summary.repairs {
        println!("{} {line}", if dry_run { "would repair" } else { "queued" });
    }
    if summary.total_repaired() > summary.repairs.len() {
        println!(
            "... and {} more (counted below)",
            summary.total_repaired() - summary.repairs.len()
        );
    }
    for line in &summary.not_queued_repairs {
        println!(
            "{} {line}",
            if dry_run {
                "would not queue"
            } else {
                "not queued"
            }
        );
    }
    if summary.total_not_queued() > summary.not_queued_repairs.len() {
        println!(
            "... and {} more not queued (counted below)",
            summary.total_not_queued() - summary.not_queued_repairs.len()
        );
    }
    if let Some(page) = summary.resumed_from_page {
        println!("resumed from page {page} (the checkpoint of a run cut off earlier)");
    }
    println!("{:<28} {:>8}", "checked", summary.checked);
    println!("{:<28} {:>8}", "in agreement", summary.in_agreement);
    for kind in KINDS {
        println!(
            "{:<28} {:>8}",
            format!("{verb}: {kind}"),
            summary.repaired.get(kind).copied().unwrap_or(0)
        );
    }
    for (kind, n) in &summary.not_queued {
        println!("{:<28} {:>8}", format!("not queued: {kind}"), n);
    }
    println!("{:<28} {:>8}", "reported", summary.reported.len());
    println!("{:<28} {:>8}", "failed", summary.failed);
    for r in &summary.reported {
        println!("  {r}");
    }
    if let Some(refusal) = &summary.refused {
        println!("refused: {refusal}");
    }
    if dry_run {
        println!("dry run: nothing was queued or changed");
    }
}
