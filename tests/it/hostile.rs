//! The three ingest handlers under hostile requests: arbitrary bodies, odd and repeated
//! headers, forged, replayed, misplaced or missing credentials, every method.
//!
//! - Wrong or missing auth: always 401, never 5xx, never a panic, and NOTHING queued (main
//!   queue and DLQ). 10,000 cases per provider on the in-memory queue (`MemoryQueue`, the
//!   same `EventQueue` port the SQS adapter implements), plus 200 cases over real SQS (moto).
//! - Valid auth: Loops/SparkLoop answer 200 with exactly one message for any JSON body (an
//!   unknown shape as kind `unknown`) and 400 with none only for bytes that are not JSON;
//!   eSputnik answers 200 and queues one message per array element (parked or not) whatever
//!   the body. Never 5xx.
//! - Every queued message is one SQS accepts: no character it refuses in the body or in an
//!   attribute value.
//! - Every answer and every log line: no configured secret, no unmasked email address, one
//!   line per request even with control characters in the input.
//!
//! `PROPTEST_CASES` overrides the number of cases, as in the other property tests.

#[path = "../../shared/tests/it/hostile_inputs.rs"]
mod hostile_inputs;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_sqs::Client as SqsClient;
use base64::Engine;
use hostile_inputs::*;
use lambda_http::http::{HeaderName, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use sparkbridge::adapters::memory_queue::MemoryQueue;
use sparkbridge::adapters::sqs::{SqsQueue, DEFAULT_MAX_MESSAGE_BYTES};
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::esputnik::{self, WebhookAuth};
use sparkbridge::core::loops::{self, SigningKeys};
use sparkbridge::core::secret::Secret;
use sparkbridge::core::sparkloop;
use sparkbridge::ingest::esputnik::EsputnikIngest;
use sparkbridge::ingest::loops::LoopsIngest;
use sparkbridge::ingest::sparkloop::SparkloopIngest;
use sparkbridge::ports::EventQueue;
use sparkbridge_tests::*;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::util::SubscriberInitExt;

const AUTH_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
    "sparkloop-token",
];

/// Every configured credential: none may appear in an answer or a log line.
fn secrets() -> Vec<&'static str> {
    vec![
        LOOPS_SECRET,
        LOOPS_SECRET.trim_start_matches("whsec_"),
        ESPUTNIK_PASSWORD,
        ESPUTNIK_TOKEN,
        SPARKLOOP_TOKEN,
    ]
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

fn sample_text(provider: Provider) -> &'static str {
    static TEXTS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        [
            ("loops", "events/loops/email.unsubscribed.json"),
            ("esputnik", "events/esputnik/batch.json"),
            ("sparkloop", "events/sparkloop/new_referral.json"),
        ]
        .into_iter()
        .map(|(p, f)| (p, std::fs::read_to_string(repo_root().join(f)).unwrap()))
        .collect()
    });
    &texts[provider.as_str()]
}

/// The provider's API Gateway v2 sample with every credential removed and `body` in place.
fn bare_request(provider: Provider, body: &[u8], empty_variant: bool) -> Request {
    let mut req = lambda_http::request::from_str(sample_text(provider)).unwrap();
    for h in AUTH_HEADERS {
        req.headers_mut().remove(*h);
    }
    if body.is_empty() && empty_variant {
        *req.body_mut() = Body::Empty;
    } else {
        set_body(&mut req, body.to_vec());
    }
    req.with_query_string_parameters(HashMap::<String, String>::new())
}

fn header_name(exclude_auth: bool) -> BoxedStrategy<HeaderName> {
    let listed: Vec<&'static str> = [
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "host",
        "x-forwarded-for",
        "x-amzn-trace-id",
        "cookie",
        "token",
        "sparkloop_token",
        "x-api-key",
        "webhook-signature-v2",
    ]
    .into_iter()
    .chain(
        if exclude_auth { &[][..] } else { AUTH_HEADERS }
            .iter()
            .copied(),
    )
    .collect();
    prop_oneof![
        3 => proptest::sample::select(listed).prop_map(HeaderName::from_static),
        1 => "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,24}"
            .prop_filter_map("a legal header name", move |n| {
                let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
                (!exclude_auth || !AUTH_HEADERS.contains(&name.as_str())).then_some(name)
            }),
    ]
    .boxed()
}

