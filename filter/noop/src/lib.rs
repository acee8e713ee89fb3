//! # noop-filter
//!
//! A proxy-wasm HTTP filter that creates a context per request and does nothing else: the
//! cost of running any Rust filter in Envoy's V8, against which `cargo xtask bench proxy`
//! measures the audit filter.

#[cfg(target_arch = "wasm32")]
mod plugin {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
    }}

    struct NoopRoot;
    impl Context for NoopRoot {}
    impl RootContext for NoopRoot {
        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(NoopRequest))
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct NoopRequest;
    impl Context for NoopRequest {}
    impl HttpContext for NoopRequest {}
}
