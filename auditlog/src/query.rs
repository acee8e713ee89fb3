//! What a query can ask of an entry: the fields it filters on ([`Fields`]) and the filter
//! itself ([`Filter`]), with the one parser both the sealer's `GET /v1/events` and
//! `sealer export` / `sealer tail` use ([`Filter::from_pairs`]).
//!
//! Entries of different kinds answer the same questions from their own members:
//!
//! | field      | `http`                          | `k8s_audit`              | `gap`, `start`     |
//! |------------|---------------------------------|--------------------------|--------------------|
//! | `time`     | `start_time`                    | `stageTimestamp`         | `sealed_at`        |
//! | `gateway`  | `source.id` up to the first `/` | —                        | `gap`: as `http`   |
//! | `method`   | `http.request.method`           | `verb`                   | —                  |
//! | `host`     | `server.address`                | —                        | —                  |
//! | `path`     | `url.path`                      | `requestURI`             | —                  |
//! | `status`   | `http.response.status_code`     | `responseStatus.code`    | —                  |
//! | `identity` | `enduser.id`                    | `user.username`          | —                  |
//! | `client`   | `client.address`                | `sourceIPs[0]`           | —                  |
//!
//! `time` falls back to `sealed_at` when the member is missing or not a timestamp. A filter
//! on a field matches only entries that have it. Free text (`q`) is a substring of the
//! entry's canonical JSON, ASCII letters compared without regard to case.

use serde_json::Value;

use crate::entry::EntryKind;
use crate::timestamp::Timestamp;

/// The queryable fields of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    pub seq: u64,
    pub kind: Option<EntryKind>,
    /// Nanoseconds since the Unix epoch.
    pub time: i64,
    pub sealed_at: i64,
    pub gateway: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub identity: Option<String>,
    pub client: Option<String>,
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().map(str::to_owned)
}

fn number(v: &Value, path: &[&str]) -> Option<u16> {
    let mut v = v;
    for key in path {
        v = v.get(key)?;
    }
    v.as_u64().and_then(|n| u16::try_from(n).ok())
}

fn timestamp(v: Option<String>) -> Option<i64> {
    v.and_then(|s| Timestamp::parse(&s).ok())
        .map(Timestamp::unix_nanos)
}

impl Fields {
    /// The fields of a parsed entry (the object a segment line's `entry` holds). Members
    /// that are absent or of the wrong type leave their field empty.
    pub fn of(entry: &Value) -> Fields {
        let kind: Option<EntryKind> = entry
            .get("kind")
            .and_then(|k| serde_json::from_value(k.clone()).ok());
        let sealed_at = timestamp(text(entry, &["sealed_at"])).unwrap_or(0);
        let event = entry.get("event").unwrap_or(&Value::Null);
        let gateway = text(entry, &["source", "id"])
            .map(|id| id.split('/').next().unwrap_or_default().to_owned());
        let mut f = Fields {
            seq: entry.get("seq").and_then(Value::as_u64).unwrap_or(0),
            kind,
            time: sealed_at,
            sealed_at,
            ..Fields::default()
        };
        match kind {
            Some(EntryKind::Http) => {
                f.time = timestamp(text(event, &["start_time"])).unwrap_or(sealed_at);
                f.gateway = gateway;
                f.method = text(event, &["http", "request", "method"]);
                f.host = text(event, &["server", "address"]);
                f.path = text(event, &["url", "path"]);
                f.status = number(event, &["http", "response", "status_code"]);
                f.identity = text(event, &["enduser", "id"]);
                f.client = text(event, &["client", "address"]);
            }
            Some(EntryKind::K8sAudit) => {
                f.time = timestamp(text(event, &["stageTimestamp"])).unwrap_or(sealed_at);
                f.method = text(event, &["verb"]);
                f.path = text(event, &["requestURI"]);
                f.status = number(event, &["responseStatus", "code"]);
                f.identity = text(event, &["user", "username"]);
                f.client = event
                    .get("sourceIPs")
                    .and_then(|ips| ips.get(0))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            Some(EntryKind::Gap | EntryKind::SourceEnd) => f.gateway = gateway,
            Some(EntryKind::Start) | None => {}
        }
        f
    }
}

/// A status code, or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Code(u16),
    /// The hundreds digit: `4` for `4xx`.
    Class(u16),
}

impl StatusFilter {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusFilter::Code(c) => status == c,
            StatusFilter::Class(c) => status / 100 == c,
        }
    }
}

/// Which entries a query wants. Every set member must match (AND); `kinds` matches any of
/// its kinds (OR).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `time >= from` (nanoseconds since the Unix epoch).
    pub from: Option<i64>,
    /// `time < to`.
    pub to: Option<i64>,
    pub kinds: Vec<EntryKind>,
    pub gateway: Option<String>,
    /// Compared without regard to case.
    pub method: Option<String>,
    /// Compared without regard to case.
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub status: Option<StatusFilter>,
    pub identity: Option<String>,
    pub client: Option<String>,
    /// Substring of the entry's JSON, ASCII letters compared without regard to case.
    pub text: Option<String>,
}

