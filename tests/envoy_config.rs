//! The shipped standalone gateway config, `envoy-config/standalone/envoy.yaml`, run by the
//! real Envoy 1.40 that `cargo xtask test` installs.

use std::path::Path;

use e2e::envoy::{self, Envoy};

/// `envoy --mode validate` on the shipped config with only the `.wasm` path changed to the
/// built filter: Envoy accepts every field, compiles the filter in V8 and the filter accepts
/// the shipped plugin configuration (a refusal fails validation).
#[test]
fn shipped_config_validates_with_the_audit_filter() {
    let config = envoy::with_wasm_path(&envoy::shipped_config(), &envoy::filter_wasm());
    envoy::expect_valid(&config);
}

/// The shipped gateway with the audit filter removed: a request to the gateway listener is
/// routed to the `app` cluster, which is the direct-response upstream listener.
#[test]
fn gateway_routes_to_the_upstream_without_the_filter() {
    let (gateway, upstream, admin, sealer) = (
        envoy::free_port(),
        envoy::free_port(),
        envoy::free_port(),
        envoy::free_port(),
    );
    let config = envoy::standalone_config(
        gateway,
        upstream,
        admin,
        sealer,
        Path::new("/unused/filter.wasm"),
        "{}",
    );
    let envoy = Envoy::start(&envoy::without_audit_filter(&config));
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
