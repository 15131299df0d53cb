//! The rules: envelope + known subscriber state -> actions. Pure and table-tested.

use chrono::{DateTime, Utc};

use crate::core::envelope::{Envelope, Provider};
use crate::core::esputnik::{Activity, EsputnikEvent};
use crate::core::kind::{InternalKind, Kind};
use crate::core::lifecycle::{self, EspCall, LifecycleConfig};
use crate::core::loops::{LoopsEvent, LoopsPayload};
use crate::core::outbound::SparkLoopCall;
use crate::core::subscriber::Signal;
use crate::core::subscriber::{SignalEntry, StateWrite, Transition};

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
    /// When that address was seen (the time of the event that carried it).
    pub previous_email_at: Option<DateTime<Utc>>,
    /// When the subscriber last left, for a signup confirm (`SubscriberStore::left_at`).
    pub left_at: Option<DateTime<Utc>>,
}

/// What the worker must read before deciding on `env`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    /// The ESP contact's recorded address (email-change detection).
    pub contact: bool,
    /// When the subscriber last left: a signup confirm must not overtake a later unsubscribe.
    pub left_at: bool,
}

/// What `decide` needs to know about `env`'s subscriber.
pub fn reads(env: &Envelope, cfg: &RulesConfig, detect_email_changes: bool) -> Reads {
    Reads {
        contact: detect_email_changes
            && env.subscriber.esp_contact_id.is_some()
            && env.subscriber.email.is_some(),
        left_at: cfg.confirm_signups
            && env.provider == Provider::Loops
            && matches!(env.kind, Kind::Loops(k) if k.event() == LoopsEvent::Signup),
    }
}

/// When the event happened, as far as we know.
fn event_time(env: &Envelope) -> DateTime<Utc> {
    env.occurred_at.unwrap_or(env.received_at)
}

