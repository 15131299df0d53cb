//! The rules: envelope + known subscriber state -> actions. Pure and table-tested.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::core::envelope::{Envelope, Provider, KIND_PARKED, KIND_UNKNOWN};
use crate::core::outbound::SparkLoopCall;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesConfig {
    /// `CONFIRM_SIGNUPS`: confirm new signups to SparkLoop (partner links + tracking script).
    pub confirm_signups: bool,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A SparkLoop API call; `target` is the SparkLoop uuid when known, else the email.
    SparkLoop { target: String, call: SparkLoopCall },
    /// An engagement counter on the subscriber (screening).
    Engagement {
        email: String,
        signal: Signal,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
        Provider::Sparkloop | Provider::Sparkbridge => {
            Decision::Ignore("handled by the lifecycle rules")
        }
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

fn engagement(env: &Envelope, signal: Signal) -> Decision {
    match email(env) {
        Some(email) => Decision::Act(vec![Action::Engagement {
            email,
            signal,
            at: env.occurred_at.unwrap_or(env.received_at),
        }]),
        None => Decision::Ignore("engagement without an email"),
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
        k if LOOPS_UNSUBSCRIBES.contains(&k) => sparkloop(env, SparkLoopCall::Unsubscribe),
        // Double opt-in: Loops sends contact.created only after confirmation (loops.md §1).
        "contact.created" if cfg.confirm_signups => sparkloop(env, SparkLoopCall::Confirm),
        "contact.created" => Decision::Ignore("signup (CONFIRM_SIGNUPS is off)"),
        "email.opened" => engagement(env, Signal::Open),
        "email.clicked" => engagement(env, Signal::Click),
        "email.delivered" => engagement(env, Signal::Delivery),
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
        "UNSUBSCRIBED" | "SPAM" if is_email => sparkloop(env, SparkLoopCall::Unsubscribe),
        "UNDELIVERED" if is_email && is_hard_bounce(&payload) => {
            sparkloop(env, SparkLoopCall::Unsubscribe)
        }
        "UNDELIVERED" => Decision::Ignore("soft bounce or not email"),
        "READ" if is_email => engagement(env, Signal::Open),
        "CLICKED" if is_email => engagement(env, Signal::Click),
        "DELIVERED" if is_email => engagement(env, Signal::Delivery),
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

    fn unsub(email: &str) -> Decision {
        Decision::Act(vec![Action::SparkLoop {
            target: email.into(),
            call: SparkLoopCall::Unsubscribe,
        }])
    }

    fn signal(email: &str, signal: Signal) -> Decision {
        Decision::Act(vec![Action::Engagement {
            email: email.into(),
            signal,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }])
    }

    #[test]
    fn esp_to_sparkloop_by_table() {
        use Provider::*;
        let on = RulesConfig {
            confirm_signups: true,
        };
        let off = RulesConfig::default();
        let a = "a@b.c";
        let cases: Vec<(Provider, &str, Option<&str>, &str, &RulesConfig, Decision)> = vec![
            (Loops, "email.unsubscribed", Some(a), "{}", &off, unsub(a)),
            (Loops, "contact.unsubscribed", Some(a), "{}", &off, unsub(a)),
            (Loops, "contact.deleted", Some(a), "{}", &off, unsub(a)),
            (Loops, "email.hardBounced", Some(a), "{}", &off, unsub(a)),
            (Loops, "email.spamReported", Some(a), "{}", &off, unsub(a)),
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
                "email.opened",
                Some(a),
                "{}",
                &off,
                signal(a, Signal::Open),
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
                unsub(a),
            ),
            (Esputnik, "SPAM", Some(a), r#"{}"#, &off, unsub(a)),
            (
                Esputnik,
                "UNDELIVERED",
                Some(a),
                r#"{"mediaType":"email","hardBounce":true}"#,
                &off,
                unsub(a),
            ),
            (
                Esputnik,
                "UNDELIVERED",
                Some(a),
                r#"{"hardBounce":false,"statusDescription":"5.1.2 (bad destination system: no such domain)"}"#,
                &off,
                unsub(a),
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
                r#"{"mediaType":"email"}"#,
                &off,
                signal(a, Signal::Open),
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

    #[test]
    fn sparkloop_uuid_is_preferred_as_target() {
        let mut e = env(Provider::Loops, "email.unsubscribed", Some("a@b.c"), "{}");
        e.subscriber.sparkloop_id = Some("sub_1".into());
        assert_eq!(
            decide(&e, &Known::default(), &RulesConfig::default()),
            Decision::Act(vec![Action::SparkLoop {
                target: "sub_1".into(),
                call: SparkLoopCall::Unsubscribe
            }])
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
        assert!(matches!(
            actions[1],
            Action::Engagement {
                signal: Signal::Open,
                ..
            }
        ));
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
