//! The rules: envelope + known subscriber state -> actions. Pure and table-tested.

use serde_json::Value;

use crate::core::envelope::{Envelope, Provider, KIND_PARKED, KIND_UNKNOWN};
use crate::core::lifecycle::{self, EspCall, LifecycleConfig, SignalEntry, StateWrite, Transition};
use crate::core::outbound::SparkLoopCall;

/// Kind of the envelope the screener queues for a referral that missed the criteria.
pub const KIND_SCREENING_REJECT: &str = "screening.reject";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesConfig {
    /// `CONFIRM_SIGNUPS`: confirm new signups to SparkLoop (partner links + tracking script).
    pub confirm_signups: bool,
    pub lifecycle: LifecycleConfig,
}

/// What we know about the subscriber before acting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The address last seen for this ESP contact id, when email-change detection is on.
    pub previous_email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Delivery,
    Open,
    Click,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Delivery => "deliveries",
            Signal::Open => "opens",
            Signal::Click => "clicks",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A SparkLoop API call; `target` is the SparkLoop uuid when known, else the email.
    SparkLoop { target: String, call: SparkLoopCall },
    /// Written with the event's completion (engagement signals, ESP-side status).
    State(StateWrite),
    /// A referral status change; when stale, the actions after it are skipped.
    Transition(Transition),
    /// An ESP API call (SparkLoop -> ESP).
    Esp(EspCall),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Act(Vec<Action>),
    /// Acknowledged and counted, no call. The reason names the case.
    Ignore(&'static str),
    /// Cannot be processed as is: to the DLQ with this reason.
    Park(String),
}

const LOOPS_UNSUBSCRIBES: &[&str] = &[
    "email.unsubscribed",
    "contact.unsubscribed",
    "contact.deleted",
    "email.hardBounced",
    "email.spamReported",
];

pub fn decide(env: &Envelope, known: &Known, cfg: &RulesConfig) -> Decision {
    if let Some(reason) = &env.parked {
        return Decision::Park(reason.clone());
    }
    match env.kind.as_str() {
        KIND_PARKED => return Decision::Park("parked at ingest".into()),
        KIND_UNKNOWN => return Decision::Ignore("unknown event type"),
        _ => {}
    }
    let mut actions = email_change(env, known);
    let main = match env.provider {
        Provider::Loops => loops(env, cfg),
        Provider::Esputnik => esputnik(env),
        Provider::Sparkloop => sparkloop_event(env, cfg),
        Provider::Sparkbridge => internal(env),
    };
    match main {
        Decision::Act(more) => {
            actions.extend(more);
            Decision::Act(actions)
        }
        other if actions.is_empty() => other,
        _ => Decision::Act(actions),
    }
}

fn email(env: &Envelope) -> Option<String> {
    env.subscriber.email.clone()
}

fn target(env: &Envelope) -> Option<String> {
    env.subscriber.sparkloop_id.clone().or_else(|| email(env))
}

fn sparkloop(env: &Envelope, call: SparkLoopCall) -> Decision {
    match target(env) {
        Some(target) => Decision::Act(vec![Action::SparkLoop { target, call }]),
        None => Decision::Park(format!("{} event without a subscriber email", env.kind)),
    }
}

/// ESP-side unsubscribe: tell SparkLoop, and record the ESP status with the completion.
fn unsubscribe(env: &Envelope) -> Decision {
    match sparkloop(env, SparkLoopCall::Unsubscribe) {
        Decision::Act(mut actions) => {
            if let Some(email) = email(env) {
                actions.push(Action::State(StateWrite::EspStatus {
                    email,
                    status: format!("unsubscribed ({})", env.kind),
                    at: env.occurred_at.unwrap_or(env.received_at),
                }));
            }
            Decision::Act(actions)
        }
        other => other,
    }
}

/// `message`: the ESP's id of the individual send, which ties opens to deliveries.
fn engagement(env: &Envelope, signal: Signal, message: Option<String>) -> Decision {
    match email(env) {
        Some(email) => Decision::Act(vec![Action::State(StateWrite::Signal {
            email,
            entry: SignalEntry {
                kind: signal.as_str().into(),
                message,
                at: env.occurred_at.unwrap_or(env.received_at),
            },
        })]),
        None => Decision::Ignore("engagement without an email"),
    }
}

