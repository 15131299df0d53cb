//! Authenticating a delivery as each provider would: `sparkbridge send` and the tests use it
//! to sign sample events, so what they exercise is exactly what the verifiers accept.

use base64::Engine;

use crate::core::envelope::Provider;
use crate::core::loops::SigningKeys;

/// Read from the environment by `crate::config` (the variables the ingest functions read).
#[derive(Debug, Clone, Default)]
pub struct SenderCredentials {
    /// First entry of `LOOPS_SIGNING_SECRET`.
    pub loops_secret: Option<String>,
    pub esputnik_user: Option<String>,
    pub esputnik_password: Option<String>,
    pub esputnik_token: Option<String>,
    pub sparkloop_token: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("no {0} configured to authenticate a {1} delivery")]
    Missing(&'static str, Provider),
    #[error("{0}")]
    BadSecret(String),
}

/// Headers (and for eSputnik's token, a query string) that authenticate `body`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Authentication {
    pub headers: Vec<(String, String)>,
    pub query: Option<String>,
}

pub fn authenticate(
    provider: Provider,
    body: &[u8],
    webhook_id: &str,
    creds: &SenderCredentials,
    now: i64,
) -> Result<Authentication, SendError> {
    let mut auth = Authentication::default();
    match provider {
        Provider::Loops => {
            let secret = creds
                .loops_secret
                .as_deref()
                .ok_or(SendError::Missing("LOOPS_SIGNING_SECRET", provider))?;
            let first = secret.split(',').next().unwrap_or_default();
            let keys =
                SigningKeys::parse(first).map_err(|e| SendError::BadSecret(e.to_string()))?;
            auth.headers.push(("webhook-id".into(), webhook_id.into()));
            auth.headers
                .push(("webhook-timestamp".into(), now.to_string()));
            auth.headers
                .push(("webhook-signature".into(), keys.sign(webhook_id, now, body)));
        }
        Provider::Esputnik => match (
            &creds.esputnik_user,
            &creds.esputnik_password,
            &creds.esputnik_token,
        ) {
            (Some(u), Some(p), _) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                auth.headers
                    .push(("authorization".into(), format!("Basic {b64}")));
            }
            (_, _, Some(t)) => {
                let q: String =
                    percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
                        .collect();
                auth.query = Some(format!("token={q}"));
            }
            _ => {
                return Err(SendError::Missing(
                    "ESPUTNIK_WEBHOOK_USER/PASSWORD or ESPUTNIK_WEBHOOK_TOKEN",
                    provider,
                ))
            }
        },
        Provider::Sparkloop => {
            let t = creds
                .sparkloop_token
                .as_deref()
                .ok_or(SendError::Missing("SPARKLOOP_WEBHOOK_TOKEN", provider))?;
            auth.headers.push(("sparkloop-token".into(), t.into()));
        }
        Provider::Sparkbridge => return Err(SendError::Missing("route", provider)),
    }
    auth.headers
        .push(("content-type".into(), "application/json".into()));
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::esputnik::WebhookAuth;
    use crate::core::secret::Secret;

    #[test]
    fn what_we_sign_the_verifiers_accept() {
        let creds = SenderCredentials {
            loops_secret: Some(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                    .into(),
            ),
            esputnik_user: Some("u".into()),
            esputnik_password: Some("p".into()),
            esputnik_token: None,
            sparkloop_token: Some("tok".into()),
        };
        let a = authenticate(Provider::Loops, b"{}", "msg_1", &creds, 1_700_000_000).unwrap();
        let h = |n: &str| {
            a.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let keys = SigningKeys::parse(creds.loops_secret.as_deref().unwrap()).unwrap();
        assert_eq!(
            keys.verify(
                h("webhook-id"),
                h("webhook-timestamp"),
                h("webhook-signature"),
                b"{}",
                1_700_000_000
            ),
            Ok(())
        );

        let a = authenticate(Provider::Esputnik, b"[]", "", &creds, 0).unwrap();
        let basic = a
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        let auth =
            WebhookAuth::new(Some(Secret::new("u")), Some(Secret::new("p")), None, false).unwrap();
        assert_eq!(auth.check(basic.as_deref(), None), Ok(()));

        let token_only = SenderCredentials {
            esputnik_token: Some("a b+c".into()),
            ..Default::default()
        };
        let a = authenticate(Provider::Esputnik, b"[]", "", &token_only, 0).unwrap();
        assert_eq!(a.query.as_deref(), Some("token=a%20b%2Bc"));

        assert_eq!(
            authenticate(
                Provider::Sparkloop,
                b"{}",
                "",
                &SenderCredentials::default(),
                0
            )
            .unwrap_err(),
            SendError::Missing("SPARKLOOP_WEBHOOK_TOKEN", Provider::Sparkloop)
        );
    }
}
