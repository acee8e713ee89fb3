//! The proxy-wasm glue: Envoy calls in here. Only host calls live in this module; the logic
//! they feed is in [`crate::event`], [`crate::delivery`] and [`crate::config`].
//!
//! No host call result is unwrapped: a panic traps the VM and takes the gateway's audit with
//! it. A failed host call leaves the field out (and, for facts every request has, lists it in
//! the event's `unavailable`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use auditlog::event::IdentitySource as EventIdentity;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};
use sha2::{Digest, Sha256};

use crate::config::{FailurePolicy, FilterConfig, IdentitySource};
use crate::delivery::{Delivery, DeliveryLimits};
use crate::event::RequestFacts;
use crate::host;
use crate::json_line::write_ingest_line;
use crate::pairs::pairs;
use crate::preformatted::{self, FILTER_STATE_PATH, RESPONSE_EXPR};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(AuditRoot::default()) });
}}

fn now_nanos() -> i64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The start of the sealer's answer, for the log.
fn response_excerpt(body_size: usize) -> String {
    hostcalls::get_buffer(
        proxy_wasm::types::BufferType::HttpCallResponseBody,
        0,
        body_size.min(300),
    )
    .ok()
    .flatten()
    .map(|b| String::from_utf8_lossy(&b).into_owned())
    .unwrap_or_default()
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Host metrics (visible in Envoy's `/stats` as `wasmcustom.ingress_audit.*`).
#[derive(Default)]
struct Metrics {
    events: Option<u32>,
    batches: Option<u32>,
    delivery_failures: Option<u32>,
    dropped: Option<u32>,
    refused: Option<u32>,
    /// Requests whose facts came from the fast path's pre-formatted object.
    preformatted: Option<u32>,
    buffered_bytes: Option<u32>,
}

impl Metrics {
    fn define() -> Metrics {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
        Metrics {
            events: counter("ingress_audit.events"),
            batches: counter("ingress_audit.batches_delivered"),
            delivery_failures: counter("ingress_audit.delivery_failures"),
            dropped: counter("ingress_audit.events_dropped"),
            refused: counter("ingress_audit.requests_refused"),
            preformatted: counter("ingress_audit.requests_preformatted"),
            buffered_bytes: hostcalls::define_metric(
                MetricType::Gauge,
                "ingress_audit.buffered_bytes",
            )
            .ok(),
        }
    }

    fn add(id: Option<u32>, n: u64) {
        if let Some(id) = id
            && n > 0
        {
            let _ = hostcalls::increment_metric(id, n as i64);
        }
    }
}

/// What the root context and every request of this VM share.
struct Shared {
    config: Rc<FilterConfig>,
    source: String,
    delivery: Delivery,
    metrics: Metrics,
    /// Counted per request, reported to the host on each tick (a host call per request
    /// costs more than the count is worth).
    unreported_events: u64,
    unreported_dropped: u64,
    unreported_preformatted: u64,
    /// This VM's share of the `buffered_bytes` gauge. Every worker VM reports into the same
    /// gauge, so each adds the change of its own buffer: the gauge is the sum over workers
    /// (setting it would let an idle worker's 0 hide another's full buffer).
    reported_buffered: u64,
    /// The token of the call in flight to the sealer.
    in_flight: Option<u32>,
    /// When the last batch (or heartbeat) went to the sealer, in ms since the epoch.
    last_sent_ms: u64,
    /// Envoy asked this VM to finish (`on_done`).
    shutting_down: bool,
    /// The batch in flight is the one that tells the sealer this source is closing.
    closing_in_flight: bool,
    /// The sealer acknowledged this source's close: nothing more will be sent.
    closed: bool,
    /// The timer was set to fire at once because a full batch is waiting.
    tick_hurried: bool,
    /// What this host offers, learned as the VM runs.
    host: HostSupport,
}

/// What the host offers beyond the plain ABI, and so which way each fact is read.
#[derive(Default)]
struct HostSupport {
    /// The token of [`RESPONSE_EXPR`] when the host prepared it (`expr_create`).
    response_expr: Option<[u8; 4]>,
    /// Requests left before the filter looks for the pre-formatted request object again
    /// after it was missing (so a host without it pays one failed call per 1024 requests).
    skip_filter_state: u32,
    /// The object was there at least once: this host writes it (perhaps only on some
    /// routes), so it is looked for on every request.
    filter_state_seen: bool,
    /// The host has no `response.code` (it gave none for a request whose response headers
    /// were seen): the status comes from `:status`, and the other Envoy-only properties are
    /// not asked for.
    plain_abi: bool,
}

/// How many requests go without looking for the pre-formatted object once it was missing.
const FILTER_STATE_RETRY: u32 = 1023;

impl Shared {
    /// Send the next batch if there is one and nothing is in flight: events, or an empty
    /// batch when a heartbeat is due or the VM closes with nothing left. Only the root context
    /// calls this: the call's answer comes back to the context that made it.
    ///
    /// Every batch names its source and the highest sequence number the source has given out
    /// so far (`audit-source`, `audit-source-seq`), so the sealer knows of events still
    /// waiting here; the last batch of a VM that closes says so (`audit-source-closing`), and
    /// the sealer seals the source's clean end.
    fn flush(&mut self) {
        let now_ms = (now_nanos() / 1_000_000).max(0) as u64;
        // A source that never numbered an event needs no heartbeat and no close: the sealer
        // has never heard of it.
        let started = self.delivery.next_seq() > 1;
        let closing = self.shutting_down && !self.closed && started;
        let batch = match self.delivery.next_batch(now_ms) {
            Some(batch) => batch,
            None if closing
                || (started && now_ms >= self.last_sent_ms + self.config.heartbeat_interval_ms) =>
            {
                match self.delivery.empty_batch(now_ms) {
                    Some(batch) => batch,
                    None => return,
                }
            }
            None => return,
        };
        let config = self.config.clone();
        let authorization = config.sealer_token.as_ref().map(|t| t.header());
        let announced = (self.delivery.next_seq() - 1).to_string();
        let last = closing && batch.count == self.delivery.queued_events();
        let mut headers = vec![
            (":method", "POST"),
            (":path", config.sealer_path.as_str()),
            (":authority", config.sealer_authority.as_str()),
            ("content-type", "application/x-ndjson"),
            ("audit-source", self.source.as_str()),
            ("audit-source-seq", announced.as_str()),
        ];
        if last {
            headers.push(("audit-source-closing", "true"));
        }
        if let Some(value) = &authorization {
            headers.push(("authorization", value));
        }
        let result = hostcalls::dispatch_http_call(
            &config.cluster,
            headers,
            Some(&batch.body),
            vec![],
            Duration::from_millis(config.sealer_timeout_ms),
        );
        match result {
            Ok(token) => {
                self.in_flight = Some(token);
                self.last_sent_ms = now_ms;
                self.closing_in_flight = last;
            }
            Err(status) => self.retry_later(
                now_ms,
                &format!("cannot call cluster {:?} ({status:?})", config.cluster),
            ),
        }
    }

    /// The batch could not be delivered: keep its events, back off, count and log why.
    fn retry_later(&mut self, now_ms: u64, why: &str) {
        self.delivery.failed(now_ms);
        Metrics::add(self.metrics.delivery_failures, 1);
        log(
            LogLevel::Warn,
            &format!(
                "ingress_audit: {why}; {} events kept for retry",
                self.delivery.queued_events()
            ),
        );
    }

    /// Report what was counted since the last tick.
    fn report_metrics(&mut self) {
        Metrics::add(
            self.metrics.events,
            std::mem::take(&mut self.unreported_events),
        );
        Metrics::add(
            self.metrics.dropped,
            std::mem::take(&mut self.unreported_dropped),
        );
        Metrics::add(
            self.metrics.preformatted,
            std::mem::take(&mut self.unreported_preformatted),
        );
        self.report_buffered();
    }

    /// Move this VM's share of the `buffered_bytes` gauge to its buffer's size now.
    fn report_buffered(&mut self) {
        let now = self.delivery.queued_bytes() as u64;
        if let Some(id) = self.metrics.buffered_bytes
            && now != self.reported_buffered
        {
            let delta = now as i64 - self.reported_buffered as i64;
            if hostcalls::increment_metric(id, delta).is_ok() {
                self.reported_buffered = now;
            }
        }
    }
}

#[derive(Default)]
struct AuditRoot {
    shared: Option<Rc<RefCell<Shared>>>,
}

impl AuditRoot {
    fn flush(&mut self) {
        if let Some(shared) = &self.shared {
            shared.borrow_mut().flush();
        }
    }

    fn in_flight(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.borrow().in_flight.is_some())
    }
}

impl Context for AuditRoot {
    /// Envoy is shutting down or replacing this VM: send what waits, and ask for time while
    /// the last call to the sealer is in flight.
    fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.shared {
            shared.borrow_mut().shutting_down = true;
        }
        self.flush();
        !self.in_flight()
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if shared.borrow().in_flight != Some(token) {
            return;
        }
        shared.borrow_mut().in_flight = None;
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        {
            let mut s = shared.borrow_mut();
            match status {
                Some(200..=299) => {
                    s.delivery.delivered();
                    Metrics::add(s.metrics.batches, 1);
                    s.closed |= s.closing_in_flight;
                }
                // The sealer refused the events themselves: sending them again cannot help.
                // They are dropped, counted, and the sealer records their numbers as a gap.
                Some(code @ (400 | 413 | 415)) => {
                    let n = s.delivery.rejected();
                    Metrics::add(s.metrics.dropped, n as u64);
                    log(
                        LogLevel::Error,
                        &format!(
                            "ingress_audit: sealer refused a batch with {code} ({}); {n} events dropped",
                            response_excerpt(body_size)
                        ),
                    );
                }
                other => {
                    let now_ms = (now_nanos() / 1_000_000).max(0) as u64;
                    let answer =
                        other.map_or("nothing (timeout or reset)".to_string(), |c| c.to_string());
                    s.retry_later(now_ms, &format!("sealer answered {answer}"));
                }
            }
            s.report_buffered();
        }
        {
            let mut s = shared.borrow_mut();
            let delay = s.config.batch_delay_ms;
            if delay > 0 && !s.shutting_down && !s.delivery.full_batch_waiting() {
                if !s.tick_hurried {
                    s.tick_hurried =
                        hostcalls::set_tick_period(Duration::from_millis(delay)).is_ok();
                }
                if s.tick_hurried {
                    return;
                }
            }
        }
        // Keep the pipe full: what waits goes right away. Under load the batches stay as small
        // as the sealer's answer is quick, which keeps both processes' bursts short (a
        // 1000-event batch made the gateway's p99 three times worse, docs/benchmarks.md);
        // when the sealer slows down, more waits and the batches grow to their limits.
        self.flush();
        let shutting_down = shared.borrow().shutting_down;
        if shutting_down && !self.in_flight() {
            // Envoy is waiting for this VM to finish (on_done): it may go now.
            let _ = hostcalls::done();
        }
    }
}

