//! The dedupe id and kind of every sample in `events/`, pinned. A dedupe id that changes for
//! the same provider bytes makes the worker process a retry of an already-processed event a
//! second time (or park it as a payload conflict), so a change to a parser must leave these
//! exactly as they are.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde_json::Value;
use sparkbridge::core::{esputnik, loops, sparkloop};

/// (sample file, kind, dedupe id), one row per queued envelope (eSputnik: per element).
const PINNED: &[(&str, &str, &str)] = &[
    (
        "loops/campaign.email.sent.json",
        "campaign.email.sent",
        "msg_loops_campaign_email_sent",
    ),
    (
        "loops/contact.created.json",
        "contact.created",
        "msg_loops_contact_created",
    ),
    (
        "loops/contact.deleted.json",
        "contact.deleted",
        "msg_loops_contact_deleted",
    ),
    (
        "loops/contact.mailingList.subscribed.json",
        "contact.mailingList.subscribed",
        "msg_loops_contact_mailing_list_subscribed",
    ),
    (
        "loops/contact.mailingList.unsubscribed.json",
        "contact.mailingList.unsubscribed",
        "msg_loops_contact_mailing_list_unsubscribed",
    ),
    (
        "loops/contact.unsubscribed.json",
        "contact.unsubscribed",
        "msg_loops_contact_unsubscribed",
    ),
    (
        "loops/email.clicked.json",
        "email.clicked",
        "msg_loops_email_clicked",
    ),
    (
        "loops/email.delivered.json",
        "email.delivered",
        "msg_loops_email_delivered",
    ),
    (
        "loops/email.hardBounced.json",
        "email.hardBounced",
        "msg_loops_email_hard_bounced",
    ),
    (
        "loops/email.opened.json",
        "email.opened",
        "msg_loops_email_opened",
    ),
    (
        "loops/email.resubscribed.json",
        "email.resubscribed",
        "msg_loops_email_resubscribed",
    ),
    (
        "loops/email.softBounced.json",
        "email.softBounced",
        "msg_loops_email_soft_bounced",
    ),
    (
        "loops/email.spamReported.json",
        "email.spamReported",
        "msg_loops_email_spam_reported",
    ),
    (
        "loops/email.unsubscribed.json",
        "email.unsubscribed",
        "msg_2abc",
    ),
    (
        "loops/loop.email.sent.json",
        "loop.email.sent",
        "msg_loops_loop_email_sent",
    ),
    (
        "loops/testing.testEvent.json",
        "testing.testEvent",
        "msg_loops_test_1",
    ),
    (
        "loops/transactional.email.sent.json",
        "transactional.email.sent",
        "msg_loops_transactional_email_sent",
    ),
    (
        "esputnik/CLICKED.json",
        "CLICKED",
        "00404d8f28f1a2489db269eb66d4078fd667a2741c9e4976a4c24e19b9edf7db",
    ),
    (
        "esputnik/DELIVERED.json",
        "DELIVERED",
        "7551f7c83daf1e42a29b27c15ec9ffa2aaea2461be17c3ea929526cd29a5a8a8",
    ),
    (
        "esputnik/READ.json",
        "READ",
        "31f113300a7fd5361acee6649f742d9c618df01656b5a7831e945645859c052b",
    ),
    (
        "esputnik/SENT.json",
        "SENT",
        "cce4392316e0bbe075e2e2cc33e5d9b343a71d85607ff7556cd34a78b46d5a81",
    ),
    (
        "esputnik/SPAM.json",
        "SPAM",
        "c7aad82f1b1a0e8bd15c3ee07318eb796d04d5e3a7f92a72bd4b4fe46af8d331",
    ),
    (
        "esputnik/SUBSCRIPTION_CHANGED.json",
        "SUBSCRIPTION_CHANGED",
        "3223688343b0ed4855f904ccb03ed1176c16b404e961f8ed5e771b0921077282",
    ),
    (
        "esputnik/UNDELIVERED.json",
        "UNDELIVERED",
        "41c5177fe52a2fce229c56524f90dd05c215dec5a5df62d067e82dab421c0a85",
    ),
    (
        "esputnik/UNSUBSCRIBED.json",
        "UNSUBSCRIBED",
        "f6d947090d47d1eba643021404a033061c842f8579b48cd7f3656d2af8c97047",
    ),
    (
        "esputnik/batch.json",
        "DELIVERED",
        "7551f7c83daf1e42a29b27c15ec9ffa2aaea2461be17c3ea929526cd29a5a8a8",
    ),
    (
        "esputnik/batch.json",
        "UNDELIVERED",
        "41c5177fe52a2fce229c56524f90dd05c215dec5a5df62d067e82dab421c0a85",
    ),
    (
        "esputnik/batch.json",
        "READ",
        "31f113300a7fd5361acee6649f742d9c618df01656b5a7831e945645859c052b",
    ),
    (
        "esputnik/batch.json",
        "CLICKED",
        "00404d8f28f1a2489db269eb66d4078fd667a2741c9e4976a4c24e19b9edf7db",
    ),
    (
        "sparkloop/new_partner_pending_referral.json",
        "new_partner_pending_referral",
        "4ac85cf769705d395cdff16963a94d31af761164af317417b727383252b8f9a4",
    ),
    (
        "sparkloop/new_partner_referral.json",
        "new_partner_referral",
        "d72a27b0e3ecf9c45d85a42ecb8c21d02f163d9d1c67c932b5086d0f900b280b",
    ),
    (
        "sparkloop/new_referral.json",
        "new_referral",
        "6c62e9230bb1c913b5eb73c63023770db76e17d5632ce6ec1fa1a5b02c7d86c3",
    ),
    (
        "sparkloop/reward_redeemed.json",
        "reward_redeemed",
        "0f556bde7ed92626c0f1899dc51b3d24cdd83d87d5bfef27f1d88ef5ab42016c",
    ),
    (
        "sparkloop/reward_unlocked.json",
        "reward_unlocked",
        "7d89f0301c3d8e2aac79928021fdee838ecf554d6e4f3abc1e90764146b7506d",
    ),
    (
        "sparkloop/sync_subscriber.json",
        "sync_subscriber",
        "5d2f212998819c9a5d7195e38e513f23a36ba9278c71fdff761eb6e72d439984",
    ),
];

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// The body and headers of an API Gateway v2 sample request.
fn load(path: &Path) -> (Option<String>, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let req: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(req["isBase64Encoded"], false, "{}", path.display());
    (
        req["body"].as_str().map(str::to_string),
        req["headers"].clone(),
    )
}