fn sparkloop_event(env: &Envelope, cfg: &RulesConfig) -> Decision {
    let plan = lifecycle::plan(env, &cfg.lifecycle);
    let mut actions: Vec<Action> = plan
        .transition
        .into_iter()
        .map(Action::Transition)
        .collect();
    let at = env.occurred_at.unwrap_or(env.received_at);
    for call in plan.esp {
        // Recorded with the completion, so only once the ESP call succeeded: reconcile reads
        // it to tell a contact we added and that later vanished (SparkLoop must hear of it)
        // from one whose add never went through (add it again, never unsubscribe it).
        let status = match &call {
            EspCall::Upsert { .. } => Some("added"),
            EspCall::Unsubscribe { .. } => Some("unsubscribed"),
            EspCall::Properties { .. } => None,
        };
        let email = call.email().to_string();
        actions.push(Action::Esp(call));
        if let Some(status) = status {
            actions.push(Action::State(StateWrite::EspStatus {
                email,
                status: format!("{status} ({})", env.kind),
                at,
            }));
        }
    }
    if actions.is_empty() {
        Decision::Ignore(plan.note.unwrap_or("no ESP effect"))
    } else {
        Decision::Act(actions)
    }
}

/// Events sparkbridge queues itself.
fn internal(env: &Envelope) -> Decision {
    match env.kind.as_str() {
        KIND_SCREENING_REJECT => sparkloop(env, SparkLoopCall::Reject),
        crate::core::reconcile::KIND_RECONCILE_UNSUBSCRIBE => unsubscribe(env),
        _ => Decision::Park(format!("unknown internal event {}", env.kind)),
    }
}

fn email_change(env: &Envelope, known: &Known) -> Vec<Action> {
    match (&known.previous_email, &env.subscriber.email) {
        (Some(old), Some(new)) if !old.eq_ignore_ascii_case(new) => vec![Action::SparkLoop {
            target: old.clone(),
            call: SparkLoopCall::ChangeEmail {
                new_email: new.clone(),
            },
        }],
        _ => Vec::new(),
    }
}

fn loops(env: &Envelope, cfg: &RulesConfig) -> Decision {
    match env.kind.as_str() {
        k if LOOPS_UNSUBSCRIBES.contains(&k) => unsubscribe(env),
        // Double opt-in: Loops sends both only after confirmation (loops.md §1). A form that
        // adds an existing contact to a list sends only the list event; confirming a
        // subscriber SparkLoop does not track answers 404, which is done.
        "contact.created" | "contact.mailingList.subscribed" if cfg.confirm_signups => {
            sparkloop(env, SparkLoopCall::Confirm)
        }
        "contact.created" | "contact.mailingList.subscribed" => {
            Decision::Ignore("signup (CONFIRM_SIGNUPS is off)")
        }
        "email.opened" | "email.clicked" | "email.delivered" => {
            let send_id = env
                .payload_value()
                .pointer("/email/id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let signal = match env.kind.as_str() {
                "email.opened" => Signal::Open,
                "email.clicked" => Signal::Click,
                _ => Signal::Delivery,
            };
            engagement(env, signal, send_id)
        }
        _ => Decision::Ignore("no SparkLoop effect"),
    }
}

fn esputnik(env: &Envelope) -> Decision {
    let payload = env.payload_value();
    let is_email = payload
        .get("mediaType")
        .and_then(Value::as_str)
        .is_none_or(|m| m.eq_ignore_ascii_case("email"));
    match env.kind.as_str() {
        "UNSUBSCRIBED" | "SPAM" if is_email => unsubscribe(env),
        "UNDELIVERED" if is_email && is_hard_bounce(&payload) => unsubscribe(env),
        "UNDELIVERED" => Decision::Ignore("soft bounce or not email"),
        "READ" | "CLICKED" | "DELIVERED" if is_email => {
            let copy = payload
                .get("messageInstanceId")
                .map(|v| v.to_string().trim_matches('"').to_string());
            let signal = match env.kind.as_str() {
                "READ" => Signal::Open,
                "CLICKED" => Signal::Click,
                _ => Signal::Delivery,
            };
            engagement(env, signal, copy)
        }
        _ => Decision::Ignore("no SparkLoop effect"),
    }
}

