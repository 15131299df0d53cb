//! Development-only credentials, so `sparkbridge dev` and `sparkbridge send` work together
//! with no configuration. Never used by the Lambda functions; `dev` says when it uses them.

use sparkbridge::config::Env;

pub const LOOPS_SIGNING_SECRET: &str = "whsec_ZGV2LW9ubHktc2lnbmluZy1zZWNyZXQtc3Bhcmticmlk";
pub const ESPUTNIK_WEBHOOK_USER: &str = "dev";
pub const ESPUTNIK_WEBHOOK_PASSWORD: &str = "dev-password";
pub const SPARKLOOP_WEBHOOK_TOKEN: &str = "dev-sparkloop-token";

/// Sets each webhook secret that `env` lacks (unset or blank) to its development default and
/// returns the names it set.
pub fn apply(env: &mut Env) -> Vec<&'static str> {
    let mut set = Vec::new();
    for (name, value) in [
        ("LOOPS_SIGNING_SECRET", LOOPS_SIGNING_SECRET),
        ("ESPUTNIK_WEBHOOK_USER", ESPUTNIK_WEBHOOK_USER),
        ("ESPUTNIK_WEBHOOK_PASSWORD", ESPUTNIK_WEBHOOK_PASSWORD),
        ("SPARKLOOP_WEBHOOK_TOKEN", SPARKLOOP_WEBHOOK_TOKEN),
    ] {
        if env.non_blank(name).is_none() {
            env.insert(name, value);
            set.push(name);
        }
    }
    set
}
