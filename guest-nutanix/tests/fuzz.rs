//! Property tests of the guest's parsers of Prism's answers, bounded to run
//! in the normal suite (no nightly toolchain for cargo-fuzz here), as the
//! host's `host/tests/fuzz.rs` does for the host's parsers. Prism's bodies
//! are input the guest does not control: whatever they hold, parsing and
//! normalization answer a value or an error, never a panic.
//!
//! Inputs: arbitrary bytes; arbitrary JSON; and the simulator's real v3
//! and v4 entities (rendered as Nutanix's SDK models them) with one field
//! replaced by arbitrary JSON, which reaches deeper than random JSON does.

use guest_nutanix::normalize::{self, Context};
use guest_nutanix::v3::Kind;
use guest_nutanix::{server_error, v4};
use prism_sim::estate::{Estate, EstateConfig};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() }
}

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One small estate's entities: (kind, v3 entity, v4 entity if the kind
/// has a v4 shape in the simulator).
fn entities() -> &'static Vec<(Kind, Value, Option<Value>)> {
    static E: OnceLock<Vec<(Kind, Value, Option<Value>)>> = OnceLock::new();
    E.get_or_init(|| {
        let estate = Estate::generate(EstateConfig { vms: 6, ..EstateConfig::default() });
        let names: BTreeMap<String, String> = estate
            .list("clusters")
            .map(|l| l.to_vec())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| Some((c.pointer("/metadata/uuid")?.as_str()?.to_string(), c.pointer("/status/name")?.as_str()?.to_string())))
            .collect();
        let mut out = Vec::new();
        for (kind, list) in [(Kind::Vm, "vms"), (Kind::Cluster, "clusters"), (Kind::Host, "hosts"), (Kind::Subnet, "subnets"), (Kind::Image, "images")] {
            for e in &estate.list(list).map(|l| l.to_vec()).unwrap_or_default() {
                let v4 = match kind {
                    Kind::Vm => Some(prism_sim::v4::vm(e, &BTreeMap::new())),
                    Kind::Cluster => Some(prism_sim::v4::cluster(e)),
                    Kind::Host => Some(prism_sim::v4::host(e, &names)),
                    Kind::Subnet => Some(prism_sim::v4::subnet(e)),
                    Kind::Image => Some(prism_sim::v4::image(e)),
                    _ => None,
                };
                out.push((kind, e.clone(), v4));
            }
        }
        // The networking and security kinds: kept in the v4 shape, their v3
        // entities rendered from it (the v4-only kinds: the v4 item alone).
        for &(_, list, _) in prism_sim::network::ENDPOINTS {
            let kind = Kind::from_plural(if list == "network_security_rules" { "security_policies" } else { list }).expect("a kind of each list");
            for e in &estate.list(list).map(|l| l.to_vec()).unwrap_or_default() {
                match prism_sim::network::v3_entity(list, e) {
                    Some(v3) => out.push((kind, v3, Some(e.clone()))),
                    None => out.push((kind, e.clone(), None)),
                }
            }
        }
        assert!(out.len() > 10, "the estate has entities");
        out
    })
}

/// Every path to a value inside `v` (object keys and array indexes).
fn paths(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                paths(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                paths(x, p, out);
            }
        }
        _ => {}
    }
}

/// `v` with the value at its `pick`-th path replaced by `with`.
fn mutate(v: &Value, pick: usize, with: Value) -> Value {
    let mut all = Vec::new();
    paths(v, String::new(), &mut all);
    let mut out = v.clone();
    if let Some(p) = all.get(pick % all.len().max(1))
        && let Some(slot) = out.pointer_mut(p)
    {
        *slot = with;
    }
    out
}

fn context() -> Context {
    Context { account: Some("pc".into()), base_url: "https://pc.example:9440".into(), ..Context::default() }
}

/// Parsing then normalizing `raw` as `kind`, through v3 and (as a v4
/// entity) through the v4 adapter: a value or an error, never a panic.
fn normalize_both(kind: Kind, raw: &Value) {
    let _ = normalize_one(kind, raw.clone());
    if let Ok(v3) = v4::to_v3(kind, raw, &v4::Lookups::default()) {
        let _ = normalize_one(kind, v3);
    }
}

/// A v3-shaped entity normalized as the collection does: clusters have
/// their own function (they also make regions), GPUs come from their
/// host, the others `service_of`.
fn normalize_one(kind: Kind, raw: Value) -> Result<(), String> {
    let ctx = context();
    match kind {
        Kind::Cluster => normalize::cluster(&ctx, raw).map(drop),
        // A host's GPUs: a record, or an error, per GPU.
        Kind::Gpu => {
            let _ = guest_nutanix::operations::gpus_of_host(&ctx, raw);
            Ok(())
        }
        // The compute extras and operations kinds too.
        _ => guest_nutanix::operations::service_of(kind, &ctx, raw).map(drop),
    }
}

proptest! {
    #![proptest_config(config())]

    /// A v4 list page or an error body of any bytes.
    #[test]
    fn any_bytes_are_a_page_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = v4::parse_page(&bytes);
        let said = server_error::parse(&bytes);
        prop_assert!(!said.message.contains('\n'), "one line: {:?}", said.message);
    }

    /// Any JSON as a v4 page, an error body, or an entity of any kind.
    #[test]
    fn any_json_is_handled(v in json(), k in 0usize..Kind::ALL.len()) {
        let text = v.to_string();
        let _ = v4::parse_page(text.as_bytes());
        let said = server_error::parse(text.as_bytes());
        prop_assert!(!said.message.contains('\n'), "one line: {:?}", said.message);
        normalize_both(Kind::ALL[k], &v);
    }

    /// Real entities with one field anywhere replaced by arbitrary JSON.
    #[test]
    fn real_entities_with_a_field_replaced_are_handled(i in any::<usize>(), pick in any::<usize>(), with in json(), v4_side in any::<bool>()) {
        let all = entities();
        let (kind, v3, v4) = &all[i % all.len()];
        let base = match (v4_side, v4) {
            (true, Some(v4)) => v4,
            _ => v3,
        };
        let raw = mutate(base, pick, with);
        normalize_both(*kind, &raw);
        // The same entity in a v3 page and a v4 page.
        let page = serde_json::json!({"data": [raw.clone()], "metadata": {"totalAvailableResults": 1}});
        let _ = v4::parse_page(page.to_string().as_bytes());
    }
}

/// The real entities, untouched, normalize without an error through both
/// APIs: the properties above start from valid input.
#[test]
fn the_real_entities_normalize() {
    for (kind, v3, v4) in entities() {
        normalize_one(*kind, v3.clone()).unwrap_or_else(|e| panic!("{kind:?} v3: {e}"));
        if let Some(v4) = v4 {
            let adapted = v4::to_v3(*kind, v4, &v4::Lookups::default()).unwrap_or_else(|e| panic!("{kind:?} v4: {e}"));
            normalize_one(*kind, adapted).unwrap_or_else(|e| panic!("{kind:?} v4 adapted: {e}"));
        }
    }
}
