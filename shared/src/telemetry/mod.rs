//! Logging and metrics setup shared by every function and by `sparkbridge dev`.

mod json;
pub mod metrics;

use std::io::IsTerminal;

use tracing::Dispatch;
use tracing_subscriber::filter::EnvFilter;
pub use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

pub use json::JsonLine;

use crate::config::{Env, LogSettings};

/// JSON or text logs per Lambda's advanced logging controls (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`), else `RUST_LOG` ([`LogSettings`]); the runtime adds request ids
/// to every line.
pub fn init(env: &Env) {
    init_with_writer(LogSettings::from_env(env), std::io::stdout);
}

/// The same settings, writing through a background thread (`sparkbridge dev`). Not for
/// Lambda: a frozen execution environment would hold lines not yet written. Lossless: when
/// the buffer is full, logging waits rather than dropping lines. Keep the guard alive; its
/// drop flushes.
#[cfg(feature = "dev")]
pub fn init_buffered(env: &Env) -> tracing_appender::non_blocking::WorkerGuard {
    // The thread writes whatever lines have queued up at once and flushes when the queue is
    // empty: one write for many lines under load instead of one per line (stdout alone
    // flushes at every newline).
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(stdout);
    init_with_writer(LogSettings::from_env(env), writer);
    guard
}

/// How lines are written: `Json` when `AWS_LAMBDA_LOG_FORMAT` is `JSON` (the template sets
/// `LogFormat: JSON`), else `Text` (`crate::config::LogSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The settings of `lambda_runtime`'s default subscriber, which this replaces: the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO (with `RUST_LOG` directives applied), no
/// time (Lambda adds it) and no target.
fn init_with_writer<W>(settings: LogSettings, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Colours only on a terminal: escape codes in a file or in CloudWatch are noise, and
    // writing them costs more than the rest of the line.
    let ansi = std::io::stdout().is_terminal();
    metrics::enable(settings.emf);
    dispatch(settings.format, settings.level, ansi, writer).init();
}

/// The subscriber: JSON lines from [`JsonLine`] (the layout of `tracing-subscriber`'s JSON
/// format, one compact line per event, nothing allocated per field), or `tracing-subscriber`'s
/// text lines. `RUST_LOG` directives apply on top of `level`. Public for the benchmarks.
pub fn dispatch<W>(format: LogFormat, level: LevelFilter, ansi: bool, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .finish()
            .into(),
        LogFormat::Text => builder.with_ansi(ansi).finish().into(),
    }
}

/// Log lines written in memory, for tests that read what a subscriber wrote.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for CapturedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
