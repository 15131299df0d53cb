//! Field readers for provider payloads read after ingest. A provider may send any JSON in any
//! field; a field of an unexpected shape reads as absent instead of failing the whole event
//! (the event is authenticated and kept: what it lacks is decided by the rules).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The field as `T` when it has that shape, else absent.
pub fn shaped<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// A string (not empty) or a number, as text: ids arrive as either.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A string as sent (empty included); anything else is absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// A boolean; anything else is absent.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Value::deserialize(d)?.as_bool())
}

/// The value as sent, `null` included (it is passed on as is).
pub fn raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Reads `payload` as `T`: through a `Value` first, so that a repeated key counts once (the
/// last one, as everywhere else) instead of failing the read; anything but an object reads as
/// `T::default()`.
pub fn payload<T: DeserializeOwned + Default>(payload: &str) -> T {
    serde_json::from_str::<Value>(payload)
        .ok()
        .filter(Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Probe {
        #[serde(default, deserialize_with = "text")]
        id: Option<String>,
        #[serde(default, deserialize_with = "boolean")]
        flag: Option<bool>,
        #[serde(default, deserialize_with = "raw")]
        count: Option<Value>,
        #[serde(default, deserialize_with = "shaped")]
        inner: Option<Inner>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "text")]
        name: Option<String>,
    }

    #[test]
    fn fields_of_another_shape_read_as_absent() {
        let cases: [(&str, Probe); 6] = [
            (
                r#"{"id":"a","flag":true,"count":3,"inner":{"name":"n"}}"#,
                Probe {
                    id: Some("a".into()),
                    flag: Some(true),
                    count: Some(3.into()),
                    inner: Some(Inner {
                        name: Some("n".into()),
                    }),
                },
            ),
            (
                r#"{"id":12,"flag":"yes","inner":"text"}"#,
                Probe {
                    id: Some("12".into()),
                    ..Probe::default()
                },
            ),
            (
                r#"{"id":"","count":null,"inner":{"name":[1]}}"#,
                Probe {
                    count: Some(Value::Null),
                    inner: Some(Inner::default()),
                    ..Probe::default()
                },
            ),
            (
                r#"{"id":"first","id":"last"}"#,
                Probe {
                    id: Some("last".into()),
                    ..Probe::default()
                },
            ),
            ("[1,2]", Probe::default()),
            ("not json", Probe::default()),
        ];
        for (body, want) in cases {
            assert_eq!(payload::<Probe>(body), want, "{body}");
        }
    }
}
