//! Property tests of what hostile input reaches, bounded to run in the
//! normal suite (no nightly toolchain for cargo-fuzz here): the gRPC Struct
//! ↔ JSON conversion, the host's checks of guest items, and the egress
//! policy's URL and redirect handling. Each property holds for every
//! generated input; proptest shrinks a failure to a minimal case, which
//! then becomes a regression test here.

use cf_host::bindings::current::cloudforet::collector::emit;
use cf_host::egress::EgressPolicy;
use cf_host::grpc::convert::{json_to_struct, struct_to_json};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() }
}

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    /// JSON → Struct → JSON keeps every value a double can hold: strings,
    /// booleans, nulls, integers up to 2^53, other numbers as doubles.
    #[test]
    fn struct_round_trip(v in prop::collection::btree_map(".{0,8}", json(), 0..6)) {
        let map: serde_json::Map<String, Value> = v.into_iter().collect();
        let back = struct_to_json(Some(json_to_struct(&map)));
        fn same(a: &Value, b: &Value) -> bool {
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => {
                    let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    x == y || (x - y).abs() <= x.abs() * 1e-15
                }
                (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
                (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
                _ => a == b,
            }
        }
        prop_assert!(same(&Value::Object(map.clone()), &back), "{map:?} -> {back:?}");
    }

    /// Any Struct a client sends converts without panicking, NaN and
    /// infinities included (they become null).
    #[test]
    fn any_struct_converts(fields in prop::collection::btree_map(".{0,6}", prop_oneof![
        any::<f64>().prop_map(|n| prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(n)) }),
        ".{0,6}".prop_map(|s| prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(s)) }),
        Just(prost_types::Value { kind: None }),
    ], 0..8)) {
        let s = prost_types::Struct { fields: fields.into_iter().collect() };
        let v = struct_to_json(Some(s));
        prop_assert!(v.is_object());
        prop_assert!(serde_json::to_string(&v).is_ok());
    }

    /// A guest's CloudService, whatever its strings and JSON text: checked
    /// into a record or refused with a reason, never a panic; an accepted
    /// record's `data` is a JSON object and its size counts its strings.
    #[test]
    fn guest_items_are_checked_not_trusted(
        name in ".{0,40}", group in ".{0,10}", kind in ".{0,10}", id in ".{0,40}",
        data in prop_oneof![".{0,30}", json().prop_map(|v| v.to_string())],
        metadata in prop_oneof![".{0,30}", json().prop_map(|v| v.to_string())],
        size in any::<f64>(), tags in prop::collection::vec((".{0,10}", ".{0,10}"), 0..4),
    ) {
        let item = emit::Item::CloudService(emit::CloudService {
            name: name.clone(),
            provider: "p".into(),
            cloud_service_group: group,
            cloud_service_type: kind,
            account: None,
            region_code: None,
            instance_type: None,
            instance_size: Some(size),
            ip_addresses: vec![],
            tags,
            reference: emit::Reference { resource_id: id, external_link: None },
            launched_at: None,
            data: data.clone(),
            metadata,
        });
        match cf_host::record::from_item(item) {
            Ok(r) => {
                let v = r.resource_json();
                prop_assert!(v["data"].is_object(), "{v:?}");
                prop_assert!(size.is_finite(), "a non-finite size was accepted");
                prop_assert!(r.approx_size() >= name.len() + data.len());
            }
            Err(rejected) => prop_assert!(!rejected.reason.is_empty()),
        }
    }

    /// The egress policy never panics on a URL, and what it lets through is
    /// exactly the granted origin; a redirect target is resolved and checked
    /// like any URL.
    #[test]
    fn egress_lets_through_only_the_grant(url in "(https?|ftp|file|gopher)://[a-zA-Z0-9.:@\\[\\]%-]{0,30}(/.{0,20})?", location in ".{0,40}") {
        let policy = EgressPolicy::for_endpoint("https://pc.example.com:9440").unwrap();
        if let Ok(u) = policy.check_str(&url) {
            prop_assert_eq!(u.scheme(), "https");
            prop_assert_eq!(u.host_str(), Some("pc.example.com"));
            prop_assert_eq!(u.port_or_known_default(), Some(9440));
            prop_assert!(u.username().is_empty() && u.password().is_none());
        }
        let base = url::Url::parse("https://pc.example.com:9440/api/").unwrap();
        if let Ok(next) = base.join(&location)
            && policy.check(&next).is_ok()
        {
            prop_assert_eq!(next.origin(), base.origin());
        }
    }
}
