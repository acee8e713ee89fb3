//! # noop-filter
//!
//! The baselines `cargo xtask bench proxy` measures the audit filter against, in one
//! proxy-wasm filter:
//!
//! - with the plugin configuration `{}`, it creates a context per request and does nothing
//!   else: the cost of running any Rust filter in Envoy's V8;
//! - with `{"reads":"audit"}`, it makes the host calls the audit filter makes on a request
//!   answered 200 without response flags (the clock twice, the request header map, and the
//!   `response.code`, `response.flags`, `source.address`, `request.protocol`,
//!   `xds.route_name`, `xds.cluster_name` and `upstream.address` properties) and nothing
//!   else: no event, no delivery. What that costs is a floor no filter reporting those
//!   fields through the proxy-wasm ABI can go below. It reads through the SDK's own calls,
//!   which copy a little more than the audit filter's, so the floor is slightly high;
//! - with `{"repeat":"<what>","times":N}`, it makes one kind of host call N times per request,
//!   for `cargo xtask bench hostcalls` to price it: `clock`, `headers` (the whole request
//!   header map), `header` (the value of `:path`), or a property path such as
//!   `response.code`.

#[cfg(target_arch = "wasm32")]
mod plugin {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(NoopRoot { reads: Reads::Nothing, repeat: Repeat::Nothing, times: 0, expr: None })
        });
    }}

    /// The one host call `{"repeat": ...}` makes.
    #[derive(Clone, Copy)]
    enum Repeat {
        Nothing,
        Clock,
        HeaderMap,
        Header,
        /// A property path, as the SDK takes it.
        Property(&'static [&'static str]),
        /// The request's facts pre-formatted by Envoy's `set_filter_state` filter.
        FilterState,
        /// One evaluation of the response-side CEL list (`expr_evaluate`).
        Cel,
    }

    /// The filter-state object the gateway's `set_filter_state` filter writes.
    const FILTER_STATE: &str = "io.ingress_audit.request";
    /// The CEL list of the response-side facts.
    const RESPONSE_EXPR: &str = "[has(response.code) ? response.code : -1, \
        has(response.flags) ? response.flags : -1, \
        has(upstream.address) ? upstream.address : '', \
        has(xds.cluster_name) ? xds.cluster_name : '']";

    /// Other expressions `{"repeat":"cel","expr":N}` prices, to see where CEL's time goes.
    const PROBE_EXPRS: [&str; 5] = [
        RESPONSE_EXPR,
        "1",
        "response.code",
        "[response.code, response.flags]",
        "response.code + int(response.flags) * 1000",
    ];

    /// Which filter's per-request host calls to make.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Reads {
        Nothing,
        /// `{"reads":"audit"}`: the audit filter's portable path (every fact its own call).
        Audit,
        /// `{"reads":"fast"}`: the audit filter's fast path (filter state, one CEL list).
        Fast,
    }

    struct NoopRoot {
        reads: Reads,
        repeat: Repeat,
        times: usize,
        /// The token of the response-side CEL expression, when one is needed.
        expr: Option<u32>,
    }

    /// Prepare a CEL expression (`expr_create`): its token.
    fn expr_create(text: &str) -> Option<u32> {
        let out = hostcalls::call_foreign_function("expr_create", Some(text.as_bytes()))
            .ok()
            .flatten()?;
        Some(u32::from_le_bytes(out.get(..4)?.try_into().ok()?))
    }

    /// The string value of `"name":"..."` in a flat JSON object (enough for these baselines,
    /// which take no other input).
    fn text_field<'a>(config: &'a str, name: &str) -> Option<&'a str> {
        let start = config.find(&format!("\"{name}\":\""))? + name.len() + 4;
        let len = config[start..].find('"')?;
        Some(&config[start..start + len])
    }

    fn number_field(config: &str, name: &str) -> Option<usize> {
        let start = config.find(&format!("\"{name}\":"))? + name.len() + 3;
        let digits: String = config[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    impl Context for NoopRoot {}

    impl RootContext for NoopRoot {
        fn on_configure(&mut self, _size: usize) -> bool {
            let config = hostcalls::get_buffer(
                proxy_wasm::types::BufferType::PluginConfiguration,
                0,
                usize::MAX,
            )
            .ok()
            .flatten()
            .unwrap_or_default();
            let config = String::from_utf8_lossy(&config).replace(' ', "");
            self.reads = match text_field(&config, "reads") {
                Some("audit") => Reads::Audit,
                Some("fast") => Reads::Fast,
                _ => Reads::Nothing,
            };
            self.repeat = match text_field(&config, "repeat") {
                None => Repeat::Nothing,
                Some("clock") => Repeat::Clock,
                Some("headers") => Repeat::HeaderMap,
                Some("header") => Repeat::Header,
                Some("response.code") => Repeat::Property(&["response", "code"]),
                Some("source.address") => Repeat::Property(&["source", "address"]),
                Some("xds.route_name") => Repeat::Property(&["xds", "route_name"]),
                Some("filter_state") => Repeat::FilterState,
                Some("cel") => Repeat::Cel,
                Some(other) => {
                    let _ = hostcalls::log(
                        LogLevel::Critical,
                        &format!("noop-filter: unknown repeat {other:?}"),
                    );
                    return false;
                }
            };
            self.times = number_field(&config, "times").unwrap_or(0);
            if self.reads == Reads::Fast || matches!(self.repeat, Repeat::Cel) {
                let n = number_field(&config, "expr").unwrap_or(0);
                self.expr = expr_create(PROBE_EXPRS.get(n).copied().unwrap_or(RESPONSE_EXPR));
                if self.expr.is_none() {
                    let _ = hostcalls::log(LogLevel::Critical, "noop-filter: expr_create failed");
                    return false;
                }
            }
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(NoopRequest {
                reads: self.reads,
                repeat: self.repeat,
                times: self.times,
                expr: self.expr,
                kept: 0,
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct NoopRequest {
        reads: Reads,
        repeat: Repeat,
        times: usize,
        expr: Option<u32>,
        /// Bytes read, kept so the reads cannot be optimized away.
        kept: usize,
    }

    impl NoopRequest {
        fn keep(&mut self, bytes: Option<Vec<u8>>) {
            self.kept += bytes.map_or(0, |b| b.len());
        }

        fn filter_state(&mut self) {
            let value = hostcalls::get_property(vec!["filter_state", FILTER_STATE]);
            self.keep(value.ok().flatten());
        }

        fn evaluate(&mut self) {
            if let Some(token) = self.expr {
                let value =
                    hostcalls::call_foreign_function("expr_evaluate", Some(&token.to_le_bytes()));
                self.keep(value.ok().flatten());
            }
        }
    }

    impl Context for NoopRequest {}

    impl HttpContext for NoopRequest {
        fn on_http_request_headers(&mut self, _num_headers: usize, _eos: bool) -> Action {
            for _ in 0..self.times {
                match self.repeat {
                    Repeat::HeaderMap => {
                        if let Ok(map) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
                            self.kept += map.len();
                        }
                    }
                    Repeat::Header => {
                        let value =
                            hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path");
                        self.keep(value.ok().flatten());
                    }
                    Repeat::FilterState => self.filter_state(),
                    _ => {}
                }
            }
            if self.reads == Reads::Fast {
                self.filter_state();
            }
            if self.reads == Reads::Audit {
                let _ = hostcalls::get_current_time();
                if let Ok(map) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
                    self.kept += map.len();
                }
            }
            Action::Continue
        }

        fn on_log(&mut self) {
            for _ in 0..self.times {
                match self.repeat {
                    Repeat::Clock => {
                        let _ = hostcalls::get_current_time();
                    }
                    Repeat::Property(path) => {
                        let value = hostcalls::get_property(path.to_vec()).ok().flatten();
                        self.keep(value);
                    }
                    Repeat::Cel => self.evaluate(),
                    _ => {}
                }
            }
            if self.reads == Reads::Fast {
                let _ = hostcalls::get_current_time();
                self.evaluate();
                return;
            }
            if self.reads != Reads::Audit {
                return;
            }
            let _ = hostcalls::get_current_time();
            for path in [
                ["response", "code"],
                ["response", "flags"],
                ["source", "address"],
                ["request", "protocol"],
                ["xds", "route_name"],
                ["xds", "cluster_name"],
                ["upstream", "address"],
            ] {
                let value = hostcalls::get_property(path.to_vec()).ok().flatten();
                self.keep(value);
            }
        }
    }
}
