//! One compact JSON line per event, written straight into the line buffer of the `fmt` layer:
//! `{"level":"INFO","fields":{...},"span":{...}}`, the layout of `tracing-subscriber`'s JSON
//! format (so `fields.message`, `fields.provider`, `span.requestId` are where the operations
//! guide's Logs Insights queries look), without its list of every enclosing span, which
//! repeated the current span's fields on every line. The current span is written whole once,
//! on its first line; the lines after carry only its `requestId` ([`Later`]).
//!
//! Nothing is allocated per field: strings are escaped as they are written, `%`/`?` fields are
//! formatted through an escaping writer, and the span's fields are written from the text the
//! fields formatter stored when the span was created (the built-in format parses that text back
//! into a `serde_json::Value` for every event, twice).

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter; pair it with [`JsonFields`] for the span fields.
pub struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"level\":\"")?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_str("\",\"fields\":{")?;
        let mut fields = Fields {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('}')?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":")?;
            let later = {
                let ext = span.extensions();
                if let Some(Later(text)) = ext.get::<Later>() {
                    writer.write_str(text)?;
                    return writer.write_str("}\n");
                }
                // `JsonFields` stored the span's fields as a JSON object (`{}` when it has none).
                let stored = ext
                    .get::<FormattedFields<JsonFields>>()
                    .map(|f| f.fields.as_str())
                    .filter(|s| s.starts_with('{') && s.ends_with('}'))
                    .unwrap_or("{}");
                let (first, later) = Later::of(stored, span.name());
                writer.write_str(&first)?;
                later
            };
            span.extensions_mut().replace(later);
        }
        writer.write_str("}\n")
    }
}

/// What the lines after a span's first carry of it: its `requestId` alone. The first line
/// written inside a span (the Lambda runtime's `Lambda runtime invoke`, one per invocation)
/// carries every field and the name; repeating `xrayTraceId` and the name on every line
/// cost about 120 bytes a line, while the queries join lines on the request id.
struct Later(String);

impl Later {
    /// The first line's `span` object (every field and the name), and the later lines'. A
    /// span without a `requestId` is written whole on every line.
    fn of(stored: &str, name: &str) -> (String, Self) {
        let open = &stored[..stored.len() - 1];
        let mut first = String::with_capacity(stored.len() + name.len() + 12);
        first.push_str(open);
        if open.len() > 1 {
            first.push(',');
        }
        first.push_str("\"name\":");
        let _ = string(&mut first, name);
        first.push('}');
        let id = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(stored)
            .ok()
            .and_then(|fields| {
                fields
                    .get("requestId")
                    .map(|id| format!("{{\"requestId\":{id}}}"))
            });
        let later = Later(id.unwrap_or_else(|| first.clone()));
        (first, later)
    }
}

/// Writes the event's fields as JSON members.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.out.write_char(',')?;
        }
        string(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| value(self.out));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes a float (what the built-in format wrote); not finite is null.
        self.member(field, |w| match serde_json::Number::from_f64(value) {
            Some(n) => write!(w, "{n}"),
            None => w.write_str("null"),
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
    }
}

/// A JSON string: quoted and escaped.
fn string(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what passes through it as the inside of a JSON string, as serde_json does: `"`,
/// `\` and the control characters; everything else as is.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::telemetry::CapturedLog as Buf;

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn the_built_in_layout_without_the_span_list() {
        let got = lines(|| {
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "r-1",
                xrayTraceId = "x\"1"
            );
            let _g = span.enter();
            let delay: Option<u64> = None;
            tracing::info!(
                provider = "loops",
                status = 200,
                events = 1usize,
                kind = %"email.unsubscribed",
                note = ?"a\u{1}b",
                error = "line\nbreak \"quoted\" \\ tab\t",
                latency_ms = 1.25f64,
                whole_ms = 3.0f64,
                ok = true,
                delta = -4i64,
                delay_secs = delay,
                "webhook"
            );
        });
        assert_eq!(
            got,
            vec![serde_json::json!({
                "level": "INFO",
                "fields": {
                    "message": "webhook", "provider": "loops", "status": 200, "events": 1,
                    "kind": "email.unsubscribed", "note": "\"a\\u{1}b\"",
                    "error": "line\nbreak \"quoted\" \\ tab\t", "latency_ms": 1.25,
                    "whole_ms": 3.0, "ok": true, "delta": -4
                },
                "span": {"requestId": "r-1", "xrayTraceId": "x\"1", "name": "Lambda runtime invoke"}
            })]
        );
    }

    /// `xrayTraceId` and the span's name are on an invocation's first line only; the request
    /// id, which the operations guide's queries join on, is on every line.
    #[test]
    fn later_lines_of_a_span_carry_only_its_request_id() {
        let got = lines(|| {
            for id in ["r-1", "r-2"] {
                let span = tracing::info_span!(
                    "Lambda runtime invoke",
                    requestId = id,
                    xrayTraceId = "Root=1-2"
                );
                let _g = span.enter();
                tracing::info!(n = 1u64, "record");
                tracing::info!(n = 2u64, "record");
            }
        });
        let spans: Vec<_> = got.iter().map(|l| l["span"].clone()).collect();
        assert_eq!(
            spans,
            [
                serde_json::json!({"requestId": "r-1", "xrayTraceId": "Root=1-2", "name": "Lambda runtime invoke"}),
                serde_json::json!({"requestId": "r-1"}),
                serde_json::json!({"requestId": "r-2", "xrayTraceId": "Root=1-2", "name": "Lambda runtime invoke"}),
                serde_json::json!({"requestId": "r-2"}),
            ]
        );
    }

    #[test]
    fn outside_a_span_and_in_a_span_without_fields() {
        let got = lines(|| {
            tracing::warn!("plain");
            let span = tracing::info_span!("bare");
            let _g = span.enter();
            tracing::error!(n = 1u64, "inside");
            tracing::error!(n = 2u64, "inside");
        });
        assert_eq!(
            got,
            vec![
                serde_json::json!({"level": "WARN", "fields": {"message": "plain"}}),
                serde_json::json!({"level": "ERROR", "fields": {"message": "inside", "n": 1}, "span": {"name": "bare"}}),
                serde_json::json!({"level": "ERROR", "fields": {"message": "inside", "n": 2}, "span": {"name": "bare"}}),
            ]
        );
    }

    #[test]
    fn every_control_character_is_escaped() {
        let all: String = (0u8..0x20)
            .map(char::from)
            .chain(['"', '\\', 'é'])
            .collect();
        let got = lines(|| tracing::info!(s = all.as_str(), d = %all, "x"));
        assert_eq!(got[0]["fields"]["s"], all.as_str());
        assert_eq!(got[0]["fields"]["d"], all.as_str());
    }
}
