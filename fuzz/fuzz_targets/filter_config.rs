//! The audit filter's plugin configuration (JSON from a WasmPlugin or EnvoyFilter): any
//! bytes are accepted or refused with an error naming the problem, never a panic (a panic
//! would trap the VM inside Envoy).
#![no_main]

use filter::config::FilterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(message) = FilterConfig::parse(data) {
        assert!(message.starts_with("invalid audit filter configuration"));
    }
});