/// The query parameters [`Filter::from_pairs`] understands.
pub const FILTER_PARAMS: [&str; 11] = [
    "from",
    "to",
    "kind",
    "gateway",
    "method",
    "host",
    "path_prefix",
    "status",
    "identity",
    "client",
    "q",
];

/// A filter parameter that could not be read: which one (`from`, `status`, ..., or `to`
/// for the pair `from`..`to`), and what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct FilterError {
    pub param: &'static str,
    pub message: String,
}

fn bad(param: &'static str, message: String) -> FilterError {
    FilterError { param, message }
}

fn parse_time(param: &'static str, value: &str) -> Result<i64, FilterError> {
    Timestamp::parse(value)
        .map(Timestamp::unix_nanos)
        .map_err(|e| bad(param, format!("{e} (write e.g. 2026-11-28T09:00:00Z)")))
}

fn parse_kind(value: &str) -> Result<EntryKind, FilterError> {
    serde_json::from_value(Value::String(value.to_owned())).map_err(|_| {
        bad(
            "kind",
            format!("{value:?} is not one of start, http, gap, source_end, k8s_audit"),
        )
    })
}

fn parse_status(value: &str) -> Result<StatusFilter, FilterError> {
    let bad = || {
        bad(
            "status",
            format!("{value:?} is not a status code (404) or class (4xx)"),
        )
    };
    let lower = value.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let c: u16 = class.parse().map_err(|_| bad())?;
        return (1..=5)
            .contains(&c)
            .then_some(StatusFilter::Class(c))
            .ok_or_else(bad);
    }
    let code: u16 = value.parse().map_err(|_| bad())?;
    (100..=599)
        .contains(&code)
        .then_some(StatusFilter::Code(code))
        .ok_or_else(bad)
}

