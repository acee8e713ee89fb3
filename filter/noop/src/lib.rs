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
            Box::new(NoopRoot { reads: false, repeat: Repeat::Nothing, times: 0 })
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
    }

    struct NoopRoot {
        /// Make the audit filter's host calls (`{"reads":"audit"}`).
        reads: bool,
        repeat: Repeat,
        times: usize,
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
            self.reads = text_field(&config, "reads") == Some("audit");
            self.repeat = match text_field(&config, "repeat") {
                None => Repeat::Nothing,
                Some("clock") => Repeat::Clock,
                Some("headers") => Repeat::HeaderMap,
                Some("header") => Repeat::Header,
                Some("response.code") => Repeat::Property(&["response", "code"]),
                Some("source.address") => Repeat::Property(&["source", "address"]),
                Some("xds.route_name") => Repeat::Property(&["xds", "route_name"]),
                Some(other) => {
                    let _ = hostcalls::log(
                        LogLevel::Critical,
                        &format!("noop-filter: unknown repeat {other:?}"),
                    );
                    return false;
                }
            };
            self.times = number_field(&config, "times").unwrap_or(0);
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(NoopRequest {
                reads: self.reads,
                repeat: self.repeat,
                times: self.times,
                kept: 0,
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct NoopRequest {
        reads: bool,
        repeat: Repeat,
        times: usize,
        /// Bytes read, kept so the reads cannot be optimized away.
        kept: usize,
    }

    impl NoopRequest {
        fn keep(&mut self, bytes: Option<Vec<u8>>) {
            self.kept += bytes.map_or(0, |b| b.len());
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
                    _ => {}
                }
            }
            if self.reads {
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
                    _ => {}
                }
            }
            if !self.reads {
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
