//! Kubernetes API server audit events (`audit.k8s.io/v1`, as the webhook backend sends them in
//! an `EventList`): which of them are sealed, and what a `k8s_audit` entry keeps of each.
//!
//! Only the resources that decide what the gateway exposes, and those that configure the
//! audit itself, are kept ([`Selection::default`]); only final stages (`ResponseComplete`,
//! `Panic`) by default. An entry keeps who (`user`, `impersonatedUser`), from where
//! (`sourceIPs`, `userAgent`), what (`verb`, `objectRef`, the request and response objects),
//! the outcome (`responseStatus`, the authorization annotations) and when
//! (`requestReceivedTimestamp`, `stageTimestamp`), with `auditID` and `stage`. An object larger
//! than the configured size is replaced by its SHA-256 and size; a Secret is never kept,
//! whatever the policy sent. No I/O here: the sealer's webhook endpoint feeds it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// An `EventList` as the API server's webhook backend posts it.
#[derive(Debug, Deserialize)]
pub struct EventList {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub items: Vec<AuditEvent>,
}

/// One audit event. Unknown fields are ignored: the API server's schema grows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: String,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default, rename = "requestURI")]
    pub request_uri: Option<String>,
    pub verb: String,
    #[serde(default)]
    pub user: Value,
    #[serde(default)]
    pub impersonated_user: Option<Value>,
    #[serde(default, rename = "sourceIPs")]
    pub source_ips: Vec<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<Value>,
    #[serde(default)]
    pub request_object: Option<Value>,
    #[serde(default)]
    pub response_object: Option<Value>,
    #[serde(default)]
    pub request_received_timestamp: Option<String>,
    #[serde(default)]
    pub stage_timestamp: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// What the request was about.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    /// Empty or absent for the core group.
    #[serde(default)]
    pub api_group: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
}

/// Why an `EventList` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum K8sAuditError {
    #[error("not an audit EventList: {0}")]
    Invalid(String),
    #[error("expected apiVersion audit.k8s.io/v1 and kind EventList, got {api_version} {kind}")]
    WrongKind { api_version: String, kind: String },
}

/// Parse a webhook body.
pub fn parse_event_list(body: &[u8]) -> Result<EventList, K8sAuditError> {
    let list: EventList =
        serde_json::from_slice(body).map_err(|e| K8sAuditError::Invalid(e.to_string()))?;
    if list.api_version != "audit.k8s.io/v1" || list.kind != "EventList" {
        return Err(K8sAuditError::WrongKind {
            api_version: list.api_version,
            kind: list.kind,
        });
    }
    Ok(list)
}

/// Which audit events are sealed, and how large a kept object may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `(api group, resource)`; the core group is `""`.
    pub resources: Vec<(String, String)>,
    pub stages: Vec<String>,
    /// Request and response objects whose canonical JSON is longer than this are replaced
    /// by its SHA-256 and size.
    pub max_object_bytes: usize,
}

impl Default for Selection {
    /// What decides exposure, and what configures the audit itself.
    fn default() -> Self {
        let resources = [
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("gateway.networking.k8s.io", "gateways"),
            ("gateway.networking.k8s.io", "httproutes"),
            ("gateway.networking.k8s.io", "grpcroutes"),
            ("networking.istio.io", "gateways"),
            ("networking.istio.io", "virtualservices"),
            ("networking.istio.io", "envoyfilters"),
            ("extensions.istio.io", "wasmplugins"),
        ];
        Selection {
            resources: resources
                .iter()
                .map(|(g, r)| ((*g).to_owned(), (*r).to_owned()))
                .collect(),
            stages: vec!["ResponseComplete".into(), "Panic".into()],
            max_object_bytes: 64 * 1024,
        }
    }
}

impl Selection {
    /// Whether `event` is sealed: a final stage, about a selected resource (any subresource,
    /// so `ingresses/status` too).
    pub fn selects(&self, event: &AuditEvent) -> bool {
        if !self.stages.contains(&event.stage) {
            return false;
        }
        let Some(obj) = &event.object_ref else {
            return false;
        };
        let group = obj.api_group.as_deref().unwrap_or("");
        let resource = obj.resource.as_deref().unwrap_or("");
        self.resources
            .iter()
            .any(|(g, r)| g == group && r == resource)
    }
}

/// The name under which a redelivered event is recognised: `auditID` and `stage`.
pub fn dedup_key(event: &AuditEvent) -> String {
    key_of(&event.audit_id, &event.stage)
}

/// [`dedup_key`] of the audit event a sealed `k8s_audit` entry's `event` came from.
pub fn dedup_key_of_entry(entry_event: &Value) -> Option<String> {
    let id = entry_event.get("auditID")?.as_str()?;
    let stage = entry_event.get("stage")?.as_str()?;
    Some(key_of(id, stage))
}

