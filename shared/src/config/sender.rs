//! The webhook credentials `sparkbridge send` and `smoke` sign with: the variables the ingest
//! functions read.

use super::Env;
use crate::core::sender::SenderCredentials;

impl SenderCredentials {
    /// `LOOPS_SIGNING_SECRET`, `ESPUTNIK_WEBHOOK_USER`/`_PASSWORD`, `ESPUTNIK_WEBHOOK_TOKEN`,
    /// `SPARKLOOP_WEBHOOK_TOKEN`; blank counts as unset.
    pub fn from_env(env: &Env) -> Self {
        let var = |n: &str| env.non_blank(n).map(str::to_string);
        Self {
            loops_secret: var("LOOPS_SIGNING_SECRET"),
            esputnik_user: var("ESPUTNIK_WEBHOOK_USER"),
            esputnik_password: var("ESPUTNIK_WEBHOOK_PASSWORD"),
            esputnik_token: var("ESPUTNIK_WEBHOOK_TOKEN"),
            sparkloop_token: var("SPARKLOOP_WEBHOOK_TOKEN"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_credentials_are_unset() {
        let c = SenderCredentials::from_env(&Env::from_pairs([
            ("LOOPS_SIGNING_SECRET", "whsec_x"),
            ("ESPUTNIK_WEBHOOK_TOKEN", " "),
        ]));
        assert_eq!(c.loops_secret.as_deref(), Some("whsec_x"));
        assert_eq!(c.esputnik_token, None);
    }
}
