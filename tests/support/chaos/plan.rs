//! The delivery plan: unique events, each delivered 1 to 3 times, and the feed that sends them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::ports::{EventQueue, OutboundMessage};

#[derive(Debug, Clone)]
pub struct EventSpec {
    /// `provider#dedupe id`, the worker's idempotency key.
    pub key: String,
    /// The SparkLoop target (the email).
    pub target: String,
    pub permanent: bool,
    pub copies: u32,
}

pub struct Plan {
    pub seed: u64,
    pub events: Vec<EventSpec>,
    /// Messages in sending order; later copies sit further down.
    pub deliveries: Vec<OutboundMessage>,
    pub concurrent_copies: usize,
    pub later_copies: usize,
}

impl Plan {
    pub fn good(&self) -> usize {
        self.events.iter().filter(|e| !e.permanent).count()
    }

    pub fn line(&self) -> String {
        let hist = |c| self.events.iter().filter(|e| e.copies == c).count();
        format!(
            "seed={} unique={} permanent={} deliveries={} copies(1/2/3)={}/{}/{} extra_concurrent={} extra_later={}",
            self.seed,
            self.events.len(),
            self.events.len() - self.good(),
            self.deliveries.len(),
            hist(1),
            hist(2),
            hist(3),
            self.concurrent_copies,
            self.later_copies
        )
    }
}

/// A Loops `email.unsubscribed` or eSputnik `UNSUBSCRIBED` webhook for `email`, parsed by the
/// real parsers into the envelope ingest would queue.
pub fn unsubscribe_envelope(provider: Provider, i: usize, email: &str) -> Envelope {
    match provider {
        Provider::Loops => {
            let body = serde_json::json!({
                "eventName": "email.unsubscribed", "eventTime": 1_764_000_000 + i as i64,
                "webhookSchemaVersion": "1.0.0", "sourceType": "campaign", "campaignId": "cmp_chaos",
                "email": {"id": format!("send_{i}"), "emailMessageId": format!("m{i}"), "subject": "Hello"},
                "contactIdentity": {"id": format!("cid_{i}"), "email": email, "userId": null}
            })
            .to_string();
            let n = sparkbridge::core::loops::parse(body.as_bytes()).expect("a valid Loops body");
            // The webhook-id header Loops sends with every attempt of one event.
            Envelope::new(Provider::Loops, format!("msg_chaos_{i}"), Utc::now(), n)
        }
        _ => {
            let body = serde_json::json!([{
                "activityStatus": "UNSUBSCRIBED", "activityDateTime": "2026-01-02T10:00:00",
                "contactId": 100_000 + i, "email": email, "iid": format!("iid_{i}"),
                "messageInstanceId": 500_000 + i, "mediaType": "email"
            }])
            .to_string();
            let mut els = sparkbridge::core::esputnik::split(body.as_bytes(), chrono_tz::UTC);
            let el = els.pop().expect("one element");
            Envelope::new(Provider::Esputnik, el.dedupe_id, Utc::now(), el.event)
        }
    }
}

/// `good` events that succeed at the fake plus `permanent` ones it always answers 400, each
/// delivered 1 to 3 times. An extra copy is either "concurrent" (a few positions after the
/// first, so in the same or a neighbouring batch) or "later" (`later_gap` to 4 x `later_gap`
/// positions after it, typically once the first is processed).
pub fn plan(good: usize, permanent: usize, later_gap: usize, seed: u64) -> Plan {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut events = Vec::new();
    let mut slots: Vec<(f64, OutboundMessage)> = Vec::new();
    let (mut concurrent, mut later) = (0, 0);
    let total = good + permanent;
    let mut order: Vec<usize> = (0..total).collect();
    order.shuffle(&mut rng);
    for (pos, i) in order.into_iter().enumerate() {
        let permanent = i >= good;
        let email = if permanent {
            format!("perm-{i}@chaos.test")
        } else {
            format!("u{i}@chaos.test")
        };
        let provider = if i % 2 == 0 {
            Provider::Loops
        } else {
            Provider::Esputnik
        };
        let copies = rng.random_range(1..=3u32);
        let mut key = String::new();
        for c in 0..copies {
            let env = unsubscribe_envelope(provider, i, &email);
            key = env.idempotency_key();
            let at = if c == 0 {
                pos as f64
            } else if rng.random_bool(0.5) {
                concurrent += 1;
                pos as f64 + rng.random_range(0.1..30.0)
            } else {
                later += 1;
                pos as f64 + rng.random_range(later_gap as f64..4.0 * later_gap as f64)
            };
            slots.push((at, sparkbridge::ingest::to_message(&env)));
        }
        events.push(EventSpec {
            key,
            target: email,
            permanent,
            copies,
        });
    }
    slots.sort_by(|a, b| a.0.total_cmp(&b.0));
    Plan {
        seed,
        events,
        deliveries: slots.into_iter().map(|(_, m)| m).collect(),
        concurrent_copies: concurrent,
        later_copies: later,
    }
}

pub type DepthFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send>> + Send + Sync>;

#[derive(Default, Debug)]
pub struct FeedStats {
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    pub waits: AtomicU64,
}

/// Sends the plan's deliveries in order, 10 per call, keeping at most `max_backlog` messages
/// on the queue; a refused send is retried, as a provider retries a webhook answered 503.
pub async fn feed(
    queue: Arc<dyn EventQueue>,
    deliveries: Vec<OutboundMessage>,
    depth: DepthFn,
    max_backlog: usize,
    stats: Arc<FeedStats>,
) {
    let mut since_check = usize::MAX;
    for chunk in deliveries.chunks(10) {
        if since_check >= 50 {
            since_check = 0;
            while depth().await > max_backlog {
                stats.waits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        since_check += chunk.len();
        loop {
            match queue.enqueue(chunk.to_vec()).await {
                Ok(()) => break,
                Err(_) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        stats.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

/// Waits until the queue stays empty (three checks in a row); false on `timeout`.
pub async fn wait_drained(depth: &DepthFn, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut zeros = 0;
    while Instant::now() < end {
        if depth().await == 0 {
            zeros += 1;
            if zeros >= 3 {
                return true;
            }
        } else {
            zeros = 0;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