fn key_of(audit_id: &str, stage: &str) -> String {
    // A stage never contains a newline, so the pair is unambiguous.
    format!("{audit_id}\n{stage}")
}

/// Parse a resource as kubectl names it, `RESOURCE.GROUP` (`ingresses.networking.k8s.io`),
/// or `RESOURCE` alone for the core group (`services`), into `(group, resource)`.
pub fn parse_resource(name: &str) -> Result<(String, String), String> {
    let (resource, group) = name.split_once('.').unwrap_or((name, ""));
    let valid = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if resource.is_empty() || !valid(resource) || !valid(group) || name.ends_with('.') {
        return Err(format!(
            "{name:?} is not a resource name: write RESOURCE.GROUP in lower case, as kubectl \
             does (e.g. ingresses.networking.k8s.io), or RESOURCE for the core group"
        ));
    }
    Ok((group.to_owned(), resource.to_owned()))
}

/// Whether `object_ref` names a core `secrets` resource, or `object` is a Secret.
fn is_secret(object_ref: Option<&ObjectRef>, object: &Value) -> bool {
    let core_secret = object_ref.is_some_and(|o| {
        o.resource.as_deref() == Some("secrets") && o.api_group.as_deref().unwrap_or("").is_empty()
    });
    core_secret || object.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// An object as kept: itself, or the SHA-256 and size of its canonical JSON (RFC 8785) when
/// that is over the limit, or nothing but
/// the fact that it was withheld when it is a Secret.
fn kept_object(object: &Value, object_ref: Option<&ObjectRef>, max_bytes: usize) -> Value {
    if is_secret(object_ref, object) {
        return json!({"withheld": "secret"});
    }
    // The RFC 8785 form, so anyone holding the object can recompute the hash; an object
    // without one (an integer beyond 2^53) is hashed as serde_json writes it.
    let bytes = crate::jcs::canonicalize(object)
        .unwrap_or_else(|_| serde_json::to_vec(object).expect("a JSON value serializes"));
    if bytes.len() > max_bytes {
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return json!({"sha256": sha, "size": bytes.len()});
    }
    object.clone()
}

/// The `event` of the `k8s_audit` entry for a selected audit event.
pub fn entry_event(event: &AuditEvent, selection: &Selection) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            out.insert(key.to_owned(), value);
        }
    };
    put("auditID", json!(event.audit_id));
    put("stage", json!(event.stage));
    put("verb", json!(event.verb));
    put("requestURI", json!(event.request_uri));
    put("user", event.user.clone());
    put(
        "impersonatedUser",
        event.impersonated_user.clone().unwrap_or(Value::Null),
    );
    put("sourceIPs", json!(event.source_ips));
    put("userAgent", json!(event.user_agent));
    if let Some(obj) = &event.object_ref {
        let mut r = Map::new();
        for (key, value) in [
            ("apiGroup", &obj.api_group),
            ("apiVersion", &obj.api_version),
            ("resource", &obj.resource),
            ("subresource", &obj.subresource),
            ("namespace", &obj.namespace),
            ("name", &obj.name),
            ("uid", &obj.uid),
            ("resourceVersion", &obj.resource_version),
        ] {
            if let Some(v) = value {
                r.insert(key.to_owned(), json!(v));
            }
        }
        put("objectRef", Value::Object(r));
    }
    put(
        "responseStatus",
        event.response_status.clone().unwrap_or(Value::Null),
    );
    let decisions: Map<String, Value> = event
        .annotations
        .iter()
        .filter(|(k, _)| k.starts_with("authorization.k8s.io/"))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if !decisions.is_empty() {
        put("annotations", Value::Object(decisions));
    }
    let objref = event.object_ref.as_ref();
    for (key, object) in [
        ("requestObject", &event.request_object),
        ("responseObject", &event.response_object),
    ] {
        if let Some(o) = object {
            put(key, kept_object(o, objref, selection.max_object_bytes));
        }
    }
    put(
        "requestReceivedTimestamp",
        json!(event.request_received_timestamp),
    );
    put("stageTimestamp", json!(event.stage_timestamp));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_named_as_kubectl_names_them() {
        assert_eq!(
            parse_resource("ingresses.networking.k8s.io"),
            Ok(("networking.k8s.io".into(), "ingresses".into()))
        );
        assert_eq!(
            parse_resource("services"),
            Ok(("".into(), "services".into()))
        );
        for bad in ["", ".networking.k8s.io", "Ingresses", "ingresses.", "a b"] {
            assert!(parse_resource(bad).is_err(), "{bad:?}");
        }
    }

    fn event(stage: &str, group: &str, resource: &str) -> Value {
        json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": "5f3c-1", "stage": stage, "requestURI": "/apis/x", "verb": "patch",
            "user": {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]},
            "impersonatedUser": {"username": "system:serviceaccount:shop:deployer"},
            "sourceIPs": ["203.0.113.9"], "userAgent": "kubectl/v1.31.0",
            "objectRef": {"resource": resource, "namespace": "shop", "name": "web",
                          "apiGroup": group, "apiVersion": "v1", "resourceVersion": "4711"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestObject": {"spec": {"rules": [{"host": "shop.example.com"}]}},
            "responseObject": {"kind": "Ingress", "metadata": {"name": "web"}},
            "requestReceivedTimestamp": "2026-11-28T09:00:00.000001Z",
            "stageTimestamp": "2026-11-28T09:00:00.004000Z",
            "annotations": {"authorization.k8s.io/decision": "allow",
                            "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding",
                            "pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
            "unknownFutureField": {"x": 1}
        })
    }

    fn list(items: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}),
        )
        .unwrap()
    }

    #[test]
    fn only_final_stages_of_exposure_resources_are_selected() {
        let body = list(vec![
            event("ResponseComplete", "networking.k8s.io", "ingresses"),
            event("RequestReceived", "networking.k8s.io", "ingresses"),
            event("ResponseComplete", "apps", "deployments"),
            event("Panic", "extensions.istio.io", "wasmplugins"),
            event("ResponseComplete", "networking.istio.io", "virtualservices"),
        ]);
        let parsed = parse_event_list(&body).unwrap();
        let sel = Selection::default();
        let chosen: Vec<(&str, &str)> = parsed
            .items
            .iter()
            .filter(|e| sel.selects(e))
            .map(|e| {
                (
                    e.stage.as_str(),
                    e.object_ref.as_ref().unwrap().resource.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            chosen,
            vec![
                ("ResponseComplete", "ingresses"),
                ("Panic", "wasmplugins"),
                ("ResponseComplete", "virtualservices")
            ]
        );
    }

    #[test]
    fn the_entry_keeps_who_what_where_when_and_the_outcome() {
        let ev: AuditEvent =
            serde_json::from_value(event("ResponseComplete", "networking.k8s.io", "ingresses"))
                .unwrap();
        let e = entry_event(&ev, &Selection::default());
        assert_eq!(e["auditID"], "5f3c-1");
        assert_eq!(e["user"]["username"], "alice@example.com");
        assert_eq!(
            e["impersonatedUser"]["username"],
            "system:serviceaccount:shop:deployer"
        );
        assert_eq!(e["sourceIPs"], json!(["203.0.113.9"]));
        assert_eq!(e["objectRef"]["resourceVersion"], "4711");
        assert_eq!(e["responseStatus"]["code"], 200);
        assert_eq!(e["annotations"]["authorization.k8s.io/decision"], "allow");
        assert!(
            e["annotations"]
                .get("pod-security.kubernetes.io/enforce-policy")
                .is_none()
        );
        assert_eq!(
            e["requestObject"]["spec"]["rules"][0]["host"],
            "shop.example.com"
        );
        assert_eq!(e["stageTimestamp"], "2026-11-28T09:00:00.004000Z");
        assert!(e.get("unknownFutureField").is_none());
    }

    #[test]
    fn large_objects_become_hashes_and_secrets_are_withheld() {
        let mut raw = event("ResponseComplete", "networking.k8s.io", "ingresses");
        raw["requestObject"] = json!({"blob": "x".repeat(100)});
        raw["responseObject"] = json!({"kind": "Secret", "data": {"tls.key": "c2VjcmV0"}});
        let ev: AuditEvent = serde_json::from_value(raw).unwrap();
        let sel = Selection {
            max_object_bytes: 50,
            ..Selection::default()
        };
        let e = entry_event(&ev, &sel);
        let bytes = crate::jcs::canonicalize(&json!({"blob": "x".repeat(100)})).unwrap();
        assert_eq!(e["requestObject"]["size"], bytes.len());
        assert_eq!(e["requestObject"]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(e["responseObject"], json!({"withheld": "secret"}));
        assert!(!serde_json::to_string(&e).unwrap().contains("c2VjcmV0"));
    }

    #[test]
    fn wrong_or_broken_lists_are_refused() {
        assert!(matches!(
            parse_event_list(b"{"),
            Err(K8sAuditError::Invalid(_))
        ));
        let other =
            serde_json::to_vec(&json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1"})).unwrap();
        assert!(matches!(
            parse_event_list(&other),
            Err(K8sAuditError::WrongKind { .. })
        ));
        let ev: AuditEvent =
            serde_json::from_value(event("ResponseComplete", "", "secrets")).unwrap();
        assert_eq!(dedup_key(&ev), "5f3c-1\nResponseComplete");
        let sealed = entry_event(&ev, &Selection::default());
        assert_eq!(dedup_key_of_entry(&sealed), Some(dedup_key(&ev)));
        assert!(
            !Selection::default().selects(&ev),
            "secrets are not an exposure resource"
        );
    }
}
