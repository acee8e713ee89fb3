//! The fast path: facts that Envoy formatted natively, read in one host call each side.
//!
//! A value-returning host call costs Envoy 0.56 to 0.78 µs (it calls back into the VM for a
//! buffer); reading every fact on its own cost 10 calls per request. Envoy can do the
//! gathering itself:
//!
//! - **Request side.** Envoy's native `envoy.filters.http.set_filter_state` filter, placed
//!   before this one, formats the request's facts with the access-log formatter into one
//!   filter-state object, [`FILTER_STATE_KEY`], as a JSON object ([`REQUEST_FORMAT`] lists
//!   its members). `on_http_request_headers` reads it with one `get_property` and
//!   [`parse_request`] fills [`RequestFacts`] from it.
//! - **Response side.** At configure time the filter prepares [`RESPONSE_EXPR`], a CEL list,
//!   with the `expr_create` foreign function; `on_log` evaluates it with one `expr_evaluate`,
//!   and [`parse_response`] reads the list (proxy-wasm's pairs encoding, values as keys).
//!
//! Either part is optional. Where the object is absent (another proxy-wasm host, or an Envoy
//! without the native filter in front) or the expression cannot be prepared, the filter reads
//! each fact on its own as before; both ways produce the same event.

use auditlog::jcs::find_special;

use crate::event::RequestFacts;
use crate::pairs::pairs;

/// The filter-state object the `set_filter_state` filter writes (with `factory_key:
/// envoy.string`).
pub const FILTER_STATE_KEY: &str = "io.ingress_audit.request";

/// [`FILTER_STATE_KEY`] as a property path.
pub const FILTER_STATE_PATH: &[u8] = b"filter_state\0io.ingress_audit.request";