/// Any header value HTTP allows: visible ASCII, tab, space and obs-text (bytes >= 0x80,
/// which makes the value non-UTF-8), including the odd characters' UTF-8 bytes.
fn header_value() -> BoxedStrategy<HeaderValue> {
    prop_oneof![
        proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..80),
        odd_string(40).prop_map(|s| s
            .into_bytes()
            .into_iter()
            .map(|b| if (b < 0x20 && b != b'\t') || b == 0x7f {
                b'?'
            } else {
                b
            })
            .collect()),
    ]
    .prop_map(|v| HeaderValue::from_bytes(&v).expect("only legal bytes"))
    .boxed()
}

fn junk_headers(exclude_auth: bool) -> BoxedStrategy<Vec<(HeaderName, HeaderValue)>> {
    proptest::collection::vec((header_name(exclude_auth), header_value()), 0..6).boxed()
}

fn add_headers(req: &mut Request, headers: &[(HeaderName, HeaderValue)]) {
    for (k, v) in headers {
        req.headers_mut().append(k.clone(), v.clone());
    }
}

fn set_header(req: &mut Request, name: &'static str, value: &str) {
    req.headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
}

fn append_header(req: &mut Request, name: &'static str, value: &str) {
    req.headers_mut()
        .append(name, HeaderValue::from_str(value).unwrap());
}

