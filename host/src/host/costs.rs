//! `cloudforet:collector/costs`: cost records into the run's sink, through
//! the emit capability ([`EmitCtx`]: the same channel, validation and
//! output limits). Costs are accepted only during `cost-source.get-data`;
//! anywhere else they are rejected and replaced by error resources.

use super::emit::{EmitCtx, Emits};
use crate::bindings::current::cloudforet::collector::costs::{self, Cost};
use crate::bindings::current::cloudforet::collector::emit::Ack;
use crate::record;

impl costs::Host for EmitCtx {
    async fn emit(&mut self, batch: Vec<Cost>) -> wasmtime::Result<Ack> {
        let in_place = self.emits == Emits::Costs;
        self.accept(batch.into_iter().map(|c| match record::from_cost(c) {
            Ok(r) if !in_place => record::out_of_place(r, "a collector call"),
            other => other,
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::current::cloudforet::collector::emit::Flow;
    use crate::record::{Record, ResourceType};
    use crate::secret::Redactor;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    fn line(cost: f64, billed_date: &str) -> Cost {
        Cost {
            cost,
            usage_quantity: 24.0,
            usage_unit: "vCPU-Hour".into(),
            provider: "nutanix".into(),
            region_code: Some("cluster-a".into()),
            product: "Virtual Machine".into(),
            usage_type: "vCPU".into(),
            resource: "vm-uuid-1".into(),
            tags: vec![],
            additional_info: "{}".into(),
            data: r#"{"vcpus": 1}"#.into(),
            billed_date: billed_date.into(),
        }
    }

    fn ctx(emits: Emits) -> (EmitCtx, mpsc::Receiver<Vec<Record>>) {
        let (tx, rx) = mpsc::channel(4);
        let mut c = EmitCtx::new(tx, Arc::new(Redactor::from_secret(&serde_json::json!({}))), 100, 1 << 20);
        c.emits = emits;
        (c, rx)
    }

    fn kinds(batch: &[Record]) -> Vec<ResourceType> {
        batch.iter().map(|r| r.resource_type).collect()
    }

    /// Valid costs pass during get-data; a NaN cost and a bad date are
    /// rejected and replaced by error resources naming the field.
    #[tokio::test]
    async fn costs_are_validated() {
        let (mut c, mut rx) = ctx(Emits::Costs);
        let ack = costs::Host::emit(&mut c, vec![line(1.5, "2026-11-23"), line(f64::NAN, "2026-11-23"), line(1.0, "2026-13-01")]).await.unwrap();
        assert_eq!(ack.flow, Flow::Proceed);
        let reasons: Vec<(u32, String)> = ack.rejected.into_iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(reasons[0], (1, "field 'cost' is not a finite number".to_string()));
        assert_eq!(reasons[1].0, 2);
        assert!(reasons[1].1.starts_with("field 'billed_date' is not a YYYY-MM-DD date"), "{}", reasons[1].1);
        let batch = rx.recv().await.unwrap();
        assert_eq!(kinds(&batch), [ResourceType::Cost, ResourceType::ErrorResource, ResourceType::ErrorResource]);
        assert_eq!(batch[0].resource()["cost"], 1.5);
        assert_eq!(batch[0].raw("data"), Some(r#"{"vcpus": 1}"#));
    }

    /// A cost during a collector call is out of place: rejected, replaced.
    #[tokio::test]
    async fn costs_outside_get_data_are_rejected() {
        let (mut c, mut rx) = ctx(Emits::Inventory);
        let ack = costs::Host::emit(&mut c, vec![line(1.0, "2026-11-23")]).await.unwrap();
        assert_eq!(ack.rejected.len(), 1);
        assert_eq!(ack.rejected[0].reason, "cost_analysis.Cost records are not accepted during a collector call");
        assert_eq!(kinds(&rx.recv().await.unwrap()), [ResourceType::ErrorResource]);
    }

    /// During get-data, inventory records are out of place; error
    /// resources are how the guest reports lost pages, and pass.
    #[tokio::test]
    async fn inventory_records_during_get_data_are_rejected() {
        use crate::bindings::current::cloudforet::collector::emit::{self, ErrorResource, Item, Region};
        let (mut c, mut rx) = ctx(Emits::Costs);
        let region = Item::Region(Region { name: "a".into(), region_code: "a".into(), provider: "nutanix".into(), tags: vec![] });
        let error = Item::ErrorResource(ErrorResource {
            message: "vms page lost".into(),
            provider: "nutanix".into(),
            cloud_service_group: "Compute".into(),
            cloud_service_type: "VirtualMachine".into(),
            resource_type: "inventory.CloudService".into(),
        });
        let ack = emit::Host::emit(&mut c, vec![region, error]).await.unwrap();
        assert_eq!(ack.rejected.len(), 1);
        assert_eq!((ack.rejected[0].index, ack.rejected[0].reason.as_str()), (0, "inventory.Region records are not accepted during cost-source.get-data"));
        let batch = rx.recv().await.unwrap();
        assert_eq!(kinds(&batch), [ResourceType::ErrorResource, ResourceType::ErrorResource]);
        assert_eq!(batch[1].message.as_deref(), Some("vms page lost"));
    }
}