/// eSputnik flags `hardBounce` only for blacklisted addresses; a permanent SMTP failure
/// (`5.x.x` in `statusDescription`) is a hard bounce too.
fn is_hard_bounce(payload: &Value) -> bool {
    payload
        .get("hardBounce")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || payload
            .get("statusDescription")
            .and_then(Value::as_str)
            .is_some_and(|d| d.trim_start().starts_with("5."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::envelope::{Subscriber, ENVELOPE_VERSION};
    use chrono::DateTime;
    use serde_json::value::RawValue;

    fn env(provider: Provider, kind: &str, email: Option<&str>, payload: &str) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            provider,
            kind: kind.into(),
            dedupe_id: "d".into(),
            received_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            occurred_at: None,
            subscriber: Subscriber {
                email: email.map(Into::into),
                ..Default::default()
            },
            parked: None,
            payload: RawValue::from_string(payload.into()).unwrap(),
        }
    }

    fn unsub_because(email: &str, kind: &str) -> Decision {
        Decision::Act(vec![
            Action::SparkLoop {
                target: email.into(),
                call: SparkLoopCall::Unsubscribe,
            },
            Action::State(StateWrite::EspStatus {
                email: email.into(),
                status: format!("unsubscribed ({kind})"),
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            }),
        ])
    }

    fn signal(email: &str, signal: Signal) -> Decision {
        signal_of(email, signal, None)
    }

    fn signal_of(email: &str, signal: Signal, message: Option<&str>) -> Decision {
        Decision::Act(vec![Action::State(StateWrite::Signal {
            email: email.into(),
            entry: SignalEntry {
                kind: signal.as_str().into(),
                message: message.map(Into::into),
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
        })])
    }

    #[test]
    fn esp_to_sparkloop_by_table() {
        use Provider::*;
        let on = RulesConfig {
            confirm_signups: true,
            ..Default::default()
        };
        let off = RulesConfig::default();
        let a = "a@b.c";
        let cases: Vec<(Provider, &str, Option<&str>, &str, &RulesConfig, Decision)> = vec![
            (
                Loops,
                "email.unsubscribed",
                Some(a),
                "{}",
                &off,
                unsub_because(a, "email.unsubscribed"),
            ),
            (
                Loops,
                "contact.unsubscribed",
                Some(a),
                "{}",
                &off,
                unsub_because(a, "contact.unsubscribed"),
            ),
            (
                Loops,
                "contact.deleted",
                Some(a),
                "{}",
                &off,
                unsub_because(a, "contact.deleted"),
            ),
            (
                Loops,
                "email.hardBounced",
                Some(a),
                "{}",
                &off,
                unsub_because(a, "email.hardBounced"),
            ),
            (
                Loops,
                "email.spamReported",
                Some(a),
                "{}",
                &off,
                unsub_because(a, "email.spamReported"),
            ),
            (
                Loops,
                "email.unsubscribed",
                None,
                "{}",
                &off,
                Decision::Park("email.unsubscribed event without a subscriber email".into()),
            ),
            (
                Loops,
                "contact.created",
                Some(a),
                "{}",
                &on,
                Decision::Act(vec![Action::SparkLoop {
                    target: a.into(),
                    call: SparkLoopCall::Confirm,
                }]),
            ),
            (
                Loops,
                "contact.created",
                Some(a),
                "{}",
                &off,
                Decision::Ignore("signup (CONFIRM_SIGNUPS is off)"),
            ),
            (
                Loops,
                "contact.mailingList.subscribed",
                Some(a),
                "{}",
                &on,
                Decision::Act(vec![Action::SparkLoop {
                    target: a.into(),
                    call: SparkLoopCall::Confirm,
                }]),
            ),
            (
                Loops,
                "contact.mailingList.subscribed",
                Some(a),
                "{}",
                &off,
                Decision::Ignore("signup (CONFIRM_SIGNUPS is off)"),
            ),
            (
                Loops,
                "email.opened",
                Some(a),
                r#"{"email":{"id":"send_1"}}"#,
                &off,
                signal_of(a, Signal::Open, Some("send_1")),
            ),
            (
                Loops,
                "email.clicked",
                Some(a),
                "{}",
                &off,
                signal(a, Signal::Click),
            ),
            (
                Loops,
                "email.delivered",
                Some(a),
                "{}",
                &off,
                signal(a, Signal::Delivery),
            ),
            (
                Loops,
                "email.softBounced",
                Some(a),
                "{}",
                &off,
                Decision::Ignore("no SparkLoop effect"),
            ),
            (
                Loops,
                "contact.mailingList.unsubscribed",
                Some(a),
                "{}",
                &off,
                Decision::Ignore("no SparkLoop effect"),
            ),
            (
                Loops,
                "testing.testEvent",
                None,
                "{}",
                &off,
                Decision::Ignore("no SparkLoop effect"),
            ),
            (
                Loops,
                "unknown",
                Some(a),
                "{}",
                &off,
                Decision::Ignore("unknown event type"),
            ),
            (
                Esputnik,
                "UNSUBSCRIBED",
                Some(a),
                r#"{"mediaType":"email"}"#,
                &off,
                unsub_because(a, "UNSUBSCRIBED"),
            ),
            (
                Esputnik,
                "SPAM",
                Some(a),
                r#"{}"#,
                &off,
                unsub_because(a, "SPAM"),
            ),
            (
                Esputnik,
                "UNDELIVERED",
                Some(a),
                r#"{"mediaType":"email","hardBounce":true}"#,
                &off,
                unsub_because(a, "UNDELIVERED"),
            ),
            (
                Esputnik,
                "UNDELIVERED",
                Some(a),
                r#"{"hardBounce":false,"statusDescription":"5.1.2 (bad destination system: no such domain)"}"#,
                &off,
                unsub_because(a, "UNDELIVERED"),
            ),
            (
                Esputnik,
                "UNDELIVERED",
                Some(a),
                r#"{"hardBounce":false,"statusDescription":"4.2.2 mailbox full"}"#,
                &off,
                Decision::Ignore("soft bounce or not email"),
            ),
            (
                Esputnik,
                "UNDELIVERED",
                None,
                r#"{"mediaType":"viber","hardBounce":true}"#,
                &off,
                Decision::Ignore("soft bounce or not email"),
            ),
            (
                Esputnik,
                "UNSUBSCRIBED",
                None,
                r#"{"mediaType":"sms"}"#,
                &off,
                Decision::Ignore("no SparkLoop effect"),
            ),
            (
                Esputnik,
                "READ",
                Some(a),
                r#"{"mediaType":"email","messageInstanceId":4702518}"#,
                &off,
                signal_of(a, Signal::Open, Some("4702518")),
            ),
            (
                Esputnik,
                "CLICKED",
                Some(a),
                r#"{"mediaType":"email"}"#,
                &off,
                signal(a, Signal::Click),
            ),
            (
                Esputnik,
                "DELIVERED",
                Some(a),
                r#"{"mediaType":"email"}"#,
                &off,
                signal(a, Signal::Delivery),
            ),
            (
                Esputnik,
                "SUBSCRIPTION_CHANGED",
                Some(a),
                r#"{}"#,
                &off,
                Decision::Ignore("no SparkLoop effect"),
            ),
            (
                Esputnik,
                "SENT",
                None,
                r#"{"mediaType":"Mobile Push"}"#,
                &off,
                Decision::Ignore("no SparkLoop effect"),
            ),
            (
                Esputnik,
                "parked",
                None,
                r#""x""#,
                &off,
                Decision::Park("parked at ingest".into()),
            ),
        ];
        for (provider, kind, email, payload, cfg, want) in cases {
            let e = env(provider, kind, email, payload);
            assert_eq!(
                decide(&e, &Known::default(), cfg),
                want,
                "{provider} {kind} {payload}"
            );
        }
    }

    /// The ESP status is written after the ESP call (so only when it succeeded), for calls
    /// that put the contact in the ESP or take it out; a reconcile add for a verified referral
    /// is an upsert.
    #[test]
    fn sparkloop_events_record_the_esp_status_after_the_call() {
        let body = |kind: &str, status: &str, extra: &str| {
            format!(
                r#"{{"type":"{kind}",{extra}"subscriber":{{"id":"sub_1","email":"a@b.c","referral_status":"{status}"}}}}"#
            )
        };
        let cases = [
            (
                body("new_partner_pending_referral", "pending", ""),
                "upsert",
                Some("added (new_partner_pending_referral)"),
            ),
            (
                body("new_partner_referral", "verified", ""),
                "properties",
                None,
            ),
            (
                body(
                    "new_partner_referral",
                    "verified",
                    r#""reconciled":true,"repair":"esp_add","#,
                ),
                "upsert",
                Some("added (new_partner_referral)"),
            ),
            (
                body("sync_subscriber", "rejected", ""),
                "unsubscribe",
                Some("unsubscribed (sync_subscriber)"),
            ),
        ];
        for (payload, call, status) in cases {
            let (_, n) = crate::core::sparkloop::parse(payload.as_bytes()).unwrap();
            let mut e = env(Provider::Sparkloop, &n.kind, Some("a@b.c"), &payload);
            e.subscriber = n.subscriber;
            let Decision::Act(actions) = decide(&e, &Known::default(), &RulesConfig::default())
            else {
                panic!("{payload}")
            };
            assert!(matches!(&actions[0], Action::Transition(_)), "{payload}");
            assert!(
                matches!(&actions[1], Action::Esp(c) if c.name() == call),
                "{payload}"
            );
            let written = actions.get(2).map(|a| match a {
                Action::State(StateWrite::EspStatus { email, status, .. }) => {
                    assert_eq!(email, "a@b.c");
                    status.as_str()
                }
                other => panic!("{other:?}"),
            });
            assert_eq!(written, status, "{payload}");
            assert_eq!(actions.len(), 2 + usize::from(status.is_some()));
        }
    }

    #[test]
    fn sparkloop_uuid_is_preferred_as_target() {
        let mut e = env(Provider::Loops, "email.unsubscribed", Some("a@b.c"), "{}");
        e.subscriber.sparkloop_id = Some("sub_1".into());
        let Decision::Act(actions) = decide(&e, &Known::default(), &RulesConfig::default()) else {
            panic!()
        };
        assert_eq!(
            actions[0],
            Action::SparkLoop {
                target: "sub_1".into(),
                call: SparkLoopCall::Unsubscribe
            }
        );
    }

    #[test]
    fn an_email_change_is_passed_on() {
        let e = env(Provider::Loops, "email.opened", Some("new@b.c"), "{}");
        let known = Known {
            previous_email: Some("old@b.c".into()),
        };
        let Decision::Act(actions) = decide(&e, &known, &RulesConfig::default()) else {
            panic!()
        };
        assert_eq!(
            actions[0],
            Action::SparkLoop {
                target: "old@b.c".into(),
                call: SparkLoopCall::ChangeEmail {
                    new_email: "new@b.c".into()
                }
            }
        );
        assert!(
            matches!(&actions[1], Action::State(StateWrite::Signal { entry, .. }) if entry.kind == "opens")
        );
        // same address in another case is no change; an ignored event still passes the change on
        let same = Known {
            previous_email: Some("NEW@b.c".into()),
        };
        assert!(
            matches!(decide(&e, &same, &RulesConfig::default()), Decision::Act(a) if a.len() == 1)
        );
        let soft = env(Provider::Loops, "email.softBounced", Some("new@b.c"), "{}");
        assert!(
            matches!(decide(&soft, &known, &RulesConfig::default()), Decision::Act(a) if a.len() == 1)
        );
    }

    #[test]
    fn parked_envelopes_stay_parked() {
        let mut e = env(Provider::Esputnik, "parked", None, r#""x""#);
        e.parked = Some("element is not a JSON object".into());
        assert_eq!(
            decide(&e, &Known::default(), &RulesConfig::default()),
            Decision::Park("element is not a JSON object".into())
        );
    }
}
