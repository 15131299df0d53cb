//! Test kit: a moto server for SQS/DynamoDB/Secrets Manager (real protocol, real SDK) and the
//! sample events of `events/`, authenticated at test time as the providers would.

pub mod chaos;

use std::path::{Path, PathBuf};

use aws_sdk_sqs::Client as SqsClient;
use lambda_http::http::{HeaderName, HeaderValue};
use lambda_http::{Body, Request};
use sparkbridge::core::envelope::{Envelope, Provider};
use sparkbridge::core::sender::{authenticate, SenderCredentials};

pub const LOOPS_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const ESPUTNIK_USER: &str = "esputnik-user";
pub const ESPUTNIK_PASSWORD: &str = "esputnik-pass";
pub const ESPUTNIK_TOKEN: &str = "url-token-123";
pub const SPARKLOOP_TOKEN: &str = "sl-token-abc";

pub fn credentials() -> SenderCredentials {
    SenderCredentials {
        loops_secret: Some(LOOPS_SECRET.into()),
        esputnik_user: Some(ESPUTNIK_USER.into()),
        esputnik_password: Some(ESPUTNIK_PASSWORD.into()),
        esputnik_token: None,
        sparkloop_token: Some(SPARKLOOP_TOKEN.into()),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

/// Sample event files of one provider folder (`events/<dir>/*.json`), sorted.
pub fn sample_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("events").join(dir))
        .expect("events folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Loads an API Gateway v2 sample as a lambda_http request, without touching its auth.
pub fn load_request(path: &Path) -> Request {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads a sample and authenticates it now, as `provider` would.
pub fn signed_request(provider: Provider, path: &Path) -> Request {
    let mut req = load_request(path);
    authenticate_request(provider, &mut req);
    req
}

/// Replaces the request's placeholder auth with real credentials for its current body.
pub fn authenticate_request(provider: Provider, req: &mut Request) {
    let id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
    let body = req.body().to_vec();
    let now = chrono_now();
    let auth = authenticate(provider, &body, &id, &credentials(), now)
        .expect("test credentials are complete");
    for (k, v) in auth.headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
}

pub fn set_body(req: &mut Request, body: impl Into<Vec<u8>>) {
    let bytes: Vec<u8> = body.into();
    *req.body_mut() = match String::from_utf8(bytes) {
        Ok(s) => Body::Text(s),
        Err(e) => Body::Binary(e.into_bytes()),
    };
}

pub fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The moto server the CI starts (`AWS_ENDPOINT_URL`, default http://127.0.0.1:5055).
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    let creds = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "static");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(moto_endpoint())
        .load()
        .await
}

/// A fresh, uniquely named queue on moto, so tests run in parallel without interfering.
pub async fn fresh_queue(sqs: &SqsClient) -> String {
    let name = format!("sb-test-{}", uuid::Uuid::new_v4().simple());
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("moto server reachable at AWS_ENDPOINT_URL (start it with .ci/run or `make moto`)")
        .queue_url()
        .expect("queue url")
        .to_string()
}

/// A fresh, uniquely named Secrets Manager secret on moto whose SecretString is `values` (a
/// JSON object of variable names to values); returns its ARN.
pub async fn fresh_secret(values: &serde_json::Value) -> String {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let name = format!("sb-test-{}", uuid::Uuid::new_v4().simple());
    client
        .create_secret()
        .name(name)
        .secret_string(values.to_string())
        .send()
        .await
        .expect("moto server reachable at AWS_ENDPOINT_URL (start it with .ci/run or `make moto`)")
        .arn()
        .expect("secret arn")
        .to_string()
}

/// Stores a new current version of the secret (a rotation).
pub async fn put_secret(arn: &str, values: &serde_json::Value) {
    aws_sdk_secretsmanager::Client::new(&sdk_config().await)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(values.to_string())
        .send()
        .await
        .expect("put_secret_value");
}

/// A message read back from the queue.
#[derive(Debug)]
pub struct Queued {
    pub envelope: Envelope,
    pub attributes: std::collections::HashMap<String, String>,
}

/// Drains every message currently on the queue.
pub async fn drain(sqs: &SqsClient, url: &str) -> Vec<Queued> {
    let mut out = Vec::new();
    loop {
        let res = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive");
        let msgs = res.messages();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            let envelope: Envelope =
                serde_json::from_str(m.body().unwrap()).expect("queued body is an envelope");
            let attributes = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Queued {
                envelope,
                attributes,
            });
        }
    }
}

