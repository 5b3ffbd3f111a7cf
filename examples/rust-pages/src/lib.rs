//! A CloudForet collector for cf-host that reads a long list with the Rust
//! SDK's `Client::pages`: Prism Central's v3 VM list (`offset`/`length`,
//! the total in `metadata.total_matches`), one cloud service per VM, in the
//! list's order. The pages after the first go in windows the host performs
//! while the collector emits (`http.start-many`, world 0.3.1).
//!
//! Options: `page_size` (1-500, default 500), `page_concurrency` (pages a
//! window, 1-32, default 8). Secret: `host` (`https://prism:9440`), and
//! `username`/`password`, which the host adds (`Credential::Basic`).
use cloudforet_collector::{export, Client, CloudService, Collector, Credential, Error, HttpRequest, Io, Metadata, Page, Record, Summary};
use serde_json::{json, Value};

pub struct Pages;

impl Collector for Pages {
    fn init(_options: &str) -> Result<Metadata, Error> {
        Ok(Metadata::inventory())
    }

    fn collect(io: &mut Io<'_>, options: &str, secret: &str, _task: &str) -> Result<Summary, Error> {
        let options: Value = serde_json::from_str(options).map_err(|e| Error::InvalidArgument(format!("options: {e}")))?;
        let secret: Value = serde_json::from_str(secret).map_err(|e| Error::InvalidArgument(format!("secret: {e}")))?;
        let host = secret["host"].as_str().ok_or_else(|| Error::MissingParameter("secret_data.host".into()))?;
        let url = format!("{}/api/nutanix/v3/vms/list", host.trim_end_matches('/'));
        let page_size = options["page_size"].as_u64().unwrap_or(500).clamp(1, 500) as u32;
        let concurrency = options["page_concurrency"].as_u64().unwrap_or(8).clamp(1, 32) as usize;
        let request = |p: cloudforet_collector::PageRef| {
            HttpRequest::post_json(&url, &json!({"kind": "vm", "offset": p.offset, "length": p.limit})).credential(Credential::Basic)
        };
        let sink = &mut *io.sink;
        let emitted = Client::new(&mut *io.http).pages(page_size, concurrency, request, vms, |records| sink.emit(records))?;
        Ok(Summary { emitted, errors: 0 })
    }
}

/// A v3 page: its VMs as cloud services, and the list's total.
fn vms(body: &[u8]) -> Result<Page<Record>, Error> {
    let page: Value = serde_json::from_slice(body).map_err(|e| Error::Unavailable(format!("the body is not JSON: {e}")))?;
    let items = page["entities"].as_array().map(Vec::as_slice).unwrap_or_default();
    let items = items
        .iter()
        .map(|vm| {
            let uuid = vm["metadata"]["uuid"].as_str().unwrap_or_default();
            let name = vm["spec"]["name"].as_str().or(vm["status"]["name"].as_str()).unwrap_or(uuid);
            let power = vm["status"]["resources"]["power_state"].clone();
            Ok(CloudService::builder("nutanix", "Compute", "VirtualMachine", uuid, name).data(json!({"power_state": power})).build()?.into())
        })
        .collect::<Result<_, Error>>()?;
    Ok(Page { items, total: page["metadata"]["total_matches"].as_u64() })
}

export!(Pages);

#[cfg(test)]
mod tests {
    use cloudforet_collector::testing::{MemState, MockHttp, VecSink};
    use cloudforet_collector::{Collector, HttpResponse, Io, Record};
    use serde_json::{json, Value};

    /// 25 VMs at 10 a page: every VM once, in order; the pages after the
    /// first went as started windows.
    #[test]
    fn every_vm_once_in_order() {
        let mut http = MockHttp::route(|req| {
            let body: Value = serde_json::from_slice(req.body.as_deref().unwrap_or_default()).unwrap_or_default();
            let offset = body["offset"].as_u64().unwrap_or_default();
            let vms: Vec<Value> = (offset..(offset + 10).min(25)).map(|i| json!({"metadata": {"uuid": format!("vm-{i}")}, "spec": {"name": format!("vm {i}")}})).collect();
            Ok(HttpResponse { status: 200, headers: vec![], body: serde_json::to_vec(&json!({"metadata": {"total_matches": 25}, "entities": vms})).unwrap() })
        });
        let (mut sink, mut state) = (VecSink::default(), MemState::default());
        let mut io = Io { http: &mut http, sink: &mut sink, state: &mut state };
        let s = super::Pages::collect(&mut io, r#"{"page_size": 10, "page_concurrency": 1}"#, r#"{"host": "https://prism:9440"}"#, "{}").unwrap();
        assert_eq!(s.emitted, 25);
        let ids: Vec<&str> = sink.records.iter().map(|r| if let Record::CloudService(c) = r { c.resource_id.as_str() } else { "" }).collect();
        assert_eq!(ids, (0..25).map(|i| format!("vm-{i}")).collect::<Vec<_>>());
        assert_eq!((http.batches.clone(), http.most_pending), (vec![1, 1, 1], 1));
    }
}