impl RootContext for AuditRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let config = match FilterConfig::parse(&bytes) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                log(LogLevel::Critical, &e);
                return false;
            }
        };
        let mut incarnation = [0u8; 8];
        if getrandom::fill(&mut incarnation).is_err() {
            incarnation = now_nanos().to_le_bytes();
        }
        let source = format!(
            "{}/{}",
            config.gateway,
            incarnation
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let limits = DeliveryLimits {
            max_batch_events: config.max_batch_events,
            max_batch_bytes: config.max_batch_bytes,
            max_buffer_bytes: config.max_buffer_bytes,
            backoff_min_ms: config.retry_backoff_min_ms,
            backoff_max_ms: config.retry_backoff_max_ms,
        };
        log(
            LogLevel::Info,
            &format!(
                "ingress_audit: configured; events from source {source} go to cluster {:?}",
                config.cluster
            ),
        );
        let _ = hostcalls::set_tick_period(Duration::from_millis(config.flush_interval_ms));
        // The response side's one call: a host without CEL (or without foreign functions)
        // leaves the filter to read each fact on its own.
        let response_expr = host::foreign_function("expr_create", RESPONSE_EXPR.as_bytes())
            .and_then(|token| token.get(..4)?.try_into().ok());
        self.shared = Some(Rc::new(RefCell::new(Shared {
            config,
            source,
            delivery: Delivery::new(limits),
            metrics: Metrics::define(),
            unreported_events: 0,
            unreported_dropped: 0,
            unreported_preformatted: 0,
            reported_buffered: 0,
            in_flight: None,
            last_sent_ms: 0,
            shutting_down: false,
            closing_in_flight: false,
            closed: false,
            tick_hurried: false,
            host: HostSupport {
                response_expr,
                ..HostSupport::default()
            },
        })));
        true
    }

    fn on_tick(&mut self) {
        if let Some(shared) = &self.shared {
            let mut s = shared.borrow_mut();
            if s.tick_hurried {
                let interval = Duration::from_millis(s.config.flush_interval_ms);
                s.tick_hurried = hostcalls::set_tick_period(interval).is_err();
            }
            s.report_metrics();
        }
        self.flush();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(AuditRequest {
            shared,
            facts: RequestFacts::default(),
            identity_header: None,
            preformatted: None,
            response_headers_seen: false,
            status_header: None,
            hasher: None,
            hashed: 0,
            request_body: BodyCount::default(),
            response_body: BodyCount::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AuditRequest {
    shared: Rc<RefCell<Shared>>,
    facts: RequestFacts,
    /// The first configured identity header present: its place among the configured
    /// identity sources, and its value.
    identity_header: Option<(usize, String)>,
    /// The request side came from the pre-formatted object; its identity candidates.
    preformatted: Option<preformatted::IdentityFacts>,
    response_headers_seen: bool,
    /// `:status`, read on a host without `response.code`.
    status_header: Option<u16>,
    hasher: Option<Sha256>,
    hashed: u64,
    request_body: BodyCount,
    response_body: BodyCount,
}

/// The bytes of one direction's body that passed the filter. Envoy hands every chunk's size
/// to the body callbacks anyway, so counting costs no host call; the `request.size` and
/// `response.size` properties are read only when the count is not the whole body.
#[derive(Default)]
struct BodyCount {
    bytes: u64,
    /// The end of the stream was seen: `bytes` is the whole body.
    complete: bool,
}

impl BodyCount {
    fn add(&mut self, chunk: usize, end_of_stream: bool) {
        self.bytes += chunk as u64;
        self.complete |= end_of_stream;
    }

    /// The whole body's size; the property (Envoy's own count) when the end was not seen.
    fn size(&self, property: &[u8]) -> Option<u64> {
        if self.complete {
            Some(self.bytes)
        } else {
            property_u64(property)
        }
    }
}

/// A text property by its serialized path (`b"source\0address"`); `None` when absent or
/// empty.
fn property_string(path: &[u8]) -> Option<String> {
    let bytes = host::property(path)?;
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (!text.is_empty()).then_some(text)
}

/// The response's `:status` header, as the plain ABI offers it.
fn response_status_header() -> Option<u16> {
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
}

/// Integer properties are 8 bytes, little-endian.
fn property_u64(path: &[u8]) -> Option<u64> {
    let b = host::property(path)?;
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// The serialized property path of a verified JWT claim in `jwt_authn`'s dynamic metadata.
fn jwt_claim_path(metadata_key: &str, claim: &str) -> Vec<u8> {
    let mut path = b"metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0".to_vec();
    path.extend_from_slice(metadata_key.as_bytes());
    path.push(0);
    path.extend_from_slice(claim.as_bytes());
    path
}

impl AuditRequest {
    fn identity(&self, config: &FilterConfig) -> Option<(String, EventIdentity)> {
        for (place, source) in config.identity.iter().enumerate() {
            let found = match source {
                IdentitySource::Mtls => self.mtls_identity().map(|id| (id, EventIdentity::Mtls)),
                IdentitySource::Jwt {
                    metadata_key,
                    claim,
                } => property_string(&jwt_claim_path(metadata_key, claim))
                    .map(|id| (id, EventIdentity::Jwt)),
                IdentitySource::Header { .. } => match &self.identity_header {
                    Some((at, value)) if *at == place => {
                        Some((value.clone(), EventIdentity::Header))
                    }
                    _ => None,
                },
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The mTLS peer's first URI SAN, else its subject: from the pre-formatted object where it
    /// has them, else from the connection's properties.
    fn mtls_identity(&self) -> Option<String> {
        let facts = self.preformatted.as_ref();
        let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let uri_san = match facts.and_then(|f| f.mtls_uri_san.as_ref()) {
            Some(known) => non_empty(known),
            None => property_string(b"connection\0uri_san_peer_certificate"),
        };
        uri_san.or_else(|| match facts.and_then(|f| f.mtls_subject.as_ref()) {
            Some(known) => non_empty(known),
            None => property_string(b"connection\0subject_peer_certificate"),
        })
    }

    /// Keep `value` of the identity header `name` if it is configured before the one kept.
    fn identity_header_seen(&mut self, config: &FilterConfig, name: &[u8], value: &str) {
        let place = config.identity.iter().position(
            |i| matches!(i, IdentitySource::Header { name: n } if n.as_bytes().eq_ignore_ascii_case(name)),
        );
        if let Some(place) = place
            && self
                .identity_header
                .as_ref()
                .is_none_or(|(at, _)| place < *at)
        {
            self.identity_header = Some((place, value.to_owned()));
        }
    }

    /// The request side from the object Envoy's `set_filter_state` filter wrote, in one call
    /// (`crate::preformatted`). `false` when there is none: the caller reads the facts itself.
    fn read_preformatted(&mut self, config: &FilterConfig) -> bool {
        {
            let mut s = self.shared.borrow_mut();
            if s.host.skip_filter_state > 0 {
                s.host.skip_filter_state -= 1;
                return false;
            }
        }
        let Some(object) = host::property(FILTER_STATE_PATH) else {
            let mut s = self.shared.borrow_mut();
            if !s.host.filter_state_seen {
                s.host.skip_filter_state = FILTER_STATE_RETRY;
            }
            return false;
        };
        self.shared.borrow_mut().host.filter_state_seen = true;
        let Some(identity) = preformatted::parse_request(&object, &mut self.facts) else {
            log(
                LogLevel::Warn,
                "ingress_audit: the filter-state object io.ingress_audit.request is not what \
                 docs/filter-config.md shows; reading the request's facts one by one",
            );
            self.facts = RequestFacts::default();
            return false;
        };
        for (name, value) in &identity.headers {
            if let Some(value) = value {
                self.identity_header_seen(config, name.as_bytes(), value);
            }
        }
        // An identity header the object does not carry is read on its own.
        for source in &config.identity {
            if let IdentitySource::Header { name } = source
                && !identity
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name))
                && let Ok(Some(value)) =
                    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
            {
                let value = String::from_utf8_lossy(&value).into_owned();
                self.identity_header_seen(config, name.as_bytes(), &value);
            }
        }
        self.preformatted = Some(identity);
        true
    }

    /// The request side one fact at a time: the clock and the request header map.
    fn read_request_headers(&mut self, config: &FilterConfig) {
        self.facts.start_unix_nanos = now_nanos();
        // One host call for the whole map; only the named headers are kept, so credentials
        // (authorization, cookie, ...) are never even copied. Where a header repeats, its
        // first value counts, as in Envoy's `%REQ(...)%`.
        if let Some(map) = host::request_header_map() {
            for (name, value) in pairs(&map) {
                let text = || String::from_utf8_lossy(value).into_owned();
                let f = &mut self.facts;
                match name {
                    b":method" if f.method.is_empty() => f.method = text(),
                    b":path" if f.path.is_empty() => f.path = text(),
                    b":authority" => drop(f.authority.get_or_insert_with(text)),
                    b":scheme" => drop(f.scheme.get_or_insert_with(text)),
                    b"user-agent" => drop(f.user_agent.get_or_insert_with(text)),
                    b"x-request-id" => drop(f.request_id.get_or_insert_with(text)),
                    b"x-forwarded-for" => drop(f.forwarded_for.get_or_insert_with(text)),
                    b":method" | b":path" => {}
                    other => {
                        if !config.identity.is_empty() {
                            self.identity_header_seen(config, other, &text());
                        }
                    }
                }
            }
        }
    }
}

impl Context for AuditRequest {}

impl HttpContext for AuditRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // No body follows: an empty body, completely seen.
        self.request_body.add(0, end_of_stream);
        let config = self.shared.borrow().config.clone();
        if !self.read_preformatted(&config) {
            self.read_request_headers(&config);
        }
        if config.body_hash.enabled
            && config
                .body_hash
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&self.facts.method))
        {
            self.hasher = Some(Sha256::new());
        }
        if config.failure_policy == FailurePolicy::FailClosed
            && self.shared.borrow().delivery.unavailable()
        {
            Metrics::add(self.shared.borrow().metrics.refused, 1);
            let _ = hostcalls::send_http_response(
                503,
                vec![("content-type", "text/plain; charset=utf-8")],
                Some(b"audit log unavailable: this gateway refuses requests it cannot audit (fail_closed)\n"),
            );
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let max = self.shared.borrow().config.body_hash.max_bytes;
        if let Some(hasher) = self.hasher.as_mut() {
            self.hashed += body_size as u64;
            if self.hashed > max {
                self.hasher = None;
            } else if let Ok(Some(chunk)) =
                hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, body_size)
            {
                hasher.update(&chunk);
            }
        }
        self.request_body.add(body_size, end_of_stream);
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.request_body.complete = true;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.response_body.add(0, end_of_stream);
        self.response_headers_seen = true;
        if self.shared.borrow().host.plain_abi {
            self.status_header = response_status_header();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.response_body.add(body_size, end_of_stream);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.response_body.complete = true;
        Action::Continue
    }

    fn on_log(&mut self) {
        let config = self.shared.borrow().config.clone();
        let f = &mut self.facts;
        let now = now_nanos();
        if f.start_unix_nanos == 0 {
            // The request's headers never reached the filter (Envoy's codec refused them):
            // its start is unknown, so the log time stands in and no duration is recorded.
            f.start_unix_nanos = now;
            f.unavailable.push("duration_ns");
        } else {
            f.end_unix_nanos = Some(now);
        }
        let (response_expr, plain_abi) = {
            let s = self.shared.borrow();
            (s.host.response_expr, s.host.plain_abi)
        };
        // The response side in one call where the host evaluates CEL, else one by one.
        let evaluated = response_expr
            .and_then(|token| host::foreign_function("expr_evaluate", &token))
            .and_then(|list| preformatted::parse_response(&list));
        if let Some(r) = evaluated {
            f.status = r.status;
            f.response_flags = r.flags;
            f.upstream_host = r.upstream_host;
            f.upstream_cluster = r.upstream_cluster;
        } else if !plain_abi {
            f.status = property_u64(b"response\0code").map(|c| c as u16);
            f.response_flags = property_u64(b"response\0flags");
            f.upstream_cluster = property_string(b"xds\0cluster_name");
            f.upstream_host = property_string(b"upstream\0address");
        }
        if f.status.is_none() && self.response_headers_seen {
            // A response went out, yet the host has no `response.code`: a host with only the
            // plain ABI. Its status is in the response headers, from now on read there.
            f.status = self.status_header.or_else(response_status_header);
            if !plain_abi {
                self.shared.borrow_mut().host.plain_abi = true;
            }
        }
        if !plain_abi && config.code_details.wanted(f.status, f.response_flags) {
            f.response_code_details = property_string(b"response\0code_details");
        }
        if self.preformatted.is_none() {
            f.peer_address = property_string(b"source\0address");
            f.protocol = property_string(b"request\0protocol");
            if !plain_abi {
                f.route = property_string(b"xds\0route_name");
            }
        }
        f.request_body_size = self.request_body.size(b"request\0size");
        f.response_body_size = self.response_body.size(b"response\0size");
        for (name, missing) in [
            ("http.response.status_code", f.status.is_none()),
            ("client.address", f.peer_address.is_none()),
            ("network.protocol.version", f.protocol.is_none()),
        ] {
            if missing {
                f.unavailable.push(name);
            }
        }
        // A hash only of a body seen to its end: a request answered before its body was read
        // (or cut off) gets none rather than a hash of part of it.
        if let Some(h) = self.hasher.take().filter(|_| self.request_body.complete) {
            let mut hex = String::with_capacity(64);
            for b in h.finalize() {
                hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
                hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
            }
            f.request_body_sha256 = Some(hex);
        }
        self.facts.identity = self.identity(&config);
        let mut s = self.shared.borrow_mut();
        let mut line = Vec::with_capacity(768);
        write_ingest_line(
            &mut line,
            &s.source,
            s.delivery.next_seq(),
            &self.facts,
            &config,
        );
        let dropped = s.delivery.push(line);
        s.unreported_events += 1;
        s.unreported_dropped += dropped;
        s.unreported_preformatted += u64::from(self.preformatted.is_some());
        if s.delivery.full_batch_waiting() && !s.tick_hurried {
            // A full batch goes now rather than at the next tick, so a busy worker's buffer
            // never waits for the timer. The root context sends it (the call's answer must
            // not depend on this request living on): its timer is set to fire at once, and
            // `on_tick` sets it back.
            s.tick_hurried = hostcalls::set_tick_period(Duration::from_millis(1)).is_ok();
        }
    }
}