pub mod worker_kit {
    //! Runs the worker the way Lambda's SQS event source does: receive a batch from a moto
    //! queue (real receipt handles), invoke the handler, delete what it did not report failed.

    use std::sync::Arc;

    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use aws_sdk_dynamodb::Client as DynamoClient;
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use aws_sdk_sqs::Client as SqsClient;
    use sparkbridge::adapters::dynamodb::DynamoStore;
    use sparkbridge::adapters::sparkloop::{ClientSettings, SparkLoopClient};
    use sparkbridge::adapters::sqs::SqsWorkQueue;
    use sparkbridge::core::secret::Secret;
    use sparkbridge::worker::{Worker, WorkerConfig};

    pub struct Harness {
        pub sqs: SqsClient,
        pub queue_url: String,
        pub dlq_url: String,
        pub store: Arc<DynamoStore>,
        pub worker: Arc<Worker>,
    }

    pub fn fast_config() -> WorkerConfig {
        let mut cfg = WorkerConfig::default();
        cfg.backoff.base_secs = 0;
        cfg.backoff.cap_secs = 0;
        cfg.retry.max_attempts = 5;
        cfg
    }

    pub async fn harness(sparkloop_url: &str, cfg: WorkerConfig) -> Harness {
        harness_with(
            sparkloop_url,
            Arc::new(sparkbridge::adapters::esp::DryRunEsp("none")),
            cfg,
        )
        .await
    }

    /// A harness whose worker calls `esp` for SparkLoop -> ESP actions.
    pub async fn harness_with(
        sparkloop_url: &str,
        esp: Arc<dyn sparkbridge::ports::EspApi>,
        cfg: WorkerConfig,
    ) -> Harness {
        harness_timed(
            sparkloop_url,
            esp,
            cfg,
            std::time::Duration::from_millis(800),
        )
        .await
    }

    /// A harness whose SparkLoop client gives up on a request after `timeout`.
    pub async fn harness_timed(
        sparkloop_url: &str,
        esp: Arc<dyn sparkbridge::ports::EspApi>,
        cfg: WorkerConfig,
        timeout: std::time::Duration,
    ) -> Harness {
        let conf = super::sdk_config().await;
        let sqs = SqsClient::new(&conf);
        let queue_url = super::fresh_queue(&sqs).await;
        let dlq_url = super::fresh_queue(&sqs).await;
        let table = format!("sb-test-{}", uuid::Uuid::new_v4().simple());
        let store = Arc::new(DynamoStore::new(DynamoClient::new(&conf), table));
        store
            .create_table_if_missing()
            .await
            .expect("create table on moto");
        let settings = ClientSettings {
            total_timeout: timeout,
            rate_per_min: 60_000,
            ..ClientSettings::default()
        };
        let worker = Arc::new(Worker {
            store: store.clone(),
            subscribers: store.clone(),
            sparkloop: Arc::new(SparkLoopClient::new(
                sparkloop_url,
                Secret::new("test-api-key"),
                &settings,
            )),
            esp,
            queue: Arc::new(SqsWorkQueue::new(
                sqs.clone(),
                queue_url.clone(),
                dlq_url.clone(),
            )),
            cfg,
        });
        Harness {
            sqs,
            queue_url,
            dlq_url,
            store,
            worker,
        }
    }

