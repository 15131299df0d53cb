//! Lambda's own logging settings (advanced logging controls), and `RUST_LOG` outside Lambda.

use std::str::FromStr;

use super::Env;
use crate::telemetry::{LevelFilter, LogFormat};

/// How the functions and `sparkbridge dev` log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// `Json` when `AWS_LAMBDA_LOG_FORMAT` is `JSON` (the template sets `LogFormat: JSON`).
    pub format: LogFormat,
    /// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO (also when unreadable).
    pub level: LevelFilter,
    /// Metrics as EMF lines: inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) or with
    /// `SPARKBRIDGE_EMF=1`; elsewhere they would only be noise.
    pub emf: bool,
}

impl LogSettings {
    pub fn from_env(env: &Env) -> Self {
        let format = if env
            .get("AWS_LAMBDA_LOG_FORMAT")
            .unwrap_or_default()
            .eq_ignore_ascii_case("json")
        {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
        let level = env
            .get("AWS_LAMBDA_LOG_LEVEL")
            .or_else(|| env.get("RUST_LOG"))
            .unwrap_or("INFO");
        Self {
            format,
            level: LevelFilter::from_str(level).unwrap_or(LevelFilter::INFO),
            emf: env.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
                || env.get("SPARKBRIDGE_EMF") == Some("1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_settings_win_over_rust_log() {
        for (vars, format, level) in [
            (vec![], LogFormat::Text, LevelFilter::INFO),
            (
                vec![("AWS_LAMBDA_LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
                LogFormat::Json,
                LevelFilter::DEBUG,
            ),
            (
                vec![("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "debug")],
                LogFormat::Text,
                LevelFilter::WARN,
            ),
            (
                vec![("RUST_LOG", "loud")],
                LogFormat::Text,
                LevelFilter::INFO,
            ),
        ] {
            let got = LogSettings::from_env(&Env::from_pairs(vars.clone()));
            let emf = false;
            assert_eq!(got, LogSettings { format, level, emf }, "{vars:?}");
        }
    }

    #[test]
    fn metrics_are_emitted_inside_lambda_or_when_asked() {
        let emf = |vars: Vec<(&str, &str)>| LogSettings::from_env(&Env::from_pairs(vars)).emf;
        assert!(emf(vec![("AWS_LAMBDA_FUNCTION_NAME", "worker")]));
        assert!(emf(vec![("SPARKBRIDGE_EMF", "1")]));
        assert!(!emf(vec![("SPARKBRIDGE_EMF", "yes")]));
        assert!(!emf(vec![]));
    }
}
