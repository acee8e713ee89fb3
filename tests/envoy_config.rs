//! The shipped standalone gateway config, `envoy-config/standalone/envoy.yaml`, run by the
//! real Envoy 1.40 that `cargo xtask test` installs.

use std::path::Path;

use harness::envoy::config::{self, Ports};
use harness::envoy::{self, Envoy};

/// `envoy --mode validate` on the shipped config with only the `.wasm` path changed to the
/// built filter: Envoy accepts every field, compiles the filter in V8 and the filter accepts
/// the shipped plugin configuration (a refusal fails validation).
#[test]
fn shipped_config_validates_with_the_audit_filter() {
    let config = crate::required(envoy::config::with_wasm_path(
        &crate::required(envoy::config::shipped()),
        &crate::filter_wasm(),
    ));
    envoy::expect_valid(&config);
}

/// The shipped gateway with the audit filter removed: a request to the gateway listener is
/// routed to the `app` cluster, which is the direct-response upstream listener.
#[test]
fn gateway_routes_to_the_upstream_without_the_filter() {
    let ports = Ports::free(harness::free_port());
    let (gateway, upstream, admin) = (ports.gateway, ports.upstream, ports.admin);
    let config = config::standalone(ports, Path::new("/unused/filter.wasm"), "{}");
    let config = crate::required(config::without_audit_filter(&crate::required(config)));
    let envoy = Envoy::start(&config);
    assert_eq!(envoy.admin_port(), admin);
    assert_eq!(envoy.listener_port("gateway"), gateway);
    assert_eq!(envoy.listener_port("upstream"), upstream);

    assert_eq!(
        envoy.get("gateway", "/"),
        (200, "hello from the upstream\n".to_owned())
    );
    assert_eq!(
        envoy.get("gateway", "/cart/items?id=4711"),
        (200, "hello from the upstream\n".to_owned())
    );
    assert_eq!(
        envoy.get("gateway", "/missing"),
        (404, "not found\n".to_owned())
    );
}