fn computed() -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for provider in ["loops", "esputnik", "sparkloop"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir().join(provider))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let (Some(body), headers) = load(&file) else {
                continue; // eSputnik's GET URL check carries no event
            };
            let name = format!("{provider}/{}", file.file_name().unwrap().to_string_lossy());
            match provider {
                "loops" => {
                    let n = loops::parse(body.as_bytes()).unwrap();
                    let id = headers["webhook-id"].as_str().unwrap().to_string();
                    rows.push((name, n.kind.to_string(), id));
                }
                "esputnik" => {
                    for el in esputnik::split(body.as_bytes(), Tz::UTC) {
                        rows.push((name.clone(), el.event.kind.to_string(), el.dedupe_id));
                    }
                }
                _ => {
                    let (id, n) = sparkloop::parse(body.as_bytes()).unwrap();
                    rows.push((name, n.kind.to_string(), id));
                }
            }
        }
    }
    rows
}

#[test]
fn every_sample_keeps_its_dedupe_id_and_kind() {
    let got = computed();
    let want: Vec<(String, String, String)> = PINNED
        .iter()
        .map(|(f, k, i)| (f.to_string(), k.to_string(), i.to_string()))
        .collect();
    if got != want {
        let table: String = got
            .iter()
            .map(|(f, k, i)| format!("    ({f:?}, {k:?}, {i:?}),\n"))
            .collect();
        panic!("the samples' dedupe ids or kinds changed; computed now:\n{table}");
    }
}