fn with_query(req: Request, params: &[(&str, &str)]) -> Request {
    let map: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    req.with_query_string_parameters(map)
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn loops_keys() -> SigningKeys {
    SigningKeys::parse(LOOPS_SECRET).unwrap()
}

/// Signs like Loops: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
fn loops_sign(req: &mut Request, key: &SigningKeys, id: &str, ts: i64, body: &[u8]) {
    set_header(req, "webhook-id", id);
    set_header(req, "webhook-timestamp", &ts.to_string());
    set_header(req, "webhook-signature", &key.sign(id, ts, body));
}

// ---------------------------------------------------------------------------------------
// Attacks: every way a request can fail authentication
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Attack {
    /// No credentials at all.
    Nothing,
    /// Each Loops header absent or set to any value.
    LoopsJunk([Option<HeaderValue>; 3]),
    /// A genuine signature, for another body.
    LoopsOtherBody(Vec<u8>),
    /// A genuine signature whose timestamp is `skew` seconds away (|skew| > 5 min).
    LoopsReplay(i64),
    /// A genuine signature with one of the three headers repeated (same or other value).
    LoopsRepeated(usize, bool),
    /// Signed with a key that is not ours.
    LoopsWrongKey,
    /// Signed for another webhook-id.
    LoopsOtherId,
    /// A genuine signature with one header removed.
    LoopsMissing(usize),
    /// A genuine signature, damaged: truncated, other version tag, case changed.
    LoopsMangled(usize),
    /// Any Authorization value.
    EspJunkAuthorization(HeaderValue),
    /// Basic credentials that are not ours.
    EspWrongBasic(String, String),
    /// A `?token=` that is not ours.
    EspWrongToken(String),
    /// Our Basic credentials, sent twice (ambiguous: refused).
    EspRepeatedAuthorization,
    /// Our token or credentials in the wrong place or scheme.
    EspMisplaced(usize),
    /// Any SparkLoop-Token value.
    SlJunk(HeaderValue),
    /// Our token with one change.
    SlNear(usize, char),
    /// Our token, sent twice.
    SlRepeated,
    /// Our token in the wrong place.
    SlMisplaced(usize),
}

fn loops_attack() -> BoxedStrategy<Attack> {
    prop_oneof![
        Just(Attack::Nothing),
        proptest::array::uniform3(proptest::option::of(header_value())).prop_map(Attack::LoopsJunk),
        hostile_body().prop_map(Attack::LoopsOtherBody),
        prop_oneof![310i64..100_000_000, -100_000_000i64..-310].prop_map(Attack::LoopsReplay),
        (0usize..3, any::<bool>()).prop_map(|(i, same)| Attack::LoopsRepeated(i, same)),
        Just(Attack::LoopsWrongKey),
        Just(Attack::LoopsOtherId),
        (0usize..3).prop_map(Attack::LoopsMissing),
        (0usize..5).prop_map(Attack::LoopsMangled),
    ]
    .boxed()
}

fn esputnik_attack() -> BoxedStrategy<Attack> {
    let cred = || {
        prop_oneof![
            odd_string(20),
            Just(ESPUTNIK_USER.to_string()),
            Just(ESPUTNIK_PASSWORD.to_string())
        ]
    };
    prop_oneof![
        Just(Attack::Nothing),
        header_value().prop_map(Attack::EspJunkAuthorization),
        (cred(), cred())
            .prop_filter("not our credentials", |(u, p)| (u.as_str(), p.as_str())
                != (ESPUTNIK_USER, ESPUTNIK_PASSWORD))
            .prop_map(|(u, p)| Attack::EspWrongBasic(u, p)),
        prop_oneof![
            odd_string(40),
            Just(ESPUTNIK_TOKEN.to_uppercase()),
            Just(format!("{ESPUTNIK_TOKEN} ")),
            Just(ESPUTNIK_TOKEN[1..].to_string())
        ]
        .prop_filter("not our token", |t| t != ESPUTNIK_TOKEN)
        .prop_map(Attack::EspWrongToken),
        Just(Attack::EspRepeatedAuthorization),
        (0usize..6).prop_map(Attack::EspMisplaced),
    ]
    .boxed()
}

fn sparkloop_attack() -> BoxedStrategy<Attack> {
    prop_oneof![
        Just(Attack::Nothing),
        header_value().prop_map(Attack::SlJunk),
        (0usize..6, proptest::char::range('!', '~')).prop_map(|(i, c)| Attack::SlNear(i, c)),
        Just(Attack::SlRepeated),
        (0usize..4).prop_map(Attack::SlMisplaced),
    ]
    .boxed()
}

/// Builds the forged request: `body` with `attack`'s credentials and `junk` headers.
fn forge(
    provider: Provider,
    attack: &Attack,
    body: &[u8],
    junk: &[(HeaderName, HeaderValue)],
    empty_variant: bool,
) -> Request {
    let mut req = bare_request(provider, body, empty_variant);
    let now = chrono_now();
    let keys = loops_keys();
    let names = ["webhook-id", "webhook-timestamp", "webhook-signature"];
    let mut query: Vec<(&str, &str)> = Vec::new();
    match attack {
        Attack::Nothing => {}
        Attack::LoopsJunk(values) => {
            for (name, v) in names.iter().zip(values) {
                if let Some(v) = v {
                    req.headers_mut().insert(*name, v.clone());
                }
            }
        }
        Attack::LoopsOtherBody(other) => {
            let mut other = other.clone();
            if other == body {
                other.push(b' ');
            }
            loops_sign(&mut req, &keys, "msg_forged", now, &other);
        }
        Attack::LoopsReplay(skew) => loops_sign(&mut req, &keys, "msg_replayed", now + skew, body),
        Attack::LoopsRepeated(i, same) => {
            loops_sign(&mut req, &keys, "msg_1", now, body);
            let value = if *same {
                req.headers()[names[*i]].to_str().unwrap().to_string()
            } else {
                ["msg_2", "0", "v1,AAAA"][*i].to_string()
            };
            append_header(&mut req, names[*i], &value);
        }
        Attack::LoopsWrongKey => {
            let other = SigningKeys::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
            loops_sign(&mut req, &other, "msg_1", now, body);
        }
        Attack::LoopsOtherId => {
            loops_sign(&mut req, &keys, "msg_1", now, body);
            set_header(&mut req, "webhook-id", "msg_2");
        }
        Attack::LoopsMissing(i) => {
            loops_sign(&mut req, &keys, "msg_1", now, body);
            req.headers_mut().remove(names[*i]);
        }
        Attack::LoopsMangled(kind) => {
            let good = keys.sign("msg_1", now, body);
            let bad = match kind {
                0 => good[..good.len() - 2].to_string(),
                1 => good.replacen("v1,", "v2,", 1),
                2 => good.replacen("v1,", "", 1),
                3 => good.to_uppercase(),
                _ => format!("{good}AAAA"),
            };
            loops_sign(&mut req, &keys, "msg_1", now, body);
            set_header(&mut req, "webhook-signature", &bad);
        }
        Attack::EspJunkAuthorization(v) => {
            req.headers_mut().insert("authorization", v.clone());
        }
        Attack::EspWrongBasic(u, p) => {
            let value = basic(u, p);
            if let Ok(v) = HeaderValue::from_str(&value) {
                req.headers_mut().insert("authorization", v);
            }
        }
        Attack::EspWrongToken(t) => query.push(("token", t.as_str())),
        Attack::EspRepeatedAuthorization => {
            let good = basic(ESPUTNIK_USER, ESPUTNIK_PASSWORD);
            append_header(&mut req, "authorization", &good);
            append_header(&mut req, "authorization", &good);
        }
        Attack::EspMisplaced(kind) => match kind {
            0 => set_header(
                &mut req,
                "authorization",
                &format!("Bearer {ESPUTNIK_TOKEN}"),
            ),
            1 => set_header(&mut req, "token", ESPUTNIK_TOKEN),
            2 => query.push(("Token", ESPUTNIK_TOKEN)),
            3 => query.push(("password", ESPUTNIK_PASSWORD)),
            4 => set_header(
                &mut req,
                "authorization",
                &basic(ESPUTNIK_USER, ESPUTNIK_PASSWORD).replacen("Basic", "Digest", 1),
            ),
            _ => set_header(
                &mut req,
                "authorization",
                &basic(ESPUTNIK_PASSWORD, ESPUTNIK_USER),
            ),
        },
        Attack::SlJunk(v) => {
            req.headers_mut().insert("sparkloop-token", v.clone());
        }
        Attack::SlNear(kind, c) => {
            let t = SPARKLOOP_TOKEN;
            let mut near = match kind {
                0 => t[..t.len() - 1].to_string(),
                1 => format!("{t}{c}"),
                2 => format!("{c}{t}"),
                3 => t.to_uppercase(),
                4 => format!("{t} "),
                _ => format!("{}{c}{}", &t[..3], &t[4..]),
            };
            if near == t {
                near.push('x');
            }
            set_header(&mut req, "sparkloop-token", &near);
        }
        Attack::SlRepeated => {
            append_header(&mut req, "sparkloop-token", SPARKLOOP_TOKEN);
            append_header(&mut req, "sparkloop-token", SPARKLOOP_TOKEN);
        }
        Attack::SlMisplaced(kind) => match kind {
            0 => set_header(
                &mut req,
                "authorization",
                &format!("Bearer {SPARKLOOP_TOKEN}"),
            ),
            1 => set_header(&mut req, "sparkloop_token", SPARKLOOP_TOKEN),
            2 => set_header(&mut req, "x-sparkloop-token", SPARKLOOP_TOKEN),
            _ => query.push(("token", SPARKLOOP_TOKEN)),
        },
    }
    add_headers(&mut req, junk);
    if query.is_empty() {
        req
    } else {
        with_query(req, &query)
    }
}

/// A correctly authenticated request (plus junk headers that are not auth headers).
fn genuine(
    provider: Provider,
    variant: usize,
    body: &[u8],
    junk: &[(HeaderName, HeaderValue)],
    empty_variant: bool,
) -> Request {
    let mut req = bare_request(provider, body, empty_variant);
    add_headers(&mut req, junk);
    match provider {
        Provider::Loops => {
            loops_sign(
                &mut req,
                &loops_keys(),
                &format!("msg_{variant}"),
                chrono_now(),
                body,
            );
            req
        }
        Provider::Esputnik => match variant % 3 {
            0 => {
                set_header(
                    &mut req,
                    "authorization",
                    &basic(ESPUTNIK_USER, ESPUTNIK_PASSWORD),
                );
                req
            }
            1 => {
                let v = basic(ESPUTNIK_USER, ESPUTNIK_PASSWORD).replacen("Basic", " bASIC ", 1);
                set_header(&mut req, "authorization", &v);
                req
            }
            _ => with_query(req, &[("token", ESPUTNIK_TOKEN), ("utm_source", "x")]),
        },
        Provider::Sparkloop => {
            set_header(&mut req, "sparkloop-token", SPARKLOOP_TOKEN);
            req
        }
        Provider::Sparkbridge => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------
// Running a request: in-memory queue, captured logs
// ---------------------------------------------------------------------------------------

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
}

fn block_on<F: Future>(f: F) -> F::Output {
    RT.with(|rt| rt.block_on(f))
}

struct Handlers {
    loops: LoopsIngest,
    esputnik: EsputnikIngest,
    sparkloop: SparkloopIngest,
}

fn handlers(queue: Arc<dyn EventQueue>) -> Handlers {
    let auth = WebhookAuth::new(
        Some(Secret::new(ESPUTNIK_USER)),
        Some(Secret::new(ESPUTNIK_PASSWORD)),
        Some(Secret::new(ESPUTNIK_TOKEN)),
        false,
    )
    .unwrap();
    Handlers {
        loops: LoopsIngest::new(queue.clone(), loops_keys()),
        esputnik: EsputnikIngest::new(queue.clone(), auth, chrono_tz::Tz::UTC),
        sparkloop: SparkloopIngest::new(queue, Secret::new(SPARKLOOP_TOKEN)),
    }
}

impl Handlers {
    async fn handle(&self, provider: Provider, req: Request) -> lambda_http::Response<Body> {
        match provider {
            Provider::Loops => self.loops.handle(req).await,
            Provider::Esputnik => self.esputnik.handle(req).await,
            Provider::Sparkloop => self.sparkloop.handle(req).await,
            Provider::Sparkbridge => unreachable!(),
        }
    }
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Outcome {
    status: StatusCode,
    body: Vec<u8>,
    logs: String,
    queued: Vec<String>,
    attributes: Vec<std::collections::BTreeMap<String, String>>,
    dlq: usize,
}

/// Runs one request against a fresh in-memory queue, capturing the handler's log lines with
/// the plain-text formatter (the one where a raw newline would forge a second entry).
fn run(provider: Provider, req: Request) -> Outcome {
    let queue = Arc::new(MemoryQueue::new(
        Duration::from_secs(300),
        5,
        DEFAULT_MAX_MESSAGE_BYTES,
    ));
    let h = handlers(queue.clone());
    let buf = LogBuffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(LevelFilter::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let resp = {
        let _guard = subscriber.set_default();
        block_on(h.handle(provider, req))
    };
    let (queued, attributes): (Vec<_>, Vec<_>) = queue
        .receive(usize::MAX)
        .into_iter()
        .map(|m| (m.body, m.attributes))
        .unzip();
    assert_eq!(queue.depth(), queued.len());
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).expect("logs are UTF-8");
    Outcome {
        status: resp.status(),
        body: resp.body().to_vec(),
        logs,
        queued,
        attributes,
        dlq: queue.dlq().len(),
    }
}

/// What holds for every answer: no 5xx, no secret in the answer or the logs, at most one
/// log line per request, error answers are the documented JSON.
fn common_checks(o: &Outcome, emails: &[String]) -> Result<(), TestCaseError> {
    prop_assert!(!o.status.is_server_error(), "never 5xx: {}", o.status);
    for body in &o.queued {
        prop_assert!(sqs_accepts(body), "SQS would refuse the body: {:?}", body);
    }
    for attrs in &o.attributes {
        for (k, v) in attrs {
            prop_assert!(sqs_accepts(v), "SQS would refuse {}={:?}", k, v);
        }
    }
    let answer = String::from_utf8_lossy(&o.body);
    for s in secrets() {
        prop_assert!(!answer.contains(s), "secret in the answer: {}", answer);
        prop_assert!(!o.logs.contains(s), "secret in the logs: {}", o.logs);
    }
    prop_assert!(
        o.logs.matches('\n').count() <= 1,
        "one log line per request: {:?}",
        o.logs
    );
    for e in emails {
        // counted in characters: "@" and one 4-byte character shows whole in its mask ("***@𐀀***")
        if e.contains('@') && e.chars().count() >= 5 && !e.contains('*') {
            prop_assert!(
                !o.logs.contains(e.as_str()),
                "unmasked email {:?} in the logs: {}",
                e,
                o.logs
            );
        }
    }
    if o.status.is_client_error() {
        let v: serde_json::Value = serde_json::from_slice(&o.body)
            .map_err(|e| TestCaseError::fail(format!("error answers are JSON: {e}")))?;
        prop_assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()));
        prop_assert!(v["reason"].is_string());
        // the one refusal that keeps its event: over the queue's size, queued in reference form
        let kept = usize::from(v["reason"] == "too_large_kept");
        prop_assert!(
            o.queued.len() == kept && o.dlq == 0,
            "refused requests queue nothing"
        );
    }
    Ok(())
}

fn refused(o: &Outcome) -> Result<(), TestCaseError> {
    common_checks(o, &[])?;
    prop_assert_eq!(
        o.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&o.body)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.body).unwrap();
    prop_assert_eq!(&v["reason"], "unauthorized");
    prop_assert!(o.queued.is_empty(), "NOTHING queued");
    prop_assert_eq!(o.dlq, 0, "nothing on the DLQ");
    prop_assert_eq!(
        o.logs.matches('\n').count(),
        1,
        "the refusal is logged once"
    );
    Ok(())
}

