//! Logging and metrics setup shared by every function and by `sparkbridge dev`.

pub mod metrics;

/// JSON or text logs per Lambda's advanced logging controls (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), else `RUST_LOG`; the runtime adds request ids to every line.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// The same settings, writing through a background thread (`sparkbridge dev`). Not for
/// Lambda: a frozen execution environment would hold lines not yet written. Lossless: when
/// the buffer is full, logging waits rather than dropping lines. Keep the guard alive; its
/// drop flushes.
pub fn init_buffered() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    lambda_runtime::tracing::init_default_subscriber_with_writer(writer);
    guard
}
