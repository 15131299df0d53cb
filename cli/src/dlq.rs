//! `sparkbridge dlq list | show ID | replay`: the dead-letter queue, read without losing
//! anything (messages are made visible again after listing) and replayed with attributes.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use aws_sdk_sqs::Client;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::CliError;

/// Creates `<name>` and `<name>-dlq` with a redrive policy (idempotent); returns both URLs.
pub async fn create_queues(
    sqs: &Client,
    name: &str,
    max_receive_count: u32,
) -> Result<(String, String), CliError> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(CliError::aws)?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(CliError::aws)?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| CliError::Aws("DLQ has no ARN".into()))?;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
            .to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "180")
        .send()
        .await
        .map_err(CliError::aws)?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    Ok((queue_url, dlq_url))
}

#[derive(Debug, Serialize)]
pub struct DlqMessage {
    pub id: String,
    #[serde(skip)]
    pub receipt: String,
    pub attributes: BTreeMap<String, String>,
    pub body: String,
}

/// How long scanned messages stay hidden: long enough for a replay of thousands to delete
/// with the receipt handles it read (handles go stale once a message is visible again).
const SCAN_VISIBILITY_SECS: i32 = 900;

/// Reads up to `max` DLQ messages, hidden for [`SCAN_VISIBILITY_SECS`]; callers make them
/// visible again (`release`) or delete them. Long polling asks every SQS server, so an empty
/// answer means the queue has nothing visible (a short poll may answer empty while it has).
pub async fn scan(sqs: &Client, dlq_url: &str, max: usize) -> Result<Vec<DlqMessage>, CliError> {
    let mut out: Vec<DlqMessage> = Vec::new();
    while out.len() < max {
        let res = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(SCAN_VISIBILITY_SECS)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(CliError::aws)?;
        let msgs = res.messages();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let id = m.message_id().unwrap_or_default().to_string();
            if out.iter().any(|o| o.id == id) {
                continue;
            }
            out.push(DlqMessage {
                id,
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                attributes: m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .filter_map(|(k, v)| {
                                v.string_value().map(|s| (k.clone(), s.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                body: m.body().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(out)
}

/// Makes scanned messages visible again.
pub async fn release(sqs: &Client, dlq_url: &str, msgs: &[DlqMessage]) {
    for m in msgs {
        let _ = sqs
            .change_message_visibility()
            .queue_url(dlq_url)
            .receipt_handle(&m.receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

pub async fn list(sqs: &Client, dlq_url: &str, max: usize, json: bool) -> Result<(), CliError> {
    let msgs = scan(sqs, dlq_url, max).await?;
    release(sqs, dlq_url, &msgs).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&msgs)?);
        return Ok(());
    }
    if msgs.is_empty() {
        println!("DLQ is empty");
        return Ok(());
    }
    println!(
        "{:<38} {:<10} {:<26} {:<9} ERROR",
        "ID", "PROVIDER", "KIND", "ATTEMPTS"
    );
    for m in &msgs {
        let a = |k: &str| m.attributes.get(k).map(String::as_str).unwrap_or("-");
        let error: String = a("error").chars().take(80).collect();
        println!(
            "{:<38} {:<10} {:<26} {:<9} {}",
            m.id,
            a("provider"),
            a("kind"),
            a("attempts"),
            error
        );
    }
    println!("{} message(s)", msgs.len());
    Ok(())
}

pub async fn show(sqs: &Client, dlq_url: &str, id: &str, json: bool) -> Result<(), CliError> {
    let msgs = scan(sqs, dlq_url, 10_000).await?;
    release(sqs, dlq_url, &msgs).await;
    let m = msgs
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| CliError::Usage(format!("no message {id} in the DLQ")))?;
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
    } else {
        println!("id: {}", m.id);
        for (k, v) in &m.attributes {
            println!("{k}: {v}");
        }
        let pretty = serde_json::from_str::<serde_json::Value>(&m.body)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| m.body.clone());
        println!("body:\n{pretty}");
    }
    Ok(())
}

/// Sends the chosen messages back to the main queue with their attributes (plus
/// `replayed_from`), then deletes them from the DLQ.
pub async fn replay(
    sqs: &Client,
    dlq_url: &str,
    queue_url: &str,
    ids: &[String],
    all: bool,
    dry_run: bool,
) -> Result<(), CliError> {
    if !all && ids.is_empty() {
        return Err(CliError::Usage(
            "name message ids to replay, or --all".into(),
        ));
    }
    let msgs = scan(sqs, dlq_url, usize::MAX).await?;
    let (chosen, rest): (Vec<DlqMessage>, Vec<DlqMessage>) =
        msgs.into_iter().partition(|m| all || ids.contains(&m.id));
    release(sqs, dlq_url, &rest).await;
    if let Some(missing) = ids.iter().find(|id| !chosen.iter().any(|m| &m.id == *id)) {
        release(sqs, dlq_url, &chosen).await;
        return Err(CliError::Usage(format!("no message {missing} in the DLQ")));
    }
    if dry_run {
        for m in &chosen {
            println!(
                "would replay {} ({} {})",
                m.id,
                m.attributes.get("provider").map_or("-", |s| s),
                m.attributes.get("kind").map_or("-", |s| s)
            );
        }
        release(sqs, dlq_url, &chosen).await;
        println!("dry run: {} message(s) would be replayed", chosen.len());
        return Ok(());
    }
    let bar = ProgressBar::new(chosen.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({eta})")
            .expect("a static template parses"),
    );
    let mut replayed = 0;
    for (i, m) in chosen.iter().enumerate() {
        if let Err(e) = replay_one(sqs, dlq_url, queue_url, m).await {
            // what was not replayed shows in the DLQ again now, not after the scan's timeout
            release(sqs, dlq_url, &chosen[i..]).await;
            bar.abandon();
            return Err(CliError::Failed(format!("replayed {replayed}, then: {e}")));
        }
        replayed += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("replayed {replayed} message(s)");
    Ok(())
}

/// Sends one DLQ message back to the queue with its attributes, then deletes it from the DLQ.
async fn replay_one(
    sqs: &Client,
    dlq_url: &str,
    queue_url: &str,
    m: &DlqMessage,
) -> Result<(), CliError> {
    let mut req = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(&m.body);
    let mut attrs = m.attributes.clone();
    if attrs.len() < 10 {
        attrs.insert("replayed_from".into(), m.id.clone());
    }
    for (k, v) in &attrs {
        let a = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(CliError::aws)?;
        req = req.message_attributes(k, a);
    }
    req.send().await.map_err(CliError::aws)?;
    sqs.delete_message()
        .queue_url(dlq_url)
        .receipt_handle(&m.receipt)
        .send()
        .await
        .map_err(CliError::aws)?;
    Ok(())
}