impl Filter {
    /// Build a filter from `(name, value)` pairs (query parameters, or CLI options). Names
    /// outside [`FILTER_PARAMS`] are skipped, for the caller to handle; `kind` may repeat
    /// or hold a comma-separated list. Errors name the parameter and say what is expected.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        let nonempty = |param: &'static str, v: &str| {
            if v.is_empty() {
                Err(bad(param, "empty value".into()))
            } else {
                Ok(v.to_owned())
            }
        };
        for (name, value) in pairs {
            match name {
                "from" => f.from = Some(parse_time("from", value)?),
                "to" => f.to = Some(parse_time("to", value)?),
                "kind" => {
                    for k in value.split(',').filter(|k| !k.is_empty()) {
                        f.kinds.push(parse_kind(k)?);
                    }
                }
                "gateway" => f.gateway = Some(nonempty("gateway", value)?),
                "method" => f.method = Some(nonempty("method", value)?),
                "host" => f.host = Some(nonempty("host", value)?),
                "path_prefix" => f.path_prefix = Some(nonempty("path_prefix", value)?),
                "status" => f.status = Some(parse_status(value)?),
                "identity" => f.identity = Some(nonempty("identity", value)?),
                "client" => f.client = Some(nonempty("client", value)?),
                "q" => f.text = Some(nonempty("q", value)?.to_ascii_lowercase()),
                _ => {}
            }
        }
        if let (Some(from), Some(to)) = (f.from, f.to)
            && from >= to
        {
            return Err(bad("to", "must be after from".into()));
        }
        Ok(f)
    }

    /// Whether an entry with `fields` and canonical JSON `json` matches.
    pub fn matches(&self, fields: &Fields, json: &str) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref() == Some(w.as_str()),
        };
        let eq_nocase = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        self.from.is_none_or(|from| fields.time >= from)
            && self.to.is_none_or(|to| fields.time < to)
            && (self.kinds.is_empty() || fields.kind.is_some_and(|k| self.kinds.contains(&k)))
            && eq(&self.gateway, &fields.gateway)
            && eq_nocase(&self.method, &fields.method)
            && eq_nocase(&self.host, &fields.host)
            && self.path_prefix.as_ref().is_none_or(|p| {
                fields
                    .path
                    .as_deref()
                    .is_some_and(|path| path.starts_with(p.as_str()))
            })
            && self
                .status
                .is_none_or(|s| fields.status.is_some_and(|code| s.matches(code)))
            && eq(&self.identity, &fields.identity)
            && eq(&self.client, &fields.client)
            && self
                .text
                .as_ref()
                .is_none_or(|t| json.to_ascii_lowercase().contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(seq: u64, method: &str, path: &str, status: u16, who: Option<&str>) -> Value {
        let mut event = json!({
            "http": {"request": {"method": method}, "response": {"status_code": status}},
            "server": {"address": "shop.example.com"},
            "url": {"path": path, "scheme": "https"},
            "client": {"address": "203.0.113.9"},
            "start_time": "2026-11-28T09:00:00.000000000Z",
        });
        if let Some(w) = who {
            event["enduser"] = json!({"id": w, "source": "jwt"});
        }
        json!({"event": event, "kind": "http", "sealed_at": "2026-11-28T09:00:01.000000000Z",
               "seq": seq, "source": {"id": "gw-eu/0011223344556677", "seq": seq}})
    }

    fn filter(pairs: &[(&str, &str)]) -> Filter {
        Filter::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn hits(f: &Filter, entries: &[Value]) -> Vec<u64> {
        entries
            .iter()
            .filter(|e| f.matches(&Fields::of(e), &e.to_string()))
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn fields_of_http_and_k8s_entries() {
        let f = Fields::of(&http(3, "GET", "/admin/users", 403, Some("alice")));
        assert_eq!(f.gateway.as_deref(), Some("gw-eu"));
        assert_eq!(f.status, Some(403));
        assert_eq!(f.identity.as_deref(), Some("alice"));
        assert_eq!(f.time + 1_000_000_000, f.sealed_at);
        let k8s = json!({"event": {"verb": "patch", "requestURI": "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web",
                           "user": {"username": "bob"}, "sourceIPs": ["198.51.100.4"],
                           "responseStatus": {"code": 200}, "stageTimestamp": "2026-11-28T08:00:00Z"},
                         "kind": "k8s_audit", "sealed_at": "2026-11-28T09:00:00.000000000Z", "seq": 9});
        let f = Fields::of(&k8s);
        assert_eq!(
            (
                f.method.as_deref(),
                f.identity.as_deref(),
                f.client.as_deref()
            ),
            (Some("patch"), Some("bob"), Some("198.51.100.4"))
        );
        assert_eq!(f.sealed_at - f.time, 3600 * 1_000_000_000);
    }

    #[test]
    fn every_filter_narrows() {
        let entries = vec![
            http(1, "GET", "/admin/users", 403, Some("alice")),
            http(2, "POST", "/admin/users", 201, Some("bob")),
            http(3, "GET", "/shop", 200, None),
            http(4, "GET", "/shop", 503, None),
            json!({"event": {"count": 2, "first_seq": 5, "last_seq": 6, "reason": "sequence_jump"},
                   "kind": "gap", "sealed_at": "2026-11-28T09:00:02.000000000Z", "seq": 5,
                   "source": {"id": "gw-eu/0011223344556677"}}),
        ];
        assert_eq!(
            hits(&filter(&[("path_prefix", "/admin")]), &entries),
            [1, 2]
        );
        assert_eq!(hits(&filter(&[("status", "4xx")]), &entries), [1]);
        assert_eq!(hits(&filter(&[("status", "503")]), &entries), [4]);
        assert_eq!(hits(&filter(&[("method", "post")]), &entries), [2]);
        assert_eq!(hits(&filter(&[("identity", "alice")]), &entries), [1]);
        assert_eq!(hits(&filter(&[("kind", "gap")]), &entries), [5]);
        assert_eq!(hits(&filter(&[("kind", "gap,http")]), &entries).len(), 5);
        assert_eq!(hits(&filter(&[("gateway", "gw-eu")]), &entries).len(), 5);
        assert_eq!(hits(&filter(&[("gateway", "gw-us")]), &entries), [0u64; 0]);
        assert_eq!(hits(&filter(&[("q", "SEQUENCE_JUMP")]), &entries), [5]);
        assert_eq!(
            hits(&filter(&[("host", "SHOP.example.com")]), &entries).len(),
            4
        );
        assert_eq!(
            hits(
                &filter(&[
                    ("from", "2026-11-28T09:00:01Z"),
                    ("to", "2026-11-28T09:00:03Z")
                ]),
                &entries
            ),
            [5],
            "the gap has no request time: its sealed_at counts"
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = |pairs: &[(&str, &str)]| Filter::from_pairs(pairs.iter().copied()).unwrap_err();
        assert_eq!(err(&[("status", "4x")]).param, "status");
        assert_eq!(err(&[("status", "700")]).param, "status");
        assert_eq!(err(&[("kind", "request")]).param, "kind");
        assert_eq!(err(&[("from", "yesterday")]).param, "from");
        assert_eq!(err(&[("method", "")]).param, "method");
        let reversed = err(&[
            ("from", "2026-11-28T10:00:00Z"),
            ("to", "2026-11-28T09:00:00Z"),
        ]);
        assert_eq!(reversed.to_string(), "to: must be after from");
        assert_eq!(
            Filter::from_pairs([("limit", "5")]).unwrap(),
            Filter::default()
        );
    }
}
