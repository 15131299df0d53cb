//! A fake SparkLoop API: answers every request 200 `{}` (optionally after a delay), counts
//! calls and distinct paths, and remembers when the last call arrived.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;

#[derive(Default)]
pub struct Fake {
    pub calls: AtomicU64,
    pub delay: Mutex<Duration>,
    paths: Mutex<HashSet<String>>,
    last_call: Mutex<Option<Instant>>,
}

impl Fake {
    pub fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay: Mutex::new(delay),
            ..Default::default()
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn distinct_paths(&self) -> usize {
        self.paths.lock().unwrap().len()
    }

    pub fn last_call(&self) -> Option<Instant> {
        *self.last_call.lock().unwrap()
    }

    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    /// The router, to serve alone or merged into another server as its fallback.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(answer).with_state(self.clone())
    }

    /// Serves the fake on 127.0.0.1 and returns its base URL.
    pub async fn serve(self: &Arc<Self>) -> Result<String, String> {
        let (listener, port) = crate::util::listen_local().await?;
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(format!("http://127.0.0.1:{port}"))
    }
}

pub async fn answer(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let delay = *fake.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let key = format!("{} {}", req.method(), req.uri().path());
    // Drain the body like a real server would.
    let _ = axum::body::to_bytes(req.into_body(), 1 << 20).await;
    fake.paths.lock().unwrap().insert(key);
    *fake.last_call.lock().unwrap() = Some(Instant::now());
    fake.calls.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("static response")
}
