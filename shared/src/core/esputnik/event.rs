//! eSputnik activity events: a JSON array, one element per activity.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::envelope::{derive_dedupe_id, raw_string, sha256_hex, Normalized, Subscriber};
use crate::core::json_read::Scalar;
use crate::core::kind::{EsputnikKind, Kind};
use crate::core::time;

/// Every `activityStatus` eSputnik documents (docs/providers/esputnik.md, section 2): the
/// names of `EsputnikKind`.
pub const KNOWN_STATUSES: &[&str] = <EsputnikKind as strum::VariantNames>::VARIANTS;

/// One element of the array, ready to become one queue message.
#[derive(Debug)]
pub struct Element {
    pub dedupe_id: String,
    pub event: Normalized,
}

/// The fields an element's key and event are made of, borrowed from the body where they are
/// strings without escapes; ids of any JSON type, kept as their text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity<'a> {
    #[serde(borrow)]
    activity_status: Cow<'a, str>,
    #[serde(default, borrow)]
    activity_date_time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    contact_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sms: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    external_customer_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    iid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message_instance_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    click_event_link: Option<Cow<'a, str>>,
}

/// Splits a verified body into elements. Never fails: eSputnik holds back every later event
/// until one request succeeds, so whatever cannot be understood is parked with its raw text
/// (and seen in the DLQ) instead of refusing the request.
pub fn split(body: &[u8], tz: Tz) -> Vec<Element> {
    let Ok(text) = std::str::from_utf8(body) else {
        return vec![parked(
            raw_string(&String::from_utf8_lossy(body)),
            "body is not UTF-8",
        )];
    };
    if let Some(elements) = read_in_one_pass(text, tz) {
        return elements;
    }
    split_element_by_element(text, tz)
}

/// The body read as a JSON value first, then each element on its own: what cannot be read is
/// parked with the reason.
fn split_element_by_element(text: &str, tz: Tz) -> Vec<Element> {
    if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) {
        return items.into_iter().map(|raw| element(raw, tz)).collect();
    }
    match serde_json::from_str::<Box<RawValue>>(text) {
        // A lone object: not the documented shape, but clearly one event.
        Ok(raw) if text.trim_start().starts_with('{') => vec![element(&raw, tz)],
        Ok(raw) => vec![parked(raw, "body is not a JSON array of activity objects")],
        Err(e) => vec![parked(
            raw_string(text),
            &format!("body is not valid JSON: {e}"),
        )],
    }
}

