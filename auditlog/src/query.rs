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

mod members;

use members::Members;

fn timestamp(v: Option<&str>) -> Option<i64> {
    v.and_then(|s| Timestamp::parse(s).ok())
        .map(Timestamp::unix_nanos)
}

impl Fields {
    /// The fields of a parsed entry (the object a segment line's `entry` holds). Members
    /// that are absent or of the wrong type leave their field empty.
    pub fn of(entry: &Value) -> Fields {
        Fields::from_members(Members::of_value(entry))
    }

    /// The fields of an entry's JSON, as [`Fields::of`] gives them for the parsed entry;
    /// without building a [`Value`] when the members have the shapes fields are read from.
    pub fn of_json(entry: &[u8]) -> serde_json::Result<Fields> {
        match Members::of_json(entry) {
            Some(m) => Ok(Fields::from_members(m)),
            None => Ok(Fields::of(&serde_json::from_slice::<Value>(entry)?)),
        }
    }

    fn from_members(m: Members<'_>) -> Fields {
        let sealed_at = timestamp(m.sealed_at.as_deref()).unwrap_or(0);
        let gateway = m
            .source_id
            .as_deref()
            .map(|id| id.split('/').next().unwrap_or_default().to_owned());
        let owned = |v: Option<std::borrow::Cow<'_, str>>| v.map(|s| s.into_owned());
        let status = |n: Option<u64>| n.and_then(|n| u16::try_from(n).ok());
        let e = m.event;
        let mut f = Fields {
            seq: m.seq.unwrap_or(0),
            kind: m.kind,
            time: sealed_at,
            sealed_at,
            ..Fields::default()
        };
        match m.kind {
            Some(EntryKind::Http) => {
                f.time = timestamp(e.start_time.as_deref()).unwrap_or(sealed_at);
                f.gateway = gateway;
                f.method = owned(e.http_method);
                f.host = owned(e.server_address);
                f.path = owned(e.url_path);
                f.status = status(e.http_status);
                f.identity = owned(e.enduser_id);
                f.client = owned(e.client_address);
            }
            Some(EntryKind::K8sAudit) => {
                f.time = timestamp(e.stage_timestamp.as_deref()).unwrap_or(sealed_at);
                f.method = owned(e.verb);
                f.path = owned(e.request_uri);
                f.status = status(e.response_code);
                f.identity = owned(e.username);
                f.client = owned(e.first_source_ip);
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

    mod both_paths {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::super::members::Members;
        use super::super::*;

        /// Any JSON value of a few kinds, including the ones members must not be.
        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                (0u64..70_000).prop_map(Value::from),
                Just(json!(u64::MAX)),
                (-5i64..0).prop_map(Value::from),
                Just(json!(200.0)),
                prop::sample::select(vec![
                    "GET",
                    "gw-eu/0011",
                    "/p\"q\u{e9}",
                    "2026-11-28T09:00:00.5Z",
                    "not a time",
                    "",
                ])
                .prop_map(Value::from),
                Just(json!([])),
                Just(json!(["10.0.0.1", "10.0.0.2"])),
                Just(json!([7, "10.0.0.1"])),
                Just(json!({"x": 1})),
            ]
        }

        /// An object with some of `keys`, each well shaped (from `shaped`) or any leaf.
        fn object(
            keys: &'static [&'static str],
            shaped: impl Fn(&str) -> BoxedStrategy<Value> + 'static,
        ) -> impl Strategy<Value = Value> {
            let members: Vec<BoxedStrategy<Option<Value>>> = keys
                .iter()
                .map(|k| prop::option::of(prop_oneof![3 => shaped(k), 1 => leaf()]).boxed())
                .collect();
            members.prop_map(move |values| {
                let mut m = Map::new();
                for (k, v) in keys.iter().zip(values) {
                    if let Some(v) = v {
                        m.insert((*k).to_owned(), v);
                    }
                }
                Value::Object(m)
            })
        }

        fn text() -> BoxedStrategy<Value> {
            prop::sample::select(vec!["GET", "a/b", "x\ny", "2026-11-28T09:00:00Z"])
                .prop_map(Value::from)
                .boxed()
        }

        fn inner(key: &'static str) -> BoxedStrategy<Value> {
            object(Box::leak(Box::new([key])), |k| match k {
                "status_code" | "code" => (0u64..70_000).prop_map(Value::from).boxed(),
                _ => text(),
            })
            .boxed()
        }

        fn event() -> impl Strategy<Value = Value> {
            object(
                &[
                    "start_time",
                    "http",
                    "server",
                    "url",
                    "enduser",
                    "client",
                    "stageTimestamp",
                    "verb",
                    "requestURI",
                    "responseStatus",
                    "user",
                    "sourceIPs",
                    "other",
                ],
                |k| match k {
                    "http" => (inner("method"), inner("status_code"))
                        .prop_map(|(req, resp)| json!({"request": req, "response": resp}))
                        .boxed(),
                    "server" | "client" => inner("address"),
                    "url" => inner("path"),
                    "enduser" => inner("id"),
                    "responseStatus" => inner("code"),
                    "user" => inner("username"),
                    "sourceIPs" => prop::collection::vec(text(), 0..3)
                        .prop_map(Value::from)
                        .boxed(),
                    _ => text(),
                },
            )
        }

        fn entry() -> impl Strategy<Value = Value> {
            (
                event(),
                prop::sample::select(vec![
                    "http",
                    "k8s_audit",
                    "gap",
                    "source_end",
                    "start",
                    "other",
                ]),
            )
                .prop_flat_map(|(event, kind)| {
                    object(
                        &["seq", "kind", "sealed_at", "source", "event"],
                        move |k| match k {
                            "seq" => (0u64..1_000_000).prop_map(Value::from).boxed(),
                            "kind" => Just(Value::from(kind)).boxed(),
                            "source" => inner("id"),
                            "event" => Just(event.clone()).boxed(),
                            _ => text(),
                        },
                    )
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn the_fast_path_gives_the_fields_of_the_parsed_entry(entry in entry()) {
                let json = serde_json::to_vec(&entry).unwrap();
                prop_assert_eq!(Fields::of_json(&json).unwrap(), Fields::of(&entry));
            }
        }

        #[test]
        fn well_shaped_entries_take_the_fast_path() {
            let http =
                serde_json::to_vec(&super::http(3, "GET", "/a\"b", 403, Some("bob"))).unwrap();
            let k8s = serde_json::to_vec(&json!({"kind": "k8s_audit", "seq": 4,
                "event": {"verb": "delete", "requestURI": "/apis/x", "responseStatus": {"code": 200},
                          "user": {"username": "admin"}, "sourceIPs": ["10.0.0.1"],
                          "stageTimestamp": "2026-11-28T09:00:00Z"}})).unwrap();
            for json in [http, k8s] {
                let fast = Members::of_json(&json).map(|m| Fields::from_members(m));
                assert!(fast.is_some(), "{}", String::from_utf8_lossy(&json));
                let entry: Value = serde_json::from_slice(&json).unwrap();
                assert_eq!(fast.unwrap(), Fields::of(&entry));
            }
        }

        #[test]
        fn a_repeated_member_counts_as_the_parsed_entry_counts_it() {
            // serde_json keeps the last of repeated members; the views refuse them.
            let json = br#"{"kind":"http","seq":1,"seq":2,"event":{"verb":"a","verb":"b"}}"#;
            assert!(Members::of_json(json).is_none());
            let parsed: Value = serde_json::from_slice(json).unwrap();
            let fields = Fields::of_json(json).unwrap();
            assert_eq!(fields, Fields::of(&parsed));
            assert_eq!(fields.seq, 2);
        }

        #[test]
        fn not_json_is_an_error() {
            assert!(Fields::of_json(b"{\"kind\":").is_err());
        }
    }
}