/// When a departure counts from. A reconcile repair carries the referral's creation time as
/// its event time, but the departure it repairs was found now: marked at the creation time, it
/// would let a later confirm through.
fn departure_time(env: &Envelope) -> DateTime<Utc> {
    match env.provider {
        Provider::Sparkbridge => env.received_at,
        _ => event_time(env),
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
    /// Marks, before the SparkLoop call, that the subscriber left at `at`: a signup confirm
    /// being retried reads it and never reaches SparkLoop after this unsubscribe.
    MarkLeft { email: String, at: DateTime<Utc> },
    /// After a confirm: if an unsubscribe at or after `since` was marked meanwhile (the two
    /// raced), unsubscribe `target` again so the confirm cannot stand.
    UnsubscribeIfLeftSince {
        target: String,
        email: String,
        since: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Act(Vec<Action>),
    /// Acknowledged and counted, no call. The reason names the case.
    Ignore(&'static str),
    /// Cannot be processed as is: to the DLQ with this reason.
    Park(String),
}

pub fn decide(env: &Envelope, known: &Known, cfg: &RulesConfig) -> Decision {
    if let Some(reason) = &env.parked {
        return Decision::Park(reason.clone());
    }
    match env.kind {
        Kind::Parked => return Decision::Park("parked at ingest".into()),
        Kind::Unknown => return Decision::Ignore("unknown event type"),
        _ => {}
    }
    // The event's own effect comes first, on the address SparkLoop knows: a change SparkLoop
    // refuses (the new address taken) must never hold back an unsubscribe.
    let main = match env.provider {
        Provider::Loops => loops(env, known, cfg),
        Provider::Esputnik => esputnik(env, known, cfg),
        Provider::Sparkloop => sparkloop_event(env, cfg),
        Provider::Sparkbridge => internal(env, known, cfg),
    };
    let change = email_change(env, known);
    match main {
        Decision::Act(mut actions) => {
            actions.extend(change);
            Decision::Act(actions)
        }
        other if change.is_empty() => other,
        _ => Decision::Act(change),
    }
}

fn email(env: &Envelope) -> Option<String> {
    env.subscriber.email.clone()
}

/// Who SparkLoop knows this subscriber as: its id, else the address recorded for the ESP
/// contact (with email-change detection: the address SparkLoop has, before a change is passed
/// on, or after a newer event moved it), else the event's address.
fn target(env: &Envelope, known: &Known) -> Option<String> {
    env.subscriber
        .sparkloop_id
        .clone()
        .or_else(|| known.previous_email.clone())
        .or_else(|| email(env))
}

fn sparkloop(env: &Envelope, known: &Known, call: SparkLoopCall) -> Decision {
    match target(env, known) {
        Some(target) => Decision::Act(vec![Action::SparkLoop { target, call }]),
        None => Decision::Park(format!("{} event without a subscriber email", env.kind)),
    }
}

/// ESP-side unsubscribe: tell SparkLoop, and record the ESP status with the completion.
/// With signup confirms on, the departure is marked first, so a confirm cannot overtake it.
fn unsubscribe(env: &Envelope, known: &Known, cfg: &RulesConfig) -> Decision {
    match sparkloop(env, known, SparkLoopCall::Unsubscribe) {
        Decision::Act(mut actions) => {
            if let Some(email) = email(env) {
                if cfg.confirm_signups {
                    actions.insert(
                        0,
                        Action::MarkLeft {
                            email: email.clone(),
                            at: departure_time(env),
                        },
                    );
                }
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
                kind: signal,
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
fn internal(env: &Envelope, known: &Known, cfg: &RulesConfig) -> Decision {
    match env.kind {
        Kind::Internal(InternalKind::ScreeningReject) => {
            sparkloop(env, known, SparkLoopCall::Reject)
        }
        Kind::Internal(InternalKind::ReconcileUnsubscribe) => unsubscribe(env, known, cfg),
        _ => Decision::Park(format!("unknown internal event {}", env.kind)),
    }
}

/// An address change the contact's record has not seen yet. An event older than the one that
/// recorded the current address changes nothing: an email never reverts to an older one.
fn email_change(env: &Envelope, known: &Known) -> Vec<Action> {
    if is_older_than_recorded(env, known) {
        return Vec::new();
    }
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

/// The event is older than the one that recorded the contact's current address.
pub fn is_older_than_recorded(env: &Envelope, known: &Known) -> bool {
    known
        .previous_email_at
        .is_some_and(|recorded| recorded > event_time(env))
}

fn loops(env: &Envelope, known: &Known, cfg: &RulesConfig) -> Decision {
    let Kind::Loops(kind) = env.kind else {
        return Decision::Ignore("no SparkLoop effect");
    };
    match kind.event() {
        LoopsEvent::Departure => unsubscribe(env, known, cfg),
        // Double opt-in: Loops sends both only after confirmation (docs/providers/loops.md,
        // section 3). A form that adds an existing contact to a list sends only the list event;
        // confirming a subscriber SparkLoop does not track answers 404, which is done.
        LoopsEvent::Signup if cfg.confirm_signups => confirm(env, known),
        LoopsEvent::Signup => Decision::Ignore("signup (CONFIRM_SIGNUPS is off)"),
        LoopsEvent::Engagement(signal) => {
            let send_id = LoopsPayload::parse(env.payload.get()).send_id();
            engagement(env, signal, send_id)
        }
        LoopsEvent::NoEffect => Decision::Ignore("no SparkLoop effect"),
    }
}

/// A signup confirm, unless the subscriber left at or after the signup; followed by a check
/// that no unsubscribe was marked while the confirm was in flight. When the subscriber has
/// left, the confirm is skipped and the unsubscribe said again: an earlier attempt of this
/// confirm may have reached SparkLoop after it (its check cut short by a failure or the
/// deadline), and a repeated unsubscribe is harmless.
fn confirm(env: &Envelope, known: &Known) -> Decision {
    let since = event_time(env);
    let (Some(email), Some(target)) = (email(env), target(env, known)) else {
        return sparkloop(env, known, SparkLoopCall::Confirm);
    };
    let check = Action::UnsubscribeIfLeftSince {
        target: target.clone(),
        email,
        since,
    };
    if known.left_at.is_some_and(|left| left >= since) {
        return Decision::Act(vec![check]);
    }
    Decision::Act(vec![
        Action::SparkLoop {
            target,
            call: SparkLoopCall::Confirm,
        },
        check,
    ])
}

fn esputnik(env: &Envelope, known: &Known, cfg: &RulesConfig) -> Decision {
    let Kind::Esputnik(kind) = env.kind else {
        return Decision::Ignore("no SparkLoop effect");
    };
    let activity = Activity::parse(env.payload.get());
    match kind.event() {
        EsputnikEvent::Departure if activity.is_email() => unsubscribe(env, known, cfg),
        EsputnikEvent::Undelivered if activity.is_email() && is_hard_bounce(&activity) => {
            unsubscribe(env, known, cfg)
        }
        EsputnikEvent::Undelivered => Decision::Ignore("soft bounce or not email"),
        EsputnikEvent::Engagement(signal) if activity.is_email() => {
            engagement(env, signal, activity.message_instance_id)
        }
        _ => Decision::Ignore("no SparkLoop effect"),
    }
}

/// eSputnik flags `hardBounce` only for blacklisted addresses; a permanent SMTP failure in
/// `statusDescription` is a hard bounce too (see `smtp_reply_is_permanent`).
fn is_hard_bounce(activity: &Activity) -> bool {
    activity.hard_bounce.unwrap_or(false)
        || activity
            .status_description
            .as_deref()
            .is_some_and(smtp_reply_is_permanent)
}

/// Reads an SMTP reply as the receiving server wrote it. An enhanced status code (RFC 3463,
/// `class.subject.detail`) anywhere decides by its class: 5 is permanent, 4 transient. Without
/// one, a basic reply code (RFC 5321: three digits, `5yz` permanent) decides only where a
/// reply stands: at the start of the text or right after a `:` or `;` ("smtp; 550 ...",
/// "said: 554 ..."), never a number inside prose ("timeout after 500 seconds"). Unsure means
/// soft: a false hard bounce would unsubscribe a paid referral.
pub fn smtp_reply_is_permanent(text: &str) -> bool {
    let tokens = || {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map(|t| t.trim_matches('.'))
            .filter(|t| !t.is_empty())
    };
    if let Some(class) = tokens().find_map(enhanced_status_class) {
        return class == b'5';
    }
    basic_reply_code(text).is_some_and(|code| code.starts_with('5'))
}

/// The first basic reply code (`4yz`/`5yz`, y in 0-5) standing where a reply starts.
fn basic_reply_code(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(2)).find_map(|i| {
        let code = text.get(i..i + 3)?;
        let digits = code.bytes().all(|b| b.is_ascii_digit());
        let reply_like = matches!(bytes[i], b'4' | b'5') && matches!(bytes[i + 1], b'0'..=b'5');
        let ends = bytes.get(i + 3).is_none_or(|b| !b.is_ascii_digit());
        let before = text[..i].trim_end();
        let starts = before.is_empty() || before.ends_with(':') || before.ends_with(';');
        (digits && reply_like && ends && starts).then_some(code)
    })
}

/// The class digit of an enhanced status code (`5.1.1`, `4.2.22`), if `token` is one.
fn enhanced_status_class(token: &str) -> Option<u8> {
    let parts: Vec<&str> = token.split('.').collect();
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    match parts.as_slice() {
        [class, subject, detail]
            if matches!(*class, "2" | "4" | "5") && digits(subject, 3) && digits(detail, 3) =>
        {
            Some(class.as_bytes()[0])
        }
        _ => None,
    }
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

    fn confirm_then_check(email: &str) -> Decision {
        Decision::Act(vec![
            Action::SparkLoop {
                target: email.into(),
                call: SparkLoopCall::Confirm,
            },
            Action::UnsubscribeIfLeftSince {
                target: email.into(),
                email: email.into(),
                since: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
        ])
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
                kind: signal,
                message: message.map(Into::into),
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
        })])
    }

    #[allow(clippy::too_many_lines)] // a table test: one row per case reads better than helpers
    #[test]
    fn esp_to_sparkloop_by_table() {
        use Provider::*;
        let on = RulesConfig {
            confirm_signups: true,
            ..Default::default()
        };
        let off = RulesConfig::default();
        let a = "a@b.c";
        type Case<'a> = (
            Provider,
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a RulesConfig,
            Decision,
        );
        let cases: Vec<Case> = vec![
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
                confirm_then_check(a),
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
                confirm_then_check(a),
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
            let mut e = env(
                Provider::Sparkloop,
                n.kind.as_str(),
                Some("a@b.c"),
                &payload,
            );
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
            ..Known::default()
        };
        let Decision::Act(actions) = decide(&e, &known, &RulesConfig::default()) else {
            panic!()
        };
        assert!(
            matches!(&actions[0], Action::State(StateWrite::Signal { entry, .. }) if entry.kind == "opens")
        );
        assert_eq!(
            actions[1],
            Action::SparkLoop {
                target: "old@b.c".into(),
                call: SparkLoopCall::ChangeEmail {
                    new_email: "new@b.c".into()
                }
            }
        );
        // same address in another case is no change; an ignored event still passes the change on
        let same = Known {
            previous_email: Some("NEW@b.c".into()),
            ..Known::default()
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

    #[test]
    fn permanent_smtp_replies_are_hard_bounces() {
        for (text, permanent) in [
            (
                "550 5.1.1 <a@x.io>: Recipient address rejected: User unknown",
                true,
            ),
            ("5.1.2 (bad destination system: no such domain)", true),
            ("smtp; 550 5.7.1 blocked", true),
            ("host mx.example said: 554 delivery error", true),
            ("Remote server replied: 5.4.4 unroutable", true),
            (
                "452 4.2.2 The email account that you tried to reach is over quota",
                false,
            ),
            ("4.2.2 mailbox full", false),
            ("421 try again later", false),
            // an enhanced code decides over a basic one that disagrees
            ("550 4.7.0 temporarily deferred", false),
            ("no code at all", false),
            ("", false),
            ("version 1.2.3.4 of the relay", false),
            ("error 1234 in 12.5.3", false),
            ("timeout after 500 seconds", false),
            ("connection lost after 452 bytes", false),
            ("smtp;550 mailbox unavailable", true),
        ] {
            assert_eq!(smtp_reply_is_permanent(text), permanent, "{text}");
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn an_email_change_never_reverts_to_an_older_address() {
        let mut e = env(Provider::Loops, "email.opened", Some("old@b.c"), "{}");
        e.occurred_at = Some(at(1_000));
        let recorded_later = Known {
            previous_email: Some("new@b.c".into()),
            previous_email_at: Some(at(2_000)),
            ..Known::default()
        };
        let Decision::Act(actions) = decide(&e, &recorded_later, &RulesConfig::default()) else {
            panic!()
        };
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::SparkLoop {
                    call: SparkLoopCall::ChangeEmail { .. },
                    ..
                }
            )),
            "an older event changes no address: {actions:?}"
        );
        assert!(is_older_than_recorded(&e, &recorded_later));
        let recorded_earlier = Known {
            previous_email_at: Some(at(500)),
            ..recorded_later
        };
        assert!(!is_older_than_recorded(&e, &recorded_earlier));
        let Decision::Act(actions) = decide(&e, &recorded_earlier, &RulesConfig::default()) else {
            panic!()
        };
        assert!(
            matches!(actions.last(), Some(Action::SparkLoop { call: SparkLoopCall::ChangeEmail { new_email }, .. }) if new_email == "old@b.c")
        );
    }

    #[test]
    fn an_unsubscribe_reaches_the_address_sparkloop_knows() {
        let cfg = RulesConfig::default();
        // a change and an unsubscribe in one event: the unsubscribe first, on the old address,
        // so a refused change (the new address taken) cannot hold it back
        let mut e = env(Provider::Loops, "email.unsubscribed", Some("new@b.c"), "{}");
        e.occurred_at = Some(at(3_000));
        let changed = Known {
            previous_email: Some("old@b.c".into()),
            previous_email_at: Some(at(1_000)),
            ..Known::default()
        };
        let Decision::Act(actions) = decide(&e, &changed, &cfg) else {
            panic!()
        };
        assert_eq!(
            actions[0],
            Action::SparkLoop {
                target: "old@b.c".into(),
                call: SparkLoopCall::Unsubscribe
            }
        );
        assert!(matches!(
            actions.last(),
            Some(Action::SparkLoop {
                call: SparkLoopCall::ChangeEmail { .. },
                ..
            })
        ));
        // an older unsubscribe, retried after a newer event moved SparkLoop to the new
        // address: it unsubscribes the address SparkLoop has now, not the stale one
        let mut old = env(Provider::Loops, "email.unsubscribed", Some("old@b.c"), "{}");
        old.occurred_at = Some(at(1_000));
        let moved = Known {
            previous_email: Some("new@b.c".into()),
            previous_email_at: Some(at(2_000)),
            ..Known::default()
        };
        let Decision::Act(actions) = decide(&old, &moved, &cfg) else {
            panic!()
        };
        assert_eq!(
            actions[0],
            Action::SparkLoop {
                target: "new@b.c".into(),
                call: SparkLoopCall::Unsubscribe
            }
        );
        assert!(!actions.iter().any(|a| matches!(
            a,
            Action::SparkLoop {
                call: SparkLoopCall::ChangeEmail { .. },
                ..
            }
        )));
    }

    #[test]
    fn a_reconcile_unsubscribe_marks_the_departure_when_it_was_found() {
        let cfg = RulesConfig {
            confirm_signups: true,
            ..RulesConfig::default()
        };
        let mut repair = env(
            Provider::Sparkbridge,
            InternalKind::ReconcileUnsubscribe.as_str(),
            Some("a@b.c"),
            "{}",
        );
        repair.occurred_at = Some(at(10)); // the referral's creation
        let Decision::Act(actions) = decide(&repair, &Known::default(), &cfg) else {
            panic!()
        };
        assert_eq!(
            actions[0],
            Action::MarkLeft {
                email: "a@b.c".into(),
                at: repair.received_at
            }
        );
    }

    #[test]
    fn a_signup_confirm_never_overtakes_a_later_unsubscribe() {
        let cfg = RulesConfig {
            confirm_signups: true,
            ..RulesConfig::default()
        };
        let mut signup = env(Provider::Loops, "contact.created", Some("a@b.c"), "{}");
        signup.occurred_at = Some(at(1_000));
        // left after the signup: the confirm is skipped
        for left in [at(1_000), at(5_000)] {
            let known = Known {
                left_at: Some(left),
                ..Known::default()
            };
            assert_eq!(
                decide(&signup, &known, &cfg),
                Decision::Act(vec![Action::UnsubscribeIfLeftSince {
                    target: "a@b.c".into(),
                    email: "a@b.c".into(),
                    since: at(1_000)
                }]),
                "no confirm; the unsubscribe is said again"
            );
        }
        // left before it (then signed up again), or never: confirm, then check again
        for left in [None, Some(at(10))] {
            let known = Known {
                left_at: left,
                ..Known::default()
            };
            assert_eq!(
                decide(&signup, &known, &cfg),
                Decision::Act(vec![
                    Action::SparkLoop {
                        target: "a@b.c".into(),
                        call: SparkLoopCall::Confirm
                    },
                    Action::UnsubscribeIfLeftSince {
                        target: "a@b.c".into(),
                        email: "a@b.c".into(),
                        since: at(1_000)
                    },
                ])
            );
        }
        // an unsubscribe marks its departure before calling SparkLoop
        let mut unsub = env(Provider::Loops, "email.unsubscribed", Some("a@b.c"), "{}");
        unsub.occurred_at = Some(at(2_000));
        let Decision::Act(actions) = decide(&unsub, &Known::default(), &cfg) else {
            panic!()
        };
        assert_eq!(
            actions[0],
            Action::MarkLeft {
                email: "a@b.c".into(),
                at: at(2_000)
            }
        );
        assert!(matches!(
            &actions[1],
            Action::SparkLoop {
                call: SparkLoopCall::Unsubscribe,
                ..
            }
        ));
        // without signup confirms there is nothing to overtake: no extra write
        let Decision::Act(actions) = decide(&unsub, &Known::default(), &RulesConfig::default())
        else {
            panic!()
        };
        assert!(!actions.iter().any(|a| matches!(a, Action::MarkLeft { .. })));
        assert_eq!(
            reads(&signup, &cfg, false),
            Reads {
                contact: false,
                left_at: true
            }
        );
        assert_eq!(reads(&unsub, &cfg, false), Reads::default());
    }
}