/// The members of the request-side object and the formatter commands that fill them, as the
/// shipped configurations write them (`json_format`). Identity headers (`{"source":"header"}`)
/// add `header:<name>: "%REQ(<name>)%"` for each configured name.
pub const REQUEST_FORMAT: &[(&str, &str)] = &[
    ("authority", "%REQ(:AUTHORITY)%"),
    ("client", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("method", "%REQ(:METHOD)%"),
    ("mtls_subject", "%DOWNSTREAM_PEER_SUBJECT%"),
    ("mtls_uri_san", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("path", "%REQ(:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("route", "%ROUTE_NAME%"),
    ("scheme", "%REQ(:SCHEME)%"),
    ("start", "%START_TIME(%s%9f)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
];

/// The `json_format` members for a filter with this configuration: [`REQUEST_FORMAT`], and
/// `header:<name>` for each identity header it names.
pub fn request_format(config: &crate::config::FilterConfig) -> Vec<(String, String)> {
    let mut members: Vec<(String, String)> = REQUEST_FORMAT
        .iter()
        .map(|(name, command)| (name.to_string(), command.to_string()))
        .collect();
    for source in &config.identity {
        if let crate::config::IdentitySource::Header { name } = source {
            members.push((format!("header:{name}"), format!("%REQ({name})%")));
        }
    }
    members
}

/// The response-side facts as one CEL list. Each optional attribute is guarded: one missing
/// attribute would fail the whole evaluation. Absent numbers come back as -1, absent strings
/// as empty.
pub const RESPONSE_EXPR: &str = "[has(response.code) ? response.code : -1, \
    has(response.flags) ? response.flags : -1, \
    has(upstream.address) ? upstream.address : '', \
    has(xds.cluster_name) ? xds.cluster_name : '']";

/// What the request-side object says beyond [`RequestFacts`]: identity candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityFacts {
    /// The mTLS peer's first URI SAN and subject, when the object has those members
    /// (`Some(None)`: present, and the connection has none).
    pub mtls_uri_san: Option<Option<String>>,
    pub mtls_subject: Option<Option<String>>,
    /// `header:<name>` members: `(name, value)`, `None` when the request has no such header.
    pub headers: Vec<(String, Option<String>)>,
}

/// Fill `facts` from the request-side object. `None`, leaving what it already set, when the
/// object is not what the format above writes (the caller then reads the facts itself).
pub fn parse_request(object: &[u8], facts: &mut RequestFacts) -> Option<IdentityFacts> {
    let mut start = None;
    let mut method = None;
    let mut identity = IdentityFacts::default();
    let mut reader = Reader {
        b: object,
        i: 0,
        scratch: String::new(),
    };
    let ok = reader.members(|name, text| {
        let value = text.map(str::to_owned);
        match name {
            "authority" => facts.authority = value,
            "client" => facts.peer_address = value,
            "forwarded_for" => facts.forwarded_for = value,
            "method" => method = value,
            // `%DOWNSTREAM_PEER_URI_SAN%` lists every URI SAN, comma-separated; the identity
            // is the first, as Envoy's `connection.uri_san_peer_certificate` gives it.
            "mtls_uri_san" => {
                identity.mtls_uri_san =
                    Some(value.map(|v| v.split(',').next().unwrap_or_default().to_owned()))
            }
            "mtls_subject" => identity.mtls_subject = Some(value),
            "path" => facts.path = value.unwrap_or_default(),
            "protocol" => facts.protocol = value,
            "request_id" => facts.request_id = value,
            "route" => facts.route = value,
            "scheme" => facts.scheme = value,
            "start" => start = value.as_deref().and_then(parse_start),
            "user_agent" => facts.user_agent = value,
            other => {
                if let Some(name) = other.strip_prefix("header:") {
                    identity.headers.push((name.to_owned(), value));
                }
            }
        }
    });
    match (ok, start, method) {
        (true, Some(start), Some(method)) => {
            facts.start_unix_nanos = start;
            facts.method = method;
            Some(identity)
        }
        _ => None,
    }
}

/// `%START_TIME(%s%9f)%`: seconds and nine digits of nanoseconds, no separator.
fn parse_start(text: &str) -> Option<i64> {
    if text.len() < 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// The response-side facts [`RESPONSE_EXPR`] evaluates to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub status: Option<u16>,
    pub flags: Option<u64>,
    pub upstream_host: Option<String>,
    pub upstream_cluster: Option<String>,
}

/// Read the evaluated list: the host serializes a list as pairs whose names are the
/// elements (integers as 8 bytes, little-endian) and whose values are empty.
pub fn parse_response(list: &[u8]) -> Option<ResponseFacts> {
    let items: Vec<&[u8]> = pairs(list).map(|(item, _)| item).collect();
    let [code, flags, host, cluster] = items[..] else {
        return None;
    };
    let int = |b: &[u8]| -> Option<i64> { Some(i64::from_le_bytes(b.try_into().ok()?)) };
    let text = |b: &[u8]| (!b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned());
    let (code, flags) = (int(code)?, int(flags)?);
    Some(ResponseFacts {
        status: (code >= 0).then(|| code.min(i64::from(u16::MAX)) as u16),
        flags: (flags != -1).then_some(flags as u64),
        upstream_host: text(host),
        upstream_cluster: text(cluster),
    })
}

/// A reader of the flat JSON object Envoy's `json_format` writes: string or `null` values
/// (other values, which this format never has, end the read with a failure).
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    scratch: String,
}

impl<'a> Reader<'a> {
    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&byte);
        self.i += usize::from(hit);
        hit
    }

    /// Call `each(name, value)` for every member; `false` if the text is not such an object.
    fn members(&mut self, mut each: impl FnMut(&str, Option<&str>)) -> bool {
        if !self.eat(b'{') {
            return false;
        }
        if !self.eat(b'}') {
            loop {
                let Some(name) = self.name() else {
                    return false;
                };
                if !self.eat(b':') {
                    return false;
                }
                if self.b[self.i..].starts_with(b"null") {
                    self.i += 4;
                    each(name, None);
                } else {
                    let Some(value) = self.string() else {
                        return false;
                    };
                    each(name, Some(value));
                }
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return false;
                }
            }
        }
        // Envoy ends a formatted line with a newline.
        self.eat(b'\n');
        self.i == self.b.len()
    }

    /// A member name: the format's names need no escapes, so one that has any is refused.
    fn name(&mut self) -> Option<&'a str> {
        let b: &'a [u8] = self.b;
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let end = find_special(b, start)?;
        if b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        std::str::from_utf8(&b[start..end]).ok()
    }

    /// A JSON string, unescaped into the scratch buffer when it has escapes.
    ///
    /// Envoy's formatter escapes each byte of a header value that is not valid UTF-8 as
    /// `\u0080`..`\u00ff` and passes valid UTF-8 through; such escapes are turned back into
    /// those bytes, and the result read as the portable path reads a header value
    /// (`String::from_utf8_lossy`), so both paths record the same text.
    fn string(&mut self) -> Option<&str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let plain = find_special(self.b, start)? - start;
        match self.b[start + plain] {
            b'"' => {
                self.i = start + plain + 1;
                return std::str::from_utf8(&self.b[start..start + plain]).ok();
            }
            b'\\' => {}
            // A raw control character: not JSON.
            _ => return None,
        }
        let mut out: Vec<u8> = std::mem::take(&mut self.scratch).into_bytes();
        out.clear();
        out.extend_from_slice(&self.b[start..start + plain]);
        self.i = start + plain;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    let escaped = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    let simple = match escaped {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            match self.unicode_escape()? {
                                Escaped::Byte(byte) => out.push(byte),
                                Escaped::Char(c) => {
                                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes())
                                }
                            }
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(simple);
                }
                c if c < 0x20 => return None,
                _ => {
                    let run = find_special(self.b, self.i)? - self.i;
                    out.extend_from_slice(&self.b[self.i..self.i + run]);
                    self.i += run;
                }
            }
        }
        self.scratch = match String::from_utf8(out) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Some(&self.scratch)
    }

    /// What a `\uXXXX` escape (the `\u` read) stands for: a character (with a surrogate
    /// pair's second half; a lone surrogate is U+FFFD), or, for U+0080..U+00FF, the byte of
    /// the header value that Envoy escaped because it was not valid UTF-8.
    fn unicode_escape(&mut self) -> Option<Escaped> {
        let unit = |r: &mut Self| -> Option<u32> {
            let hex = std::str::from_utf8(r.b.get(r.i..r.i + 4)?).ok()?;
            r.i += 4;
            u32::from_str_radix(hex, 16).ok()
        };
        let first = unit(self)?;
        if (0x80..0x100).contains(&first) {
            return Some(Escaped::Byte(first as u8));
        }
        if (0xd800..0xdc00).contains(&first) && self.b[self.i..].starts_with(b"\\u") {
            let save = self.i;
            self.i += 2;
            let second = unit(self)?;
            if (0xdc00..0xe000).contains(&second) {
                let c = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
                return char::from_u32(c).map(Escaped::Char);
            }
            self.i = save;
        }
        Some(Escaped::Char(char::from_u32(first).unwrap_or('\u{fffd}')))
    }
}