/// The documented shape read in one pass: an array of activity objects, each element made from
/// what was read from it and its text. `None` for anything else (not an array, an element that
/// is not an activity object, text after the array); `split` then reads the body element by
/// element as before, which parks what cannot be read with the reason.
fn read_in_one_pass(text: &str, tz: Tz) -> Option<Vec<Element>> {
    let mut rest = json_ws(text).strip_prefix('[')?;
    let mut read = Vec::new();
    if let Some(after) = json_ws(rest).strip_prefix(']') {
        return json_ws(after).is_empty().then_some(read);
    }
    loop {
        rest = json_ws(rest);
        // serde would also read a struct from an array (`["READ"]`): objects only.
        if !rest.starts_with('{') {
            return None;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Activity>();
        let activity = stream.next()?.ok()?;
        let (raw, after) = rest.split_at(stream.byte_offset());
        read.push(element_of(activity, raw, tz));
        rest = json_ws(after);
        match rest.as_bytes().first() {
            Some(b',') => rest = &rest[1..],
            Some(b']') => return json_ws(&rest[1..]).is_empty().then_some(read),
            _ => return None,
        }
    }
}

/// JSON's whitespace skipped from the front.
fn json_ws(text: &str) -> &str {
    text.trim_start_matches(crate::core::json_read::JSON_WHITESPACE)
}

fn element(raw: &RawValue, tz: Tz) -> Element {
    // serde would also read a struct from an array (`["READ"]`): insist on an object.
    if !raw.get().trim_start().starts_with('{') {
        return parked(raw.to_owned(), "element is not a JSON object");
    }
    match serde_json::from_str::<Activity>(raw.get()) {
        Ok(activity) => element_of(activity, raw.get(), tz),
        Err(e) => parked(
            raw.to_owned(),
            &format!("element is not an activity object: {e}"),
        ),
    }
}

fn element_of(activity: Activity<'_>, raw: &str, tz: Tz) -> Element {
    let contact_id = activity
        .contact_id
        .as_ref()
        .map(|id| id.text().into_owned());
    let message_instance_id = activity.message_instance_id.as_ref().map(Scalar::text);
    // Why this key: eSputnik resends the same request (same elements, same fields) until it
    // gets a 200, so the key is identical across retries. Across real events at least one of
    // these differs: iid + messageInstanceId pin the message copy, contactId the recipient,
    // activityStatus the kind, activityDateTime (to the second) the moment, and
    // clickEventLink tells two clicks on different links apart.
    let dedupe_id = derive_dedupe_id(&[
        activity.iid.as_deref().unwrap_or(""),
        contact_id.as_deref().unwrap_or(""),
        message_instance_id.as_deref().unwrap_or(""),
        &activity.activity_status,
        activity.activity_date_time.as_deref().unwrap_or(""),
        activity.click_event_link.as_deref().unwrap_or(""),
        activity
            .email
            .as_deref()
            .or(activity.sms.as_deref())
            .unwrap_or(""),
    ]);
    let kind = activity
        .activity_status
        .parse::<EsputnikKind>()
        .map_or(Kind::Unknown, Kind::Esputnik);
    Element {
        dedupe_id,
        event: Normalized {
            kind,
            subscriber: Subscriber {
                email: activity
                    .email
                    .filter(|e| !e.is_empty())
                    .map(Cow::into_owned),
                esp_contact_id: contact_id,
                sparkloop_id: None,
                external_id: activity
                    .external_customer_id
                    .as_ref()
                    .map(|id| id.text().into_owned()),
            },
            occurred_at: activity
                .activity_date_time
                .as_deref()
                .and_then(|t| localize(t, tz)),
            parked: None,
            // SAFETY: `raw` is the text of one element that serde_json read whole, either as
            // the activity object it ends with (`read_in_one_pass`: `byte_offset` after the
            // closing brace, nothing around it) or as a `RawValue`: one well-formed JSON value
            // with no whitespace around it, as `from_string_unchecked` asks.
            payload: unsafe { RawValue::from_string_unchecked(raw.to_owned()) },
        },
    }
}

fn parked(raw: Box<RawValue>, reason: &str) -> Element {
    Element {
        // Retries resend identical bytes, so the hash of the raw element is stable.
        dedupe_id: sha256_hex(raw.get().as_bytes()),
        event: Normalized {
            kind: Kind::Parked,
            subscriber: Subscriber::default(),
            occurred_at: None,
            parked: Some(reason.to_string()),
            payload: raw,
        },
    }
}

/// `activityDateTime` has no offset ("2023-09-14T08:30:03"); it is read in the configured zone.
/// A time that is not one, or lies outside what RFC 3339 can write once in UTC (year 9999 late
/// on 31 December west of UTC, a five-digit year), is absent: the receipt time stands in.
pub(crate) fn localize(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if may_have_offset(text) {
        if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
            return time::within_range(with_offset.with_timezone(&Utc));
        }
    }
    let naive = plain_naive(text)
        .or_else(|| LOCAL_FORMATS.iter().find_map(|items| naive_in(text, items)))?;
    // four-digit years only: the zone's offset then cannot reach the ends of chrono's range
    if !(0..=9999).contains(&naive.year()) {
        return None;
    }
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .and_then(time::within_range)
}

/// Whether `text` could be RFC 3339: its offset (`Z`, `+hh:mm`, `-hh:mm`) follows the 19
/// characters of date and time. eSputnik sends none, and a failed RFC 3339 reading costs
/// as much as the reading that follows it.
fn may_have_offset(text: &str) -> bool {
    text.as_bytes()
        .get(19..)
        .is_some_and(|tail| tail.iter().any(|b| matches!(b, b'Z' | b'z' | b'+' | b'-')))
}

/// The form eSputnik sends, `YYYY-MM-DDTHH:MM:SS`, read digit by digit; `None` for any other
/// text and for what this form does not hold (a leap second), which the formats then read.
/// Where it gives a time, it is the one `%Y-%m-%dT%H:%M:%S%.f` gives.
fn plain_naive(text: &str) -> Option<NaiveDateTime> {
    let b: &[u8; 19] = text.as_bytes().try_into().ok()?;
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?.and_hms_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
    )
}

/// The two forms of a time without offset, as `NaiveDateTime::parse_from_str` reads them
/// (`%Y-%m-%dT%H:%M:%S%.f`, then with a space for `T`), their formats read once rather than
/// on every element.
static LOCAL_FORMATS: LazyLock<[Vec<Item<'static>>; 2]> = LazyLock::new(|| {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"].map(|format| {
        StrftimeItems::new(format)
            .parse_to_owned()
            .expect("a valid format")
    })
});

