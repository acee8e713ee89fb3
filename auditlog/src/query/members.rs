//! The members of an entry that its [`Fields`](super::Fields) come from, read two ways: from a
//! parsed [`Value`], or straight from the entry's JSON into borrowed views (the indexer's fast
//! path, several times cheaper than building a `Value` per entry).
//!
//! The views accept only the shapes the fields are read from (a string where a field is text,
//! an unsigned integer where it is a number, objects on the way). Anything else fails the whole
//! parse, and [`super::Fields::of_json`] then reads a `Value` instead; so both paths give the
//! same fields for every entry, which a property test checks.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::entry::EntryKind;

/// What the fields are made of; `None` where the member is absent or of another type.
#[derive(Default)]
pub(super) struct Members<'a> {
    pub seq: Option<u64>,
    pub kind: Option<EntryKind>,
    pub sealed_at: Option<Cow<'a, str>>,
    pub source_id: Option<Cow<'a, str>>,
    pub event: EventMembers<'a>,
}

/// The members of `event`, for every kind at once: which ones count depends on the kind,
/// which canonical JSON puts after the event.
#[derive(Default)]
pub(super) struct EventMembers<'a> {
    pub start_time: Option<Cow<'a, str>>,
    pub http_method: Option<Cow<'a, str>>,
    pub http_status: Option<u64>,
    pub server_address: Option<Cow<'a, str>>,
    pub url_path: Option<Cow<'a, str>>,
    pub enduser_id: Option<Cow<'a, str>>,
    pub client_address: Option<Cow<'a, str>>,
    pub stage_timestamp: Option<Cow<'a, str>>,
    pub verb: Option<Cow<'a, str>>,
    pub request_uri: Option<Cow<'a, str>>,
    pub response_code: Option<u64>,
    pub username: Option<Cow<'a, str>>,
    pub first_source_ip: Option<Cow<'a, str>>,
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn text<'v>(v: &'v Value, path: &[&str]) -> Option<Cow<'v, str>> {
    at(v, path).and_then(Value::as_str).map(Cow::Borrowed)
}

fn number(v: &Value, path: &[&str]) -> Option<u64> {
    at(v, path).and_then(Value::as_u64)
}

impl<'v> Members<'v> {
    /// From a parsed entry.
    pub fn of_value(entry: &'v Value) -> Members<'v> {
        let event = entry.get("event").unwrap_or(&Value::Null);
        Members {
            seq: entry.get("seq").and_then(Value::as_u64),
            kind: entry
                .get("kind")
                .and_then(|k| EntryKind::deserialize(k).ok()),
            sealed_at: text(entry, &["sealed_at"]),
            source_id: text(entry, &["source", "id"]),
            event: EventMembers {
                start_time: text(event, &["start_time"]),
                http_method: text(event, &["http", "request", "method"]),
                http_status: number(event, &["http", "response", "status_code"]),
                server_address: text(event, &["server", "address"]),
                url_path: text(event, &["url", "path"]),
                enduser_id: text(event, &["enduser", "id"]),
                client_address: text(event, &["client", "address"]),
                stage_timestamp: text(event, &["stageTimestamp"]),
                verb: text(event, &["verb"]),
                request_uri: text(event, &["requestURI"]),
                response_code: number(event, &["responseStatus", "code"]),
                username: text(event, &["user", "username"]),
                first_source_ip: event
                    .get("sourceIPs")
                    .and_then(|ips| ips.get(0))
                    .and_then(Value::as_str)
                    .map(Cow::Borrowed),
            },
        }
    }

    /// Straight from the entry's JSON, if every member read has the expected shape.
    pub fn of_json(entry: &'v [u8]) -> Option<Members<'v>> {
        let view: EntryView<'v> = serde_json::from_slice(entry).ok()?;
        let e = view.event.unwrap_or_default();
        let http = e.http.unwrap_or_default();
        Some(Members {
            seq: view.seq,
            kind: view.kind,
            sealed_at: view.sealed_at,
            source_id: view.source.and_then(|s| s.id),
            event: EventMembers {
                start_time: e.start_time,
                http_method: http.request.and_then(|r| r.method),
                http_status: http.response.and_then(|r| r.status_code),
                server_address: e.server.and_then(|s| s.address),
                url_path: e.url.and_then(|u| u.path),
                enduser_id: e.enduser.and_then(|u| u.id),
                client_address: e.client.and_then(|c| c.address),
                stage_timestamp: e.stage_timestamp,
                verb: e.verb,
                request_uri: e.request_uri,
                response_code: e.response_status.and_then(|s| s.code),
                username: e.user.and_then(|u| u.username),
                first_source_ip: e.source_ips.and_then(|ips| ips.into_iter().next()),
            },
        })
    }
}

#[derive(Deserialize)]
struct EntryView<'a> {
    seq: Option<u64>,
    kind: Option<EntryKind>,
    #[serde(borrow)]
    sealed_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<IdView<'a>>,
    #[serde(borrow)]
    event: Option<EventView<'a>>,
}

#[derive(Deserialize, Default)]
struct EventView<'a> {
    #[serde(borrow)]
    start_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    http: Option<HttpView<'a>>,
    #[serde(borrow)]
    server: Option<AddressView<'a>>,
    #[serde(borrow)]
    url: Option<UrlView<'a>>,
    #[serde(borrow)]
    enduser: Option<IdView<'a>>,
    #[serde(borrow)]
    client: Option<AddressView<'a>>,
    #[serde(borrow, rename = "stageTimestamp")]
    stage_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verb: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "requestURI")]
    request_uri: Option<Cow<'a, str>>,
    #[serde(rename = "responseStatus")]
    response_status: Option<CodeView>,
    #[serde(borrow)]
    user: Option<UserView<'a>>,
    #[serde(borrow, rename = "sourceIPs")]
    source_ips: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize, Default)]
struct HttpView<'a> {
    #[serde(borrow)]
    request: Option<MethodView<'a>>,
    response: Option<StatusView>,
}

#[derive(Deserialize)]
struct MethodView<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StatusView {
    status_code: Option<u64>,
}

#[derive(Deserialize)]
struct CodeView {
    code: Option<u64>,
}

#[derive(Deserialize)]
struct AddressView<'a> {
    #[serde(borrow)]
    address: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UrlView<'a> {
    #[serde(borrow)]
    path: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct IdView<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserView<'a> {
    #[serde(borrow)]
    username: Option<Cow<'a, str>>,
}
