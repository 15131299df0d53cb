//! `handler-floor [ADDR]`: `GET /healthz` as `sparkbridge dev` answers it, and
//! `POST /webhooks/loops`, which reads the body, spends `SPIN_NS` nanoseconds of CPU and answers
//! as dev's ingest does (200, no body). The same runtime (tokio's multi-threaded one, a worker per core), HTTP stack (axum on
//! hyper, HTTP/1.1) and allocator (mimalloc) as dev; nothing else.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::Router;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const JSON: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "application/json")];

#[tokio::main]
async fn main() {
    let spin = Duration::from_nanos(
        std::env::var("SPIN_NS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3999".into());
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { (JSON, r#"{"status":"ok","mode":"memory"}"#) }),
        )
        .route(
            "/webhooks/loops",
            post(move |body: Bytes| async move {
                busy(spin);
                std::hint::black_box(body);
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    axum::serve(listener, app).await.expect("serves");
}

/// Keeps the core busy for `d`, as a handler's work would.
fn busy(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}
