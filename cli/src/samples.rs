//! The embedded sample events (API Gateway v2 requests from `events/`).

use crate::error::CliError;

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

pub struct Sample {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Finds `<provider>/<event>` among the embedded samples, or reads `event` as a file path.
pub fn load(provider: &str, event: &str) -> Result<Sample, CliError> {
    let text = match SAMPLES
        .iter()
        .find(|(p, name, _)| *p == provider && *name == event)
    {
        Some((_, _, text)) => text.to_string(),
        None if std::path::Path::new(event).is_file() => std::fs::read_to_string(event)
            .map_err(|e| CliError::Unreadable(format!("cannot read {event}: {e}")))?,
        None => {
            let known: Vec<&str> = SAMPLES
                .iter()
                .filter(|(p, _, _)| *p == provider)
                .map(|(_, n, _)| *n)
                .collect();
            return Err(CliError::Usage(format!(
                "no sample {provider}/{event} and no such file; samples: {}",
                known.join(", ")
            )));
        }
    };
    parse(&text)
}

/// Accepts an API Gateway v2 request, or a bare provider payload (sent as the body).
pub fn parse(text: &str) -> Result<Sample, CliError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| CliError::Unreadable(format!("not JSON: {e}")))?;
    if v.get("version").and_then(|x| x.as_str()) != Some("2.0") || v.get("requestContext").is_none()
    {
        return Ok(Sample {
            method: "POST".into(),
            headers: Vec::new(),
            body: text.as_bytes().to_vec(),
        });
    }
    let body = v.get("body").and_then(|b| b.as_str()).unwrap_or_default();
    let body = if v.get("isBase64Encoded").and_then(|b| b.as_bool()) == Some(true) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| CliError::Unreadable(format!("body is not base64: {e}")))?
    } else {
        body.as_bytes().to_vec()
    };
    let headers = v
        .get("headers")
        .and_then(|h| h.as_object())
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Sample {
        method: v
            .pointer("/requestContext/http/method")
            .and_then(|m| m.as_str())
            .unwrap_or("POST")
            .to_string(),
        headers,
        body,
    })
}