fn envelopes(o: &Outcome) -> Vec<Envelope> {
    o.queued
        .iter()
        .map(|b| serde_json::from_str(b).expect("queued messages are envelopes"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Properties (in-memory queue)
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(cases()))]

    #[test]
    fn loops_refuses_forged_and_replayed_requests(
        body in hostile_body(),
        attack in loops_attack(),
        junk in junk_headers(false),
        empty in any::<bool>(),
    ) {
        refused(&run(Provider::Loops, forge(Provider::Loops, &attack, &body, &junk, empty)))?;
    }

    #[test]
    fn esputnik_refuses_wrong_credentials(
        body in hostile_body(),
        attack in esputnik_attack(),
        junk in junk_headers(false),
        empty in any::<bool>(),
    ) {
        // junk may add an Authorization header of its own: still not our credentials
        refused(&run(Provider::Esputnik, forge(Provider::Esputnik, &attack, &body, &junk, empty)))?;
    }

    #[test]
    fn sparkloop_refuses_wrong_tokens(
        body in hostile_body(),
        attack in sparkloop_attack(),
        junk in junk_headers(false),
        empty in any::<bool>(),
    ) {
        refused(&run(Provider::Sparkloop, forge(Provider::Sparkloop, &attack, &body, &junk, empty)))?;
    }

    #[test]
    fn other_methods_queue_nothing(
        p in 0usize..3,
        method in prop_oneof![
            proptest::sample::select(vec![Method::GET, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD, Method::OPTIONS, Method::TRACE, Method::CONNECT]),
            "[A-Z]{1,12}".prop_filter_map("a custom method", |m| Method::from_bytes(m.as_bytes()).ok().filter(|m| *m != Method::POST)),
        ],
        authenticated in any::<bool>(),
        body in hostile_body(),
        junk in junk_headers(false),
    ) {
        let provider = [Provider::Loops, Provider::Esputnik, Provider::Sparkloop][p];
        let mut req = if authenticated {
            genuine(provider, 0, &body, &junk, false)
        } else {
            forge(provider, &Attack::Nothing, &body, &junk, false)
        };
        *req.method_mut() = method.clone();
        let o = run(provider, req);
        common_checks(&o, &[])?;
        prop_assert!(o.queued.is_empty() && o.dlq == 0);
        if provider == Provider::Esputnik && method == Method::GET {
            // eSputnik checks the URL with a GET when the webhook is saved
            prop_assert_eq!(o.status, StatusCode::OK);
            prop_assert!(o.body.is_empty());
        } else {
            prop_assert_eq!(o.status, StatusCode::METHOD_NOT_ALLOWED);
        }
    }

    #[test]
    fn loops_with_a_valid_signature_answers_as_the_parser_decides(
        body in hostile_body(),
        junk in junk_headers(true),
        n in 0usize..1_000_000,
        empty in any::<bool>(),
    ) {
        let o = run(Provider::Loops, genuine(Provider::Loops, n, &body, &junk, empty));
        let parsed = loops::parse(&body);
        let emails: Vec<String> = parsed.as_ref().ok().and_then(|p| p.subscriber.email.clone()).into_iter().collect();
        common_checks(&o, &emails)?;
        prop_assert_eq!(parsed.is_ok(), is_json(&body), "any JSON is kept, only other bytes refused");
        match parsed {
            Ok(ev) => {
                prop_assert_eq!(o.status, StatusCode::OK);
                let envs = envelopes(&o);
                prop_assert_eq!(envs.len(), 1);
                prop_assert_eq!(&envs[0].kind, &ev.kind);
                prop_assert_eq!(envs[0].dedupe_id.clone(), format!("msg_{n}"), "dedupe id is webhook-id");
                prop_assert_eq!(envs[0].payload.get(), escaped(ev.payload.get()));
            }
            Err(_) => {
                prop_assert_eq!(o.status, StatusCode::BAD_REQUEST);
                prop_assert!(o.queued.is_empty());
            }
        }
    }

    #[test]
    fn esputnik_with_valid_auth_always_answers_200_and_keeps_every_element(
        body in prop_oneof![3 => hostile_body(), 1 => json_array().prop_map(|(_, b)| b.into_bytes())],
        junk in junk_headers(true),
        variant in 0usize..3,
        empty in any::<bool>(),
    ) {
        let o = run(Provider::Esputnik, genuine(Provider::Esputnik, variant, &body, &junk, empty));
        let els = esputnik::split(&body, chrono_tz::Tz::UTC);
        let emails: Vec<String> = els.iter().filter_map(|e| e.event.subscriber.email.clone()).collect();
        common_checks(&o, &emails)?;
        prop_assert_eq!(o.status, StatusCode::OK, "{}", String::from_utf8_lossy(&o.body));
        prop_assert_eq!(o.queued.len(), els.len(), "one message per element, parked or not");
        let is_empty_array = std::str::from_utf8(&body).ok()
            .and_then(|t| serde_json::from_str::<Vec<serde::de::IgnoredAny>>(t).ok())
            .is_some_and(|v| v.is_empty());
        prop_assert!(!o.queued.is_empty() || is_empty_array, "only `[]` queues nothing");
        let envs = envelopes(&o);
        let mut got: Vec<&str> = envs.iter().map(|e| e.dedupe_id.as_str()).collect();
        let mut want: Vec<&str> = els.iter().map(|e| e.dedupe_id.as_str()).collect();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn sparkloop_with_the_token_answers_as_the_parser_decides(
        body in hostile_body(),
        junk in junk_headers(true),
        empty in any::<bool>(),
    ) {
        let o = run(Provider::Sparkloop, genuine(Provider::Sparkloop, 0, &body, &junk, empty));
        let parsed = sparkloop::parse(&body);
        let emails: Vec<String> = parsed.as_ref().ok().and_then(|(_, p)| p.subscriber.email.clone()).into_iter().collect();
        common_checks(&o, &emails)?;
        prop_assert_eq!(parsed.is_ok(), is_json(&body), "any JSON is kept, only other bytes refused");
        match parsed {
            Ok((id, ev)) => {
                prop_assert_eq!(o.status, StatusCode::OK);
                prop_assert!(o.body.is_empty(), "SparkLoop wants a blank 200");
                let envs = envelopes(&o);
                prop_assert_eq!(envs.len(), 1);
                prop_assert_eq!(&envs[0].dedupe_id, &id);
                prop_assert_eq!(&envs[0].kind, &ev.kind);
                prop_assert_eq!(envs[0].payload.get(), escaped(ev.payload.get()));
            }
            Err(_) => {
                prop_assert_eq!(o.status, StatusCode::BAD_REQUEST);
                prop_assert!(o.queued.is_empty());
            }
        }
    }
}

/// Bodies of 1-5 MB: every shape for every provider once, then a handful of random cases,
/// run by a `TestRunner` of their own because the `proptest!` macro lets `PROPTEST_CASES`
/// override any configured count.
#[test]
fn huge_bodies_never_5xx_and_are_all_or_nothing() {
    for shape in 0..HUGE_SHAPES {
        for provider in [Provider::Loops, Provider::Esputnik, Provider::Sparkloop] {
            let body = huge(1_200_000, shape, 7);
            if let Err(e) = check_huge_body(provider, &body) {
                panic!("shape {shape}, {provider:?}: {e}");
            }
        }
    }
    let mut runner = TestRunner::new(config(cases().min(6)));
    runner
        .run(&(huge_body(), 0usize..3), |(body, p)| {
            check_huge_body(
                [Provider::Loops, Provider::Esputnik, Provider::Sparkloop][p],
                &body,
            )
        })
        .unwrap();
}

fn check_huge_body(provider: Provider, body: &[u8]) -> Result<(), TestCaseError> {
    // without credentials: refused before the body is read
    refused(&run(
        provider,
        forge(provider, &Attack::Nothing, body, &[], false),
    ))?;
    // with credentials: queued (an event over the queue's size as its parked reference
    // form), or refused whole when it is not JSON (never eSputnik, which parks what it
    // cannot read)
    let o = run(provider, genuine(provider, 1, body, &[], false));
    common_checks(&o, &[])?;
    match o.status {
        // Loops/SparkLoop: an event over the queue's size is kept and answered 413
        StatusCode::OK | StatusCode::PAYLOAD_TOO_LARGE => {
            prop_assert!(o.status == StatusCode::OK || provider != Provider::Esputnik);
            let want = match provider {
                Provider::Esputnik => esputnik::split(body, chrono_tz::Tz::UTC).len(),
                _ => 1,
            };
            prop_assert_eq!(o.queued.len(), want);
            if provider != Provider::Esputnik {
                // the event is the body's JSON value, without the whitespace around it:
                // over the queue's size, queued as its parked reference form; a small
                // value padded with whitespace, queued whole
                let env = &envelopes(&o)[0];
                let value = std::str::from_utf8(body)
                    .expect("an accepted body is UTF-8")
                    .trim_matches([' ', '\t', '\n', '\r']);
                if value.len() > DEFAULT_MAX_MESSAGE_BYTES {
                    prop_assert_eq!(o.status, StatusCode::PAYLOAD_TOO_LARGE);
                    prop_assert!(env
                        .parked
                        .as_deref()
                        .is_some_and(|r| r.contains("over the queue's message size")));
                    let size = env.payload_value()["oversize"]["bytes"].as_u64();
                    prop_assert_eq!(size, Some(value.len() as u64));
                } else {
                    prop_assert_eq!(o.status, StatusCode::OK);
                    prop_assert_eq!(env.payload.get(), escaped(value));
                }
            }
        }
        StatusCode::BAD_REQUEST => {
            prop_assert!(o.queued.is_empty());
            prop_assert!(provider != Provider::Esputnik);
            prop_assert!(!is_json(body), "only bytes that are not JSON are refused");
        }
        other => prop_assert!(false, "unexpected {}", other),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The same over real SQS (moto): 200 cases of refused requests, then a control
// ---------------------------------------------------------------------------------------

#[test]
fn over_sqs_refused_requests_queue_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sqs, url) = rt.block_on(async {
        let sqs = SqsClient::new(&sdk_config().await);
        let url = fresh_queue(&sqs).await;
        (sqs, url)
    });
    let queue: Arc<dyn EventQueue> = Arc::new(SqsQueue::new(
        sqs.clone(),
        url.clone(),
        DEFAULT_MAX_MESSAGE_BYTES,
    ));
    let h = handlers(queue);
    let case = prop_oneof![
        (Just(Provider::Loops), loops_attack()),
        (Just(Provider::Esputnik), esputnik_attack()),
        (Just(Provider::Sparkloop), sparkloop_attack()),
    ];
    let mut runner = TestRunner::new(config(cases().min(200)));
    let counts = Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    runner
        .run(
            &(case, hostile_body(), junk_headers(false)),
            |((provider, attack), body, junk)| {
                let req = forge(provider, &attack, &body, &junk, false);
                let resp = rt.block_on(h.handle(provider, req));
                *counts
                    .lock()
                    .unwrap()
                    .entry(resp.status().as_u16())
                    .or_default() += 1;
                prop_assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{:?}", attack);
                Ok(())
            },
        )
        .unwrap();
    let left = rt.block_on(drain(&sqs, &url));
    assert!(
        left.is_empty(),
        "refused requests queued {} messages",
        left.len()
    );
    let statuses = counts.into_inner().unwrap();
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [401],
        "{statuses:?}"
    );

    // control: the same handlers and queue do deliver an authenticated request
    for provider in [Provider::Loops, Provider::Esputnik, Provider::Sparkloop] {
        let file = match provider {
            Provider::Loops => "events/loops/email.unsubscribed.json",
            Provider::Esputnik => "events/esputnik/UNSUBSCRIBED.json",
            _ => "events/sparkloop/new_referral.json",
        };
        let req = signed_request(provider, &repo_root().join(file));
        assert_eq!(
            rt.block_on(h.handle(provider, req)).status(),
            StatusCode::OK
        );
        let got = rt.block_on(drain(&sqs, &url));
        assert_eq!(got.len(), 1, "{provider}");
        assert_eq!(got[0].envelope.provider, provider);
    }
}