/// See [`Reader::unicode_escape`].
enum Escaped {
    Char(char),
    Byte(u8),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(object: &str) -> Option<(RequestFacts, IdentityFacts)> {
        let mut facts = RequestFacts::default();
        let identity = parse_request(object.as_bytes(), &mut facts)?;
        Some((facts, identity))
    }

    #[test]
    fn reads_what_envoy_formats() {
        let object = concat!(
            r#"{"authority":"shop.example","client":"10.1.2.3:5678","forwarded_for":null,"#,
            r#""header:x-user":"alice","method":"GET","mtls_subject":null,"#,
            r#""mtls_uri_san":"spiffe://a/b,spiffe://c","#,
            r#""path":"/a?b=\"c\"\\é\ud83d\ude00\u00ff","#,
            r#""protocol":"HTTP/1.1","request_id":"r-1","route":null,"scheme":"https","#,
            r#""start":"1764313200123456789","user_agent":"curl/8"}"#,
            "\n"
        );
        let (facts, identity) = request(object).expect("parsed");
        assert_eq!(facts.start_unix_nanos, 1_764_313_200_123_456_789);
        assert_eq!(facts.method, "GET");
        // Valid UTF-8 as it is; a byte Envoy escaped because it was not UTF-8, as U+FFFD.
        assert_eq!(facts.path, "/a?b=\"c\"\\é😀\u{fffd}");
        assert_eq!(facts.authority.as_deref(), Some("shop.example"));
        assert_eq!(facts.peer_address.as_deref(), Some("10.1.2.3:5678"));
        assert_eq!(facts.forwarded_for, None);
        assert_eq!(facts.route, None);
        assert_eq!(facts.protocol.as_deref(), Some("HTTP/1.1"));
        assert_eq!(
            identity.headers,
            [("x-user".to_string(), Some("alice".to_string()))]
        );
        assert_eq!(
            identity.mtls_uri_san,
            Some(Some("spiffe://a/b".to_string()))
        );
        assert_eq!(identity.mtls_subject, Some(None));
    }

    #[test]
    fn anything_else_is_not_the_fast_path() {
        for bad in [
            "",
            "{",
            r#"{"method":"GET"}"#,
            r#"{"start":"1764313200123456789"}"#,
            r#"{"method":"GET","start":"12.5"}"#,
            r#"{"method":"GET","start":"1764313200123456789","path":7}"#,
            r#"{"method":"GET","start":"1764313200123456789"} x"#,
            r#"{"method":"GE\q","start":"1764313200123456789"}"#,
        ] {
            assert!(request(bad).is_none(), "{bad}");
        }
    }

    fn list(items: &[&[u8]]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for item in items {
            out.extend_from_slice(&(item.len() as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        for item in items {
            out.extend_from_slice(item);
            out.extend_from_slice(&[0, 0]);
        }
        out
    }

    #[test]
    fn reads_the_response_list() {
        let r = parse_response(&list(&[
            &200i64.to_le_bytes(),
            &0i64.to_le_bytes(),
            b"10.0.0.9:8080",
            b"app",
        ]))
        .unwrap();
        assert_eq!(r.status, Some(200));
        assert_eq!(r.flags, Some(0));
        assert_eq!(r.upstream_host.as_deref(), Some("10.0.0.9:8080"));
        assert_eq!(r.upstream_cluster.as_deref(), Some("app"));
        let none = parse_response(&list(&[
            &(-1i64).to_le_bytes(),
            &(-1i64).to_le_bytes(),
            b"",
            b"",
        ]))
        .unwrap();
        assert_eq!(none, ResponseFacts::default());
        assert!(parse_response(&list(&[b"x"])).is_none());
    }
}
