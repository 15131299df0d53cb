//! Logging and metrics setup shared by every function and by `sparkbridge dev`.

pub mod metrics;

/// JSON or text logs per Lambda's advanced logging controls (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), else `RUST_LOG`; the runtime adds request ids to every line.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
