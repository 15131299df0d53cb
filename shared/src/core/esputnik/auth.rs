//! eSputnik's webhook "login and password" (sent as HTTP Basic), or a secret URL token.

use base64::Engine;

use crate::core::secret::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookAuthConfigError {
    #[error("set ESPUTNIK_WEBHOOK_USER and ESPUTNIK_WEBHOOK_PASSWORD, or ESPUTNIK_WEBHOOK_TOKEN (or ESPUTNIK_ALLOW_UNAUTHENTICATED=true to accept anyone)")]
    NothingConfigured,
    #[error("ESPUTNIK_WEBHOOK_USER and ESPUTNIK_WEBHOOK_PASSWORD must be set together")]
    HalfBasic,
    /// Basic auth sends `user:password`; a colon in the user name would split it elsewhere,
    /// so no request could ever log in.
    #[error("ESPUTNIK_WEBHOOK_USER must not contain ':' (Basic auth could never match it)")]
    ColonInUser,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("wrong credentials")]
    Wrong,
}

#[derive(Debug, Clone)]
pub struct WebhookAuth {
    basic: Option<(Secret, Secret)>,
    token: Option<Secret>,
    allow_anyone: bool,
}

impl WebhookAuth {
    pub fn new(
        user: Option<Secret>,
        password: Option<Secret>,
        token: Option<Secret>,
        allow_unauthenticated: bool,
    ) -> Result<Self, WebhookAuthConfigError> {
        let basic = match (user, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err(WebhookAuthConfigError::HalfBasic),
        };
        if basic
            .as_ref()
            .is_some_and(|(u, _)| u.expose().contains(':'))
        {
            return Err(WebhookAuthConfigError::ColonInUser);
        }
        if basic.is_none() && token.is_none() && !allow_unauthenticated {
            return Err(WebhookAuthConfigError::NothingConfigured);
        }
        // Only when nothing is configured does "allow unauthenticated" open the door.
        let allow_anyone = basic.is_none() && token.is_none();
        Ok(Self {
            basic,
            token,
            allow_anyone,
        })
    }

    /// Accepts either configured mechanism. `authorization` is the header value, `token`
    /// the `token` query parameter.
    pub fn check(&self, authorization: Option<&str>, token: Option<&str>) -> Result<(), AuthError> {
        if self.allow_anyone {
            return Ok(());
        }
        let mut presented = false;
        if let (Some(expected), Some(given)) = (&self.token, token) {
            presented = true;
            if expected.matches(given.as_bytes()) {
                return Ok(());
            }
        }
        if let (Some((user, pass)), Some(header)) = (&self.basic, authorization) {
            presented = true;
            if let Some(decoded) = decode_basic(header) {
                let (u, p) = split_credentials(&decoded)?;
                // Both halves are always compared, so timing does not tell which was wrong.
                let ok_user = user.matches(u);
                let ok_pass = pass.matches(p);
                if ok_user & ok_pass {
                    return Ok(());
                }
            }
        }
        Err(if presented {
            AuthError::Wrong
        } else {
            AuthError::Missing
        })
    }
}

/// The decoded `user:password` bytes of a Basic header.
fn decode_basic(header: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
}

/// Splits at the first colon, without copying. Bytes that are not UTF-8 cannot equal a
/// configured secret (always UTF-8), so they fail the comparison as they failed decoding.
fn split_credentials(decoded: &[u8]) -> Result<(&[u8], &[u8]), AuthError> {
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(AuthError::Wrong)?;
    Ok((&decoded[..colon], &decoded[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<Secret> {
        Some(Secret::new(v))
    }

    fn basic(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn configuration_rules() {
        assert_eq!(
            WebhookAuth::new(None, None, None, false).unwrap_err(),
            WebhookAuthConfigError::NothingConfigured
        );
        assert_eq!(
            WebhookAuth::new(s("u"), None, None, false).unwrap_err(),
            WebhookAuthConfigError::HalfBasic
        );
        assert_eq!(
            WebhookAuth::new(s("us:er"), s("p"), None, false).unwrap_err(),
            WebhookAuthConfigError::ColonInUser
        );
        assert!(WebhookAuth::new(s("user"), s("p:ss"), None, false).is_ok());
        assert!(WebhookAuth::new(None, None, None, true).is_ok());
        assert!(WebhookAuth::new(None, None, s("t"), false).is_ok());
    }

    #[test]
    fn checks_by_table() {
        let both = WebhookAuth::new(s("user"), s("p:ss"), s("tok"), false).unwrap();
        let basic_only = WebhookAuth::new(s("user"), s("p:ss"), None, false).unwrap();
        let open = WebhookAuth::new(None, None, None, true).unwrap();
        let good = basic("user", "p:ss");
        /// (configuration, Authorization header, `?token=`, answer)
        type Case<'a> = (
            &'a WebhookAuth,
            Option<String>,
            Option<&'a str>,
            Result<(), AuthError>,
        );
        let cases: Vec<Case> = vec![
            (&both, Some(good.clone()), None, Ok(())),
            (&both, None, Some("tok"), Ok(())),
            (&both, Some(basic("user", "wrong")), Some("tok"), Ok(())),
            (
                &both,
                Some(basic("user", "wrong")),
                None,
                Err(AuthError::Wrong),
            ),
            (
                &both,
                Some(basic("User", "p:ss")),
                None,
                Err(AuthError::Wrong),
            ),
            (&both, None, Some("tok2"), Err(AuthError::Wrong)),
            (&both, None, None, Err(AuthError::Missing)),
            (
                &both,
                Some("Bearer abc".into()),
                None,
                Err(AuthError::Wrong),
            ),
            (&both, Some("Basic !!!".into()), None, Err(AuthError::Wrong)),
            (
                &basic_only,
                Some(good.replace("Basic", "basic")),
                None,
                Ok(()),
            ),
            (&basic_only, None, Some("tok"), Err(AuthError::Missing)),
            (&open, None, None, Ok(())),
        ];
        for (i, (auth, header, token, want)) in cases.into_iter().enumerate() {
            assert_eq!(auth.check(header.as_deref(), token), want, "case {i}");
        }
    }
}
