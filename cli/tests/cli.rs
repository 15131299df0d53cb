//! The real `sparkbridge` binary, driven over HTTP and on the command line.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use sparkbridge_tests::{fresh_queue, moto_endpoint, sdk_config};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_sparkbridge");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("AWS_ENDPOINT_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run sparkbridge")
}

/// `SB_DEBUG=1` shows the dev server's logs.
fn debug_output() -> Stdio {
    if std::env::var_os("SB_DEBUG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

struct Dev(Child);
impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_dev(port: u16, env: &[(&str, &str)], aws: bool) -> Dev {
    let name = dev_name(port);
    let on_moto = ["--aws", "--create", "--name", name.as_str()];
    start_dev_with(port, env, if aws { &on_moto } else { &[] }).await
}

/// `sparkbridge dev` with these arguments; `--aws` runs it on moto.
async fn start_dev_with(port: u16, env: &[(&str, &str)], args: &[&str]) -> Dev {
    let mut c = Command::new(BIN);
    let listen = format!("127.0.0.1:{port}");
    c.args(["dev", "--listen", &listen])
        .args(args)
        .stdout(debug_output())
        .stderr(debug_output());
    c.env_remove("AWS_ENDPOINT_URL")
        .env_remove("QUEUE_URL")
        .env_remove("DLQ_URL")
        .env_remove("TABLE_NAME");
    if args.contains(&"--aws") {
        c.env("AWS_ENDPOINT_URL", moto_endpoint());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let dev = Dev(c.spawn().expect("spawn dev"));
    let started = Instant::now();
    let url = format!("http://{listen}/healthz");
    while started.elapsed() < Duration::from_secs(20) {
        if reqwest_get(&url).await == Some(200) {
            return dev;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sparkbridge dev did not become ready");
}

/// The queue (its DLQ: `<name>-dlq`) and the table `start_dev(port, .., true)` creates.
fn dev_name(port: u16) -> String {
    format!("sb-dev-{port}-{}", std::process::id())
}

async fn reqwest_get(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

async fn wait_for_calls(fake: &MockServer, n: usize) -> usize {
    let started = Instant::now();
    loop {
        let got = fake.received_requests().await.unwrap().len();
        if got >= n || started.elapsed() > Duration::from_secs(10) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fake_sparkloop() -> MockServer {
    let fake = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fake)
        .await;
    fake
}

#[tokio::test]
async fn dev_and_send_make_the_unsubscribe_call_once() {
    let fake = fake_sparkloop().await;
    let port = free_port();
    let env = [
        ("SPARKLOOP_API_KEY", "k-test"),
        ("SPARKLOOP_API_URL", &fake.uri() as &str),
    ];
    let _dev = start_dev(port, &env, false).await;
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(&["send", "loops", "email.unsubscribed", "--url", &url], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("200"));
    assert_eq!(wait_for_calls(&fake, 1).await, 1);
    let req = &fake.received_requests().await.unwrap()[0];
    assert_eq!(
        req.url.path(),
        "/v2/subscribers/test%40example.com/unsubscribe"
    );
    assert_eq!(req.headers.get("x-api-key").unwrap(), "k-test");

    // a duplicate send produces no second call
    let out = cli(&["send", "loops", "email.unsubscribed", "--url", &url], &[]);
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.received_requests().await.unwrap().len(), 1);

    // every provider's samples are accepted
    for (p, e) in [
        ("esputnik", "UNSUBSCRIBED"),
        ("sparkloop", "new_referral"),
        ("loops", "email.opened"),
    ] {
        let out = cli(&["send", p, e, "--url", &url, "--json"], &[]);
        assert!(
            out.status.success(),
            "{p} {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], 200);
    }
    assert_eq!(
        wait_for_calls(&fake, 2).await,
        2,
        "the eSputnik unsubscribe too"
    );
}

/// A SparkLoop webhook through `dev`, then the state it left, read back with `subscriber
/// show` and judged by `screen --dry-run` (both against the dev server).
#[tokio::test]
async fn subscriber_show_and_screen_read_the_dev_server() {
    let port = free_port();
    let _dev = start_dev(port, &[("SCREENING_MIN_OPENS", "1")], false).await;
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(
        &[
            "send",
            "sparkloop",
            "new_partner_pending_referral",
            "--url",
            &url,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let email = "test12345@test.com";
    let mut state = serde_json::Value::Null;
    for _ in 0..50 {
        let out = cli(&["subscriber", "show", email, "--url", &url, "--json"], &[]);
        if out.status.success() {
            state = serde_json::from_slice(&out.stdout).unwrap();
            if !state["esp_status"].is_null() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state["referral_status"], "pending", "{state}");
    assert_eq!(state["esp_status"], "added (new_partner_pending_referral)");
    let human = cli(&["subscriber", "show", email, "--url", &url], &[]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("sparkloop id:"));

    let out = cli(&["screen", "--dry-run", "--url", &url, "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    // the sample referral was created in 2022: its screening ended long ago, so it is reported
    // as ended unjudged and never rejected (with SCREENING_MIN_OPENS=1 and no opens)
    assert_eq!(report["checked"], 1, "{report}");
    assert_eq!(report["expired"], 1, "{report}");
    assert_eq!(report["rejected"], serde_json::json!([]), "{report}");

    let out = cli(
        &["subscriber", "show", "nobody@example.com", "--url", &url],
        &[],
    );
    assert!(!out.status.success(), "an unknown subscriber is an error");

    // an eSputnik element that cannot be read is kept, and shows on the dev DLQ with its reason
    let file = std::env::temp_dir().join(format!("sb-unreadable-{port}.json"));
    std::fs::write(&file, r#"["not an activity"]"#).unwrap();
    let out = cli(
        &["send", "esputnik", file.to_str().unwrap(), "--url", &url],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parked = serde_json::Value::Null;
    for _ in 0..50 {
        parked = reqwest::get(format!("{url}/_dev/dlq"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if parked.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parked = parked.as_array().unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["attributes"]["kind"], "parked");
    assert!(parked[0]["attributes"]["error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn dev_refuses_wrong_credentials() {
    let port = free_port();
    let _dev = start_dev(port, &[], false).await;
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(
        &["send", "loops", "email.opened", "--url", &url],
        &[(
            "LOOPS_SIGNING_SECRET",
            "whsec_YS13cm9uZy1zZWNyZXQtMjQtYnl0ZXMh",
        )],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
}

/// `sparkbridge dev`'s environment on moto, its SparkLoop calls going to `sparkloop`.
fn moto_dev_env(sparkloop: &str) -> [(&'static str, &str); 5] {
    [
        ("SPARKLOOP_API_KEY", "k"),
        ("SPARKLOOP_API_URL", sparkloop),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

/// A new eSputnik spam complaint sent to the dev server on `port`, answered 2xx.
fn send_new_spam(port: u16) {
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(
        &["send", "esputnik", "SPAM", "--url", &url, "--new-id"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn dev_on_moto_creates_its_queue_and_table() {
    let fake = fake_sparkloop().await;
    let port = free_port();
    let uri = fake.uri();
    let env = moto_dev_env(&uri);
    let _dev = start_dev(port, &env, true).await;
    send_new_spam(port);
    assert!(wait_for_calls(&fake, 1).await >= 1);
}

/// `--no-worker` answers and queues but calls nothing; what it queued waits for the next
/// consumer of the queue.
#[tokio::test]
async fn dev_without_its_worker_leaves_deliveries_queued_for_another_consumer() {
    let fake = fake_sparkloop().await;
    let uri = fake.uri();
    let env = moto_dev_env(&uri);
    let name = dev_name(free_port());
    let on_moto = ["--aws", "--create", "--name", name.as_str()];
    let port = free_port();
    let receiver = start_dev_with(port, &env, &[&on_moto[..], &["--no-worker"]].concat()).await;
    send_new_spam(port);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.received_requests().await.unwrap().len(), 0);
    drop(receiver);

    let _consumer = start_dev_with(free_port(), &env, &on_moto).await;
    assert_eq!(wait_for_calls(&fake, 1).await, 1);
}

#[tokio::test]
async fn send_errors_are_one_line_and_non_zero() {
    let out = cli(&["send", "loops", "no.such.event"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: no sample loops/no.such.event"),
        "{err}"
    );
    let out = cli(&["send", "mailchimp", "x"], &[]);
    assert!(!out.status.success());
    let out = cli(
        &[
            "send",
            "loops",
            "email.opened",
            "--url",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    assert!(!out.status.success(), "nothing listening");
}

#[test]
fn help_on_every_command() {
    for args in [
        vec!["--help"],
        vec!["dev", "--help"],
        vec!["send", "--help"],
        vec!["dlq", "--help"],
        vec!["dlq", "--dlq-url", "x", "list", "--help"],
        vec!["dlq", "--dlq-url", "x", "show", "--help"],
        vec!["dlq", "--dlq-url", "x", "replay", "--help"],
        vec!["config", "check", "--help"],
        vec!["subscriber", "show", "--help"],
        vec!["screen", "--help"],
        vec!["reconcile", "--help"],
        vec!["smoke", "--help"],
    ] {
        let out = cli(&args, &[]);
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn config_check_says_what_is_wrong() {
    let good = [
        (
            "LOOPS_SIGNING_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ),
        ("ESPUTNIK_WEBHOOK_TOKEN", "t"),
        ("SPARKLOOP_WEBHOOK_TOKEN", "t"),
        ("ESP", "loops"),
        ("LOOPS_API_KEY", "k"),
    ];
    let out = cli(&["config", "check", "--json"], &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.as_array().unwrap().iter().all(|c| c["ok"] == true));

    let without_secret: Vec<_> = good
        .iter()
        .copied()
        .filter(|(k, _)| *k != "LOOPS_SIGNING_SECRET")
        .collect();
    config_check_refuses(
        &without_secret,
        &[
            ("ESP", "mailchimp"),
            ("MAX_ATTEMPTS", "many"),
            ("SPARKLOOP_API_URL", "http://169.254.169.254"),
        ],
        &[
            "LOOPS_SIGNING_SECRET is empty",
            "ESP=\"mailchimp\"",
            "MAX_ATTEMPTS=\"many\"",
            "must be an https:// URL",
        ],
    );
    // settings the worker, the screener and the reconciler would refuse at start-up
    config_check_refuses(
        &good,
        &[
            ("ESP_PROPERTY_NAMES", "status=rhStatus"),
            ("SCREENING_DAYS", "99"),
            ("RECONCILE_SINCE_DAYS", "a month"),
        ],
        &[
            "ESP_PROPERTY_NAMES is not a JSON object",
            "SCREENING_DAYS=99 must be between 1 and 30",
            "RECONCILE_SINCE_DAYS=\"a month\" is not a valid number",
        ],
    );
}

/// `config check` on `base` plus `bad` fails and names each of `needles`.
fn config_check_refuses(base: &[(&str, &str)], bad: &[(&str, &str)], needles: &[&str]) {
    let env: Vec<_> = base.iter().chain(bad).copied().collect();
    let out = cli(&["config", "check"], &env);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in needles {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
}

#[tokio::test]
async fn dlq_list_show_and_replay_on_moto() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let queue = fresh_queue(&sqs).await;
    let dlq = fresh_queue(&sqs).await;
    for i in 0..3 {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!(r#"{{"v":1,"n":{i}}}"#))
            .message_attributes(
                "provider",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("loops")
                    .build()
                    .unwrap(),
            )
            .message_attributes(
                "error",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("sparkloop unsubscribe answered 400")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let env = [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("DLQ_URL", dlq.clone()),
        ("QUEUE_URL", queue.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = cli(&["dlq", "list", "--json"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 3);
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let out = cli(&["dlq", "list"], &env);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 message(s)"),
        "listing consumed nothing"
    );

    let out = cli(&["dlq", "show", &id], &env);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("answered 400"));
    let out = cli(&["dlq", "show", "no-such-id"], &env);
    assert!(!out.status.success());

    let out = cli(&["dlq", "replay", "--all", "--dry-run"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 message(s) would be replayed"));
    let out = cli(&["dlq", "replay", &id], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["dlq", "replay", "--all"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("replayed 2 message(s)"));

    let back = sparkbridge_tests::drain_raw(&sqs, &queue).await;
    assert_eq!(back.len(), 3);
    for (_, attrs) in &back {
        assert_eq!(attrs["provider"], "loops");
        assert!(attrs["error"].contains("400"), "attributes preserved");
        assert!(attrs.contains_key("replayed_from"));
    }
    let out = cli(&["dlq", "list", "--json"], &env);
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap()
            .len(),
        0
    );
}

/// The environment `config check` accepts offline, with `esp` as the ESP and its key.
fn checked_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        (
            "LOOPS_SIGNING_SECRET",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        ),
        ("ESPUTNIK_WEBHOOK_TOKEN", "t"),
        ("SPARKLOOP_WEBHOOK_TOKEN", "t"),
    ];
    env.extend_from_slice(extra);
    env
}

#[test]
fn config_check_refuses_an_unsubscribe_share_outside_0_to_1() {
    let good = checked_env(&[("ESP", "loops"), ("LOOPS_API_KEY", "k")]);
    for (value, needle) in [
        (
            "1.5",
            "RECONCILE_MAX_UNSUBSCRIBE_SHARE=1.5 must be between 0 and 1",
        ),
        (
            "-0.1",
            "RECONCILE_MAX_UNSUBSCRIBE_SHARE=-0.1 must be between 0 and 1",
        ),
        (
            "NaN",
            "RECONCILE_MAX_UNSUBSCRIBE_SHARE=NaN must be between 0 and 1",
        ),
        (
            "5%",
            "RECONCILE_MAX_UNSUBSCRIBE_SHARE=\"5%\" is not a valid number",
        ),
    ] {
        config_check_refuses(
            &good,
            &[("RECONCILE_MAX_UNSUBSCRIBE_SHARE", value)],
            &[needle],
        );
    }
    let mut within = good.clone();
    within.push(("RECONCILE_MAX_UNSUBSCRIBE_SHARE", "0.2"));
    let out = cli(&["config", "check"], &within);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn config_check_online_reads_each_api_once_and_passes_when_they_answer() {
    use wiremock::matchers::{header, path, query_param};
    let sparkloop = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/subscribers"))
        .and(query_param("type", "all"))
        .and(query_param("page", "1"))
        .and(query_param("per_page", "1"))
        .and(header("x-api-key", "sl-key-4711"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"subscribers": [], "meta": {"total_pages": 0}})),
        )
        .mount(&sparkloop)
        .await;
    let loops = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/api-key"))
        .and(header("authorization", "Bearer loops-key-4711"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"success": true, "teamName": "Team"})),
        )
        .mount(&loops)
        .await;
    // the base URLs as the providers' docs print them
    let (sl_url, loops_url) = (
        format!("{}/v2", sparkloop.uri()),
        format!("{}/api", loops.uri()),
    );
    let env = checked_env(&[
        ("SPARKLOOP_API_KEY", "sl-key-4711"),
        ("SPARKLOOP_API_URL", &sl_url),
        ("ESP", "loops"),
        ("LOOPS_API_KEY", "loops-key-4711"),
        ("LOOPS_API_URL", &loops_url),
    ]);

    let offline = cli(&["config", "check"], &env);
    assert!(offline.status.success());
    assert_eq!(sparkloop.received_requests().await.unwrap().len(), 0);
    assert_eq!(
        loops.received_requests().await.unwrap().len(),
        0,
        "without --online nothing is called"
    );

    let out = cli(&["config", "check", "--online"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(sparkloop.received_requests().await.unwrap().len(), 1);
    assert_eq!(loops.received_requests().await.unwrap().len(), 1);
    for tried in [
        format!(
            "GET {}/v2/subscribers?type=all&page=1&per_page=1",
            sparkloop.uri()
        ),
        format!("GET {}/api/v1/api-key", loops.uri()),
    ] {
        assert!(text.contains(&tried), "{tried} in\n{text}");
    }
    assert!(!text.contains("key-4711"), "{text}");
}

#[tokio::test]
async fn config_check_online_fails_naming_the_url_tried_and_never_the_key() {
    // eSputnik: no such route (every path answers 404); SparkLoop refuses the key and echoes it
    let esputnik = MockServer::start().await;
    let sparkloop = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                serde_json::json!({"error": "API key sl-secret-key-123 is invalid"}),
            ),
        )
        .mount(&sparkloop)
        .await;
    let (sl_url, es_url) = (sparkloop.uri(), esputnik.uri());
    let env = checked_env(&[
        ("SPARKLOOP_API_KEY", "sl-secret-key-123"),
        ("SPARKLOOP_API_URL", &sl_url),
        ("ESP", "esputnik"),
        ("ESPUTNIK_API_KEY", "es-secret-key-987"),
        ("ESPUTNIK_API_URL", &es_url),
    ]);
    let out = cli(&["config", "check", "--online"], &env);
    assert!(!out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ERR")).collect();
    assert_eq!(failed.len(), 2, "one line per API:\n{stdout}");
    let esputnik_tried = format!(
        "GET {}/api/v1/account/info answered HTTP 404",
        esputnik.uri()
    );
    let sparkloop_tried = format!(
        "GET {}/v2/subscribers?type=all&page=1&per_page=1 answered HTTP 401",
        sparkloop.uri()
    );
    assert!(
        failed.iter().any(|l| l.contains(&esputnik_tried)),
        "{stdout}"
    );
    assert!(
        failed.iter().any(|l| l.contains(&sparkloop_tried)),
        "{stdout}"
    );
    assert!(stderr.contains("2 configuration error(s)"), "{stderr}");
    for key in ["sl-secret-key-123", "es-secret-key-987"] {
        assert!(
            !stdout.contains(key) && !stderr.contains(key),
            "{key} shown"
        );
    }

    // a redirect is not followed, and says so
    let moved = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", "https://elsewhere.example/api"),
        )
        .mount(&moved)
        .await;
    let moved_url = moved.uri();
    let env = checked_env(&[
        ("ESP", "loops"),
        ("LOOPS_API_KEY", "loops-secret-key-555"),
        ("LOOPS_API_URL", &moved_url),
    ]);
    let out = cli(&["config", "check", "--online"], &env);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("loops online"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("ERR"), "{line}");
    assert!(
        line.contains(&format!(
            "GET {}/api/v1/api-key answered HTTP 301",
            moved.uri()
        )),
        "{line}"
    );
    assert!(line.contains("https://elsewhere.example/api"), "{line}");
    assert_eq!(
        moved.received_requests().await.unwrap().len(),
        1,
        "not followed"
    );
    assert!(!stdout.contains("loops-secret-key-555"));
}

/// `sparkbridge reconcile` on moto against fake APIs where every referral reads as
/// unsubscribed in Loops: the run refuses all of them (non-zero, the count and the share),
/// queues nothing, and `--force` queues them.
#[tokio::test]
async fn reconcile_refuses_unsubscribes_over_the_share_unless_forced() {
    use wiremock::matchers::path;
    let conf = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue = fresh_queue(&sqs).await;
    let table = format!("sb-cli-{}", uuid::Uuid::new_v4().simple());
    sparkbridge::adapters::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        table.clone(),
    )
    .create_table_if_missing()
    .await
    .unwrap();
    let sparkloop = MockServer::start().await;
    let referrals: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!({"uuid": format!("sub_{i}"), "email": format!("r{i}@example.com"),
                "referral_status": "pending", "created_at": chrono::Utc::now().to_rfc3339()})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/v2/subscribers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"subscribers": referrals, "meta": {"total_pages": 1}}),
        ))
        .mount(&sparkloop)
        .await;
    let loops = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/contacts/find"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!([{"email": "x", "subscribed": false}])),
        )
        .mount(&loops)
        .await;
    let env = [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("QUEUE_URL", queue.clone()),
        ("TABLE_NAME", table),
        ("SPARKLOOP_API_KEY", "k".into()),
        ("SPARKLOOP_API_URL", sparkloop.uri()),
        ("ESP", "loops".into()),
        ("LOOPS_API_KEY", "k".into()),
        ("LOOPS_API_URL", loops.uri()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = cli(&["reconcile", "--since", "30"], &env);
    assert!(!out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("10 SparkLoop unsubscribes for 10 referrals compared (100.0%)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("not queued: sparkloop_unsubscribe"),
        "{stdout}"
    );
    assert!(sparkbridge_tests::drain(&sqs, &queue).await.is_empty());

    let out = cli(&["reconcile", "--since", "30", "--force"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queued = sparkbridge_tests::drain(&sqs, &queue).await;
    assert_eq!(queued.len(), 10);
    assert!(
        queued
            .iter()
            .all(|q| q.envelope.kind
                == sparkbridge::core::InternalKind::ReconcileUnsubscribe.as_str())
    );
}

/// `smoke` against `dev --aws` on moto: every provider passes, with `--url` and with `--stack`
/// (and without `--live` nothing calls out); without credentials nothing is sent; a table the
/// worker does not write shows the events not processed; a wrong Loops secret is refused 401
/// at ingest and fails the run; `--live` calls SparkLoop for the test address only, and what
/// SparkLoop refuses is found parked on the DLQ with its reason.
#[tokio::test]
async fn smoke_proves_each_provider_end_to_end_on_dev_with_moto() {
    use wiremock::matchers::path_regex;
    let sparkloop = MockServer::start().await;
    let sparkloop_url = sparkloop.uri();
    let port = free_port();
    let aws = [
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ];
    let mut dev_env: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    dev_env.extend([
        ("SPARKLOOP_API_KEY", "k-test"),
        ("SPARKLOOP_API_URL", sparkloop_url.as_str()),
    ]);
    let _dev = start_dev(port, &dev_env, true).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let dlq = sqs
        .get_queue_url()
        .queue_name(format!("{}-dlq", dev_name(port)))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let table = dev_name(port);
    let mut env: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([("TABLE_NAME", table.as_str()), ("DLQ_URL", dlq.as_str())]);
    let url = format!("http://127.0.0.1:{port}");
    let line = |stdout: &str, provider: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{provider} ")))
            .unwrap_or_else(|| panic!("no {provider} line in\n{stdout}"))
            .to_string()
    };

    let out = cli(&["smoke", "--url", &url, "--timeout", "60"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in ["loops", "esputnik", "sparkloop"] {
        let l = line(&stdout, p);
        assert!(l.contains("PASS") && l.contains("HTTP 200 in"), "{l}");
        assert!(l.contains("COMPLETED ("), "{l}");
    }
    assert!(stdout.contains("@example.invalid"), "{stdout}");

    let out = cli(&["smoke", "--url", &url, "--json", "--timeout", "60"], &env);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true, "{v}");
    let providers = v["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 3);
    for (p, kind, worker) in [
        ("loops", "email.opened", "done"),
        ("esputnik", "DELIVERED", "done"),
        ("sparkloop", "new_offer_lead", "ignored"),
    ] {
        let r = providers.iter().find(|r| r["provider"] == p).unwrap();
        assert_eq!(r["outcome"], "passed", "{r}");
        assert_eq!(r["kind"], kind);
        assert_eq!(r["http_status"], 200);
        assert_eq!(r["record"], "COMPLETED");
        assert_eq!(r["worker_outcome"], worker, "{r}");
        assert!(r["completed_ms"].as_u64().is_some(), "{r}");
    }
    assert!(
        sparkloop.received_requests().await.unwrap().is_empty(),
        "without --live nothing calls out"
    );

    // --stack: the webhook URLs, the table and the DLQ from the stack's outputs (a stand-in
    // stack on moto with the outputs template.yaml declares, pointing at the dev server)
    let conf = sdk_config().await;
    let stack = format!("sb-smoke-{}", dev_name(port));
    let template = serde_json::json!({
        "Parameters": {"DryRun": {"Type": "String", "Default": "true"}},
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            "LoopsWebhookUrl": {"Value": format!("{url}/webhooks/loops")},
            "EsputnikWebhookUrl": {"Value": format!("{url}/webhooks/esputnik")},
            "SparkloopWebhookUrl": {"Value": format!("{url}/webhooks/sparkloop")},
            "StateTableName": {"Value": table},
            "DeadLetterQueueUrl": {"Value": dlq},
        },
    });
    aws_sdk_cloudformation::Client::new(&conf)
        .create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    // not a loopback --url: the secrets come from the environment only (here dev's defaults)
    let mut stack_env: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    stack_env.extend([
        (
            "LOOPS_SIGNING_SECRET",
            "whsec_ZGV2LW9ubHktc2lnbmluZy1zZWNyZXQtc3Bhcmticmlk",
        ),
        ("ESPUTNIK_WEBHOOK_USER", "dev"),
        ("ESPUTNIK_WEBHOOK_PASSWORD", "dev-password"),
        ("SPARKLOOP_WEBHOOK_TOKEN", "dev-sparkloop-token"),
    ]);
    let out = cli(&["smoke", "--stack", &stack, "--timeout", "60"], &stack_env);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("smoke test of stack {stack} ")),
        "{stdout}"
    );
    let out = cli(
        &["smoke", "--stack", &stack, "--timeout", "60"],
        &stack_env[..aws.len()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("loops not_sent, esputnik not_sent, sparkloop not_sent"),
        "no credentials, nothing sent: {err}"
    );

    // queued, never COMPLETED in the table watched (one the worker does not write)
    let other = format!("sb-smoke-empty-{}", dev_name(port));
    sparkbridge::adapters::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        other.clone(),
    )
    .create_table_if_missing()
    .await
    .unwrap();
    let elsewhere: Vec<(&str, &str)> = env
        .iter()
        .map(|&(k, v)| (k, if k == "TABLE_NAME" { other.as_str() } else { v }))
        .collect();
    let out = cli(
        &["smoke", "--url", &url, "--json", "--timeout", "2"],
        &elsewhere,
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in v["providers"].as_array().unwrap() {
        assert_eq!(r["outcome"], "not_processed", "{r}");
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .contains("not COMPLETED within 2 s"),
            "{r}"
        );
    }

    // a Loops secret that is not the deployed one: refused at ingest, the others still pass
    let mut wrong = env.clone();
    wrong.push((
        "LOOPS_SIGNING_SECRET",
        "whsec_YS13cm9uZy1zZWNyZXQtMjQtYnl0ZXMh",
    ));
    let out = cli(&["smoke", "--url", &url, "--timeout", "60"], &wrong);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let l = line(&stdout, "loops");
    assert!(l.contains("FAIL refused") && l.contains("HTTP 401"), "{l}");
    for p in ["esputnik", "sparkloop"] {
        assert!(line(&stdout, p).contains("PASS"), "{stdout}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "error: smoke failed: loops refused", "{err}");

    // --live: the unsubscribes reach SparkLoop for the test address only (404: not a
    // subscriber it tracks, which is done)
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(serde_json::json!({"error": "not found"})),
        )
        .mount(&sparkloop)
        .await;
    let out = cli(
        &[
            "smoke",
            "--url",
            &url,
            "--live",
            "--json",
            "--timeout",
            "60",
        ],
        &env,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v}");
    let email = v["email"]
        .as_str()
        .unwrap()
        .replace('+', "%2B")
        .replace('@', "%40");
    let calls = sparkloop.received_requests().await.unwrap();
    assert_eq!(calls.len(), 2, "Loops and eSputnik unsubscribes");
    for c in &calls {
        assert_eq!(
            c.url.path(),
            format!("/v2/subscribers/{email}/unsubscribe"),
            "the test address only"
        );
    }

    // what SparkLoop refuses is parked, and smoke says so with the reason
    sparkloop.reset().await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v2/subscribers/.*/unsubscribe$"))
        .respond_with(ResponseTemplate::new(400).set_body_string("smoke-refused"))
        .mount(&sparkloop)
        .await;
    let out = cli(
        &[
            "smoke",
            "--url",
            &url,
            "--live",
            "--json",
            "--timeout",
            "60",
        ],
        &env,
    );
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in v["providers"].as_array().unwrap() {
        if r["provider"] == "sparkloop" {
            assert_eq!(r["outcome"], "passed", "{r}");
        } else {
            assert_eq!(r["outcome"], "parked", "{r}");
            let detail = r["detail"].as_str().unwrap();
            assert!(
                detail.contains("400") && detail.contains("smoke-refused"),
                "{r}"
            );
        }
    }
}

/// `config check` with `SECRETS_ARN` pointing at a secret on moto: each key a function needs
/// that is in neither the secret nor the environment fails, named, on the line of the function
/// that needs it; the environment fills in what the secret lacks; no value is printed.
#[tokio::test]
async fn config_check_names_each_key_missing_from_the_secret_and_the_environment() {
    let arn = sparkbridge_tests::fresh_secret(&serde_json::json!({
        "LOOPS_SIGNING_SECRET": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "ESPUTNIK_WEBHOOK_TOKEN": "es-secret-token-555",
        "SPARKLOOP_API_KEY": "sl-secret-key-321",
    }))
    .await;
    let endpoint = moto_endpoint();
    let base = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("SECRETS_ARN", arn.as_str()),
        ("ESP", "loops"),
    ];
    let out = cli(&["config", "check"], &base);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}");
    let line = |component: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(component))
            .unwrap_or_else(|| panic!("no {component} line in\n{stdout}"))
            .to_string()
    };
    for (component, missing) in [
        ("ingest-sparkloop", "SPARKLOOP_WEBHOOK_TOKEN"),
        ("esp", "LOOPS_API_KEY"),
    ] {
        let l = line(component);
        assert!(l.starts_with("ERR"), "{l}");
        assert!(
            l.contains(&format!(
                "{missing} is in neither the secret (SECRETS_ARN) nor the environment"
            )),
            "{l}"
        );
    }
    for component in [
        "secrets",
        "ingest-loops",
        "ingest-esputnik",
        "sparkloop-api",
    ] {
        assert!(line(component).starts_with("ok"), "{}", line(component));
    }
    assert!(
        line("secrets")
            .contains("holds LOOPS_SIGNING_SECRET, ESPUTNIK_WEBHOOK_TOKEN, SPARKLOOP_API_KEY"),
        "{stdout}"
    );
    assert!(stderr.contains("2 configuration error(s)"), "{stderr}");
    for value in ["es-secret-token-555", "sl-secret-key-321", "C2FVsBQIhrsc"] {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{value} shown"
        );
    }

    // the environment fills in what the secret lacks
    let mut filled = base.to_vec();
    filled.extend([("SPARKLOOP_WEBHOOK_TOKEN", "t"), ("LOOPS_API_KEY", "k")]);
    let out = cli(&["config", "check"], &filled);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // a secret that cannot be read fails, naming it
    let mut unreadable = filled.clone();
    let missing_arn = format!("{arn}-missing");
    unreadable.retain(|(k, _)| *k != "SECRETS_ARN");
    unreadable.push(("SECRETS_ARN", &missing_arn));
    let out = cli(&["config", "check"], &unreadable);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let secrets_line = stdout
        .lines()
        .find(|l| l.contains("secrets"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(secrets_line.starts_with("ERR"), "{secrets_line}");
    assert!(
        secrets_line.contains(&format!("SECRETS_ARN={missing_arn}")),
        "{secrets_line}"
    );
}