/// `NaiveDateTime::parse_from_str` with the format already read.
fn naive_in(text: &str, items: &[Item<'static>]) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, items.iter()).ok()?;
    parsed.to_naive_datetime_with_offset(0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_splits_as_element_by_element_does() {
        let bodies = [
            DOC_BATCH.to_string(),
            format!(" \n{DOC_BATCH}\t "),
            "[]".into(),
            " [ ] ".into(),
            r#"[ {"activityStatus":"READ","contactId":12.50,"iid":"a\u00e9\"b","email":"x@y.z"} , {"activityStatus":"CLICKED","messageInstanceId":{"b":1,"a":[true,null]},"externalCustomerId":18446744073709551615,"clickEventLink":"https://e/\/x"} ]"#.into(),
            r#"[{"activityStatus":"READ","contactId":null,"email":"","sms":"+100","statusData":{"x":[1,{"y":"z"}]}}]"#.into(),
            // each of these leaves the one pass: element by element parks what it cannot read
            r#"[{"activityStatus":"READ"},["READ"]]"#.into(),
            r#"[{"activityStatus":"READ"},{"activityStatus":7}]"#.into(),
            r#"[{"activityStatus":"READ","activityStatus":"SENT"}]"#.into(),
            r#"[{"activityStatus":"READ","contactId":1e400}]"#.into(),
            r#"[{"activityStatus":"READ"}] x"#.into(),
            r#"[{"activityStatus":"READ"},]"#.into(),
            r#"[{"activityStatus":"READ"} {"activityStatus":"SENT"}]"#.into(),
            r#"{"activityStatus":"READ","email":"a@b.c"}"#.into(),
            r#""READ""#.into(),
            "[".into(),
            "".into(),
        ];
        for body in &bodies {
            let fast = split(body.as_bytes(), Tz::Europe__Kyiv);
            let slow = split_element_by_element(body, Tz::Europe__Kyiv);
            assert_eq!(fast.len(), slow.len(), "{body}");
            for (a, b) in fast.iter().zip(&slow) {
                assert_eq!(a.dedupe_id, b.dedupe_id, "{body}");
                assert_eq!(a.event.kind, b.event.kind, "{body}");
                assert_eq!(a.event.subscriber, b.event.subscriber, "{body}");
                assert_eq!(a.event.occurred_at, b.event.occurred_at, "{body}");
                assert_eq!(a.event.parked, b.event.parked, "{body}");
                assert_eq!(a.event.payload.get(), b.event.payload.get(), "{body}");
            }
        }
        assert!(read_in_one_pass(&bodies[0], Tz::UTC).is_some());
        assert!(read_in_one_pass(&bodies[4], Tz::UTC).is_some());
        assert!(read_in_one_pass(&bodies[6], Tz::UTC).is_none());
    }

    #[test]
    fn formats_read_once_parse_what_parse_from_str_parses() {
        let formats = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"];
        for text in [
            "2023-09-14T08:30:03",
            "2023-09-14 08:30:03.123456",
            "2023-09-14T08:30:03.5Z",
            "2023-9-4T8:3:3",
            " 2023-09-14T08:30:03",
            "2023-09-14T08:30:03 ",
            "2023-09-14t08:30:03",
            "2023-02-30T08:30:03",
            "2023-09-14T24:00:00",
            "2023-09-14T23:59:60",
            "+12023-09-14T08:30:03",
            "-0001-09-14T08:30:03",
            "2023-09-14",
            "",
        ] {
            for (format, items) in formats.iter().zip(LOCAL_FORMATS.iter()) {
                assert_eq!(
                    naive_in(text, items),
                    NaiveDateTime::parse_from_str(text, format).ok(),
                    "{text:?} as {format}"
                );
            }
        }
    }

    /// Every text the digit-by-digit reading gives a time for, the format gives the same.
    #[test]
    fn plain_times_read_as_the_format_reads_them() {
        let mut read = 0;
        for date in [
            "2023-09-14",
            "0000-01-01",
            "9999-12-31",
            "2024-02-29",
            "2023-02-29",
            "2023-00-10",
            "2023-13-01",
            "2023-04-31",
            "2023-4-014",
            "20a3-09-14",
        ] {
            for time in [
                "08:30:03", "00:00:00", "23:59:59", "23:59:60", "24:00:00", "12:60:00", "12:00:61",
                "1:30:033", "12:3a:00",
            ] {
                for sep in ['T', ' ', 't'] {
                    let text = format!("{date}{sep}{time}");
                    let plain = plain_naive(&text);
                    if plain.is_some() {
                        read += 1;
                        assert_eq!(plain, naive_in(&text, &LOCAL_FORMATS[0]), "{text}");
                    }
                }
            }
        }
        assert!(read > 0);
        assert_eq!(plain_naive("2023-09-14T08:30:03.5"), None);
        assert_eq!(plain_naive("2023-09-14T23:59:60"), None);
        assert!(
            localize("2023-09-14T23:59:60", Tz::UTC).is_some(),
            "the format reads a leap second"
        );
    }

    proptest::proptest! {
        /// Any date and time in the sent form, in range or just out of it: where the
        /// digit-by-digit reading gives a time, the format gives the same; where it gives
        /// none, the format gives none or reads a leap second.
        #[test]
        fn plain_times_agree_with_the_format(
            (y, mo, d) in (0u32..=9999, 0u32..=13, 0u32..=32),
            (h, mi, sec) in (0u32..=24, 0u32..=60, 0u32..=61),
        ) {
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}");
            let by_format = naive_in(&text, &LOCAL_FORMATS[0]);
            match plain_naive(&text) {
                Some(plain) => proptest::prop_assert_eq!(Some(plain), by_format),
                None => proptest::prop_assert!(by_format.is_none() || sec == 60, "{}", text),
            }
        }
    }

    const DOC_BATCH: &str = r#"[{"broadcastId":3459207,"messageName":"test","iid":"99d591ab-e7a5-49ed-8e16-b3023378fc18","contactId":1967597908,"externalCustomerId":"789456512","email":"test1@yourdomain.com","mediaType":"email","activityStatus":"DELIVERED","messageId":2489300,"messageInstanceId":4702518,"activityDateTime":"2023-09-14T08:30:03","viewMessageLink":"https://u51739.esclick.me/J9o6EvyAKGmB","statusData":{}},
 {"broadcastId":3459207,"messageName":"test","hardBounce":false,"iid":"99d591ab-e7a5-49ed-8e16-b3023378fc18","contactId":1967597908,"externalCustomerId":"789456512","email":"test1@yourdomain.com","mediaType":"email","activityStatus":"UNDELIVERED","messageId":2489300,"messageInstanceId":4702518,"activityDateTime":"2023-09-14T08:30:07","statusDescription":"5.1.2 (bad destination system: no such domain)","viewMessageLink":"https://u51739.esclick.me/J9o6EvyAKGmB","statusData":{}}]"#;

    #[test]
    fn documented_batch_splits_into_distinct_elements() {
        let els = split(DOC_BATCH.as_bytes(), Tz::UTC);
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].event.kind, "DELIVERED");
        assert_eq!(els[1].event.kind, "UNDELIVERED");
        assert_ne!(
            els[0].dedupe_id, els[1].dedupe_id,
            "same iid, different status"
        );
        assert_eq!(
            els[0].event.subscriber.esp_contact_id.as_deref(),
            Some("1967597908")
        );
        assert_eq!(
            els[0].event.subscriber.external_id.as_deref(),
            Some("789456512")
        );
        assert_eq!(
            els[0].event.occurred_at.unwrap().to_rfc3339(),
            "2023-09-14T08:30:03+00:00"
        );
        assert!(els[1].event.payload.get().contains("statusDescription"));
        // a retry of the same request yields the same keys
        let again = split(DOC_BATCH.as_bytes(), Tz::UTC);
        assert_eq!(els[0].dedupe_id, again[0].dedupe_id);
    }

    #[test]
    fn every_status_by_table() {
        for status in KNOWN_STATUSES.iter().copied().chain(["SOMETHING_NEW"]) {
            let body = format!(
                r#"[{{"activityStatus":"{status}","contactId":1,"email":"a@b.c","activityDateTime":"2023-09-14T08:30:03"}}]"#
            );
            let els = split(body.as_bytes(), Tz::UTC);
            assert_eq!(els.len(), 1);
            let want = if status == "SOMETHING_NEW" {
                "unknown"
            } else {
                status
            };
            assert_eq!(els[0].event.kind, want);
            assert!(els[0].event.parked.is_none());
        }
    }

    #[test]
    fn bad_elements_are_parked_not_dropped() {
        let body = br#"[{"activityStatus":"READ","email":"a@b.c"}, 42, {"noStatus":true}, {"activityStatus":7}, ["READ"]]"#;
        let els = split(body, Tz::UTC);
        let kinds: Vec<_> = els.iter().map(|e| e.event.kind.as_str()).collect();
        assert_eq!(kinds, ["READ", "parked", "parked", "parked", "parked"]);
        assert_eq!(els[1].event.payload.get(), "42");
        assert!(els[2]
            .event
            .parked
            .as_deref()
            .unwrap()
            .contains("activityStatus"));
    }

    #[test]
    fn whole_body_shapes() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"[]", &[]),
            (br#"{"activityStatus":"SPAM","email":"a@b.c"}"#, &["SPAM"]),
            (b"\"hello\"", &["parked"]),
            (b"not json", &["parked"]),
            (b"\xff\xfe", &["parked"]),
        ];
        for (body, want) in cases {
            let kinds: Vec<_> = split(body, Tz::UTC)
                .into_iter()
                .map(|e| e.event.kind)
                .collect();
            assert_eq!(&kinds, want, "{body:?}");
        }
        let els = split(b"not json", Tz::UTC);
        assert_eq!(
            serde_json::from_str::<String>(els[0].event.payload.get()).unwrap(),
            "not json"
        );
    }

    #[test]
    fn clicks_on_different_links_are_different_events() {
        let a = split(br#"[{"activityStatus":"CLICKED","iid":"i","contactId":1,"activityDateTime":"2023-09-14T08:30:03","clickEventLink":"https://a"}]"#, Tz::UTC);
        let b = split(br#"[{"activityStatus":"CLICKED","iid":"i","contactId":1,"activityDateTime":"2023-09-14T08:30:03","clickEventLink":"https://b"}]"#, Tz::UTC);
        assert_ne!(a[0].dedupe_id, b[0].dedupe_id);
    }

    /// The RFC 3339 reading is skipped only for texts it refuses.
    #[test]
    fn texts_without_an_offset_are_not_rfc3339() {
        for text in [
            "2023-09-14T08:30:03Z",
            "2023-09-14t08:30:03z",
            "2023-09-14 08:30:03+02:00",
            "2023-09-14T08:30:03.123456789-05:30",
            "2023-09-14T08:30:03",
            "2023-09-14T08:30:03.5",
            "2023-09-14",
            "2023-09-14T08:30Z",
            "+2023-09-14T08:30:03Z",
            "",
            "é",
        ] {
            if DateTime::parse_from_rfc3339(text).is_ok() {
                assert!(may_have_offset(text), "{text}");
            }
        }
        assert!(!may_have_offset("2023-09-14T08:30:03.123456"));
    }

    #[test]
    fn time_zone_is_configurable() {
        let kyiv: Tz = "Europe/Kyiv".parse().unwrap();
        for (text, tz, want) in [
            ("2023-09-14T08:30:03", Tz::UTC, "2023-09-14T08:30:03+00:00"),
            ("2023-09-14T08:30:03", kyiv, "2023-09-14T05:30:03+00:00"),
            ("2023-01-14T08:30:03", kyiv, "2023-01-14T06:30:03+00:00"),
            (
                "2023-09-14 08:30:03.250",
                Tz::UTC,
                "2023-09-14T08:30:03.250+00:00",
            ),
            (
                "2023-09-14T08:30:03+02:00",
                Tz::UTC,
                "2023-09-14T06:30:03+00:00",
            ),
        ] {
            assert_eq!(
                localize(text, tz).unwrap().to_rfc3339(),
                want,
                "{text} in {tz}"
            );
        }
        assert!(localize("yesterday", Tz::UTC).is_none());
    }

    #[test]
    fn times_outside_what_rfc3339_writes_are_absent() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        let kiritimati: Tz = "Pacific/Kiritimati".parse().unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        for (text, tz, want) in [
            (
                "9999-12-31T23:59:59",
                Tz::UTC,
                Some("9999-12-31T23:59:59+00:00"),
            ),
            ("9999-12-31T23:59:59", new_york, None), // year 10000 in UTC
            ("9999-12-31T23:59:59-05:00", Tz::UTC, None),
            (
                "9999-12-31T12:00:00",
                kiritimati,
                Some("9999-12-30T22:00:00+00:00"),
            ),
            ("0000-01-01T00:00:00", tokyo, None), // year -1 in UTC (local mean time +09:18)
            (
                "0000-01-01T00:00:00",
                Tz::UTC,
                Some("0000-01-01T00:00:00+00:00"),
            ),
            ("+262142-12-31T23:59:59", Tz::UTC, None),
            ("262142-12-31T23:59:59", kiritimati, None),
            ("-262143-01-01T00:00:00", new_york, None),
            ("12345-01-01T00:00:00", Tz::UTC, None),
        ] {
            assert_eq!(
                localize(text, tz).map(|t| t.to_rfc3339()).as_deref(),
                want,
                "{text} in {tz}"
            );
        }
    }
}