    impl Harness {
        /// Another worker on this harness's queue and table, with its own SparkLoop client and
        /// no ESP (`fast_config`).
        pub fn worker_calling(
            &self,
            sparkloop: Arc<dyn sparkbridge::ports::SparkLoopApi>,
        ) -> Worker {
            Worker {
                store: self.store.clone(),
                subscribers: self.store.clone(),
                sparkloop,
                esp: Arc::new(sparkbridge::adapters::esp::DryRunEsp("none")),
                queue: Arc::new(SqsWorkQueue::new(
                    self.sqs.clone(),
                    self.queue_url.clone(),
                    self.dlq_url.clone(),
                )),
                cfg: fast_config(),
            }
        }

        pub async fn send(&self, body: &str) {
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .expect("send");
        }

        /// Receives up to 10 messages as the SQS event Lambda would deliver.
        pub async fn batch(&self) -> SqsEvent {
            self.batch_hidden_for(30).await
        }

        /// A batch whose messages come back `secs` after a failure (the queue's visibility).
        pub async fn batch_hidden_for(&self, secs: i32) -> SqsEvent {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .visibility_timeout(secs)
                .send()
                .await
                .expect("receive");
            let mut ev = SqsEvent::default();
            for m in out.messages() {
                let mut msg = SqsMessage::default();
                msg.message_id = m.message_id().map(str::to_string);
                msg.receipt_handle = m.receipt_handle().map(str::to_string);
                msg.body = m.body().map(str::to_string);
                if let Some(attrs) = m.attributes() {
                    for (k, v) in attrs {
                        msg.attributes.insert(k.as_str().to_string(), v.clone());
                    }
                }
                ev.records.push(msg);
            }
            ev
        }

        /// Invokes the worker on one batch and deletes what succeeded; returns failed ids.
        pub async fn invoke(&self, worker: &Worker, ev: &SqsEvent) -> Vec<String> {
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            let resp = worker.handle(ev, deadline).await;
            let failed: Vec<String> = resp
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            for m in &ev.records {
                if !failed.contains(m.message_id.as_ref().unwrap()) {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(m.receipt_handle.clone().unwrap())
                        .send()
                        .await
                        .expect("delete");
                }
            }
            failed
        }

        /// Polls and invokes until the queue is empty (back-off is 0 in tests).
        pub async fn run_until_empty(&self) -> usize {
            for invocations in 0..50 {
                let ev = self.batch().await;
                if ev.records.is_empty() {
                    return invocations;
                }
                self.invoke(&self.worker, &ev).await;
            }
            panic!("queue did not drain in 50 invocations");
        }

        /// Gives the queue a redrive policy to the harness's DLQ, as the template does.
        pub async fn redrive_after(&self, max_receive_count: u32) {
            use aws_sdk_sqs::types::QueueAttributeName;
            let arn = self
                .sqs
                .get_queue_attributes()
                .queue_url(&self.dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("DLQ attributes")
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .expect("DLQ ARN");
            let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count});
            self.sqs
                .set_queue_attributes()
                .queue_url(&self.queue_url)
                .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
                .send()
                .await
                .expect("set the redrive policy");
        }

        pub async fn dlq(&self) -> Vec<aws_sdk_sqs::types::Message> {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive dlq");
            out.messages().to_vec()
        }
    }

    /// An envelope as ingest would queue it.
    pub fn envelope(
        provider: &str,
        kind: &str,
        dedupe_id: &str,
        email: &str,
        payload: &str,
    ) -> String {
        serde_json::json!({
            "v": 1, "provider": provider, "kind": kind, "dedupe_id": dedupe_id,
            "received_at": chrono::Utc::now().to_rfc3339(),
            "subscriber": {"email": email},
            "payload": serde_json::from_str::<serde_json::Value>(payload).unwrap(),
        })
        .to_string()
    }
}

/// Drains raw messages (body, string attributes) from a queue.
pub async fn drain_raw(
    sqs: &SqsClient,
    url: &str,
) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let mut out = Vec::new();
    loop {
        let res = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive");
        if res.messages().is_empty() {
            return out;
        }
        for m in res.messages() {
            let attrs = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.body().unwrap_or_default().to_string(), attrs));
        }
    }
}
