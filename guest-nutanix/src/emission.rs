//! What leaves the guest: records in batches of [`BATCH_SIZE`] to the
//! [`Sink`], error resources, the task's region filter, and the run's
//! [`Summary`]. A CloudService gets its usage (option `usage`) and, for a
//! VM with kind `vm_disks`, its disks as resources of their own on the way
//! out. Once the host says stop, nothing more is emitted.

use crate::console::Locations;
use crate::normalize;
use crate::prism::Log;
use crate::protection::Facts;
use crate::record::{CloudService, ErrorResource, Record};
use crate::v3::Kind;
use crate::{Flow, Level, Sink, PROVIDER};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Records per `emit` call.
pub const BATCH_SIZE: usize = 100;

/// The guest's account of a collection.
pub use cloudforet_collector::Summary;

/// Batches records to the sink.
pub struct Emitter<'a, S> {
    sink: &'a mut S,
    buffer: Vec<Record>,
    pub summary: Summary,
    /// The host said stop: nothing more is emitted.
    pub stopped: bool,
    /// Region codes (cluster names) this task is limited to.
    pub regions: Option<Vec<String>>,
    /// Entity uuid → `data.usage` (option `usage`).
    pub usage: BTreeMap<String, Value>,
    /// Emit each VM's disks as their own resources (kind `vm_disks`).
    pub disks: bool,
    /// Emit the VMs themselves (off when only their disks were asked for).
    pub vms_out: bool,
    /// Emit each VM's guest tools as their own record (kind `guest_tools`).
    pub guest_tools: bool,
    /// What the data protection flags need, learned from the VMs and
    /// recovery points that pass (on when policies or plans are collected).
    pub facts: Option<Facts>,
    /// Resource ids emitted this run, per type, with the name each came with.
    seen: HashMap<String, HashMap<String, String>>,
    /// Region codes emitted this run.
    regions_out: BTreeSet<String>,
    /// Option `region_locations`, for the Regions made here.
    pub locations: Locations,
    /// CloudServices emitted this run, per type (after the task's regions).
    services: HashMap<String, u64>,
    /// Error resources emitted this run, per type.
    errors: HashMap<String, u64>,
}

impl<'a, S: Sink> Emitter<'a, S> {
    pub fn new(sink: &'a mut S) -> Self {
        Emitter {
            sink,
            buffer: Vec::with_capacity(BATCH_SIZE),
            summary: Summary::default(),
            stopped: false,
            regions: None,
            usage: BTreeMap::new(),
            disks: false,
            vms_out: true,
            guest_tools: false,
            facts: None,
            seen: HashMap::new(),
            regions_out: BTreeSet::new(),
            locations: Locations::default(),
            services: HashMap::new(),
            errors: HashMap::new(),
        }
    }

    /// CloudServices of type `ty` emitted this run.
    pub fn services_of(&self, ty: &str) -> u64 {
        self.services.get(ty).copied().unwrap_or(0)
    }

    /// Error resources of type `ty` emitted this run.
    pub fn errors_of(&self, ty: &str) -> u64 {
        self.errors.get(ty).copied().unwrap_or(0)
    }

    pub fn push(&mut self, r: Record) {
        if self.stopped || !self.in_regions(&r) {
            return;
        }
        if let Record::Region(reg) = &r
            && !self.regions_out.insert(reg.region_code.clone())
        {
            // One Region per code.
            return;
        }
        match &r {
            Record::Error(e) => {
                self.summary.errors += 1;
                *self.errors.entry(e.cloud_service_type.clone()).or_default() += 1;
            }
            Record::CloudService(cs) => *self.services.entry(cs.cloud_service_type.clone()).or_default() += 1,
            _ => {}
        }
        self.summary.emitted += 1;
        self.buffer.push(r);
        if self.buffer.len() >= BATCH_SIZE {
            self.flush();
        }
    }

    /// Whether a record lies in the task's regions (errors and types always do).
    fn in_regions(&self, r: &Record) -> bool {
        let Some(regions) = &self.regions else { return true };
        let code = match r {
            Record::CloudService(cs) => cs.region_code.as_deref(),
            Record::Region(reg) => Some(reg.region_code.as_str()),
            _ => return true,
        };
        code.is_some_and(|c| regions.iter().any(|x| x == c))
    }

    /// An error resource of `kind`'s type, logged as a warning too.
    pub fn push_error(&mut self, kind: Kind, message: String) {
        let (group, ty) = normalize::group_and_type(kind);
        self.sink.log(Level::Warn, &message, &[("kind", kind.plural())]);
        self.push(Record::Error(ErrorResource {
            message,
            provider: PROVIDER.to_string(),
            cloud_service_group: group.to_string(),
            cloud_service_type: ty.to_string(),
            resource_type: "inventory.CloudService".to_string(),
        }));
    }

    /// Emits a CloudService, with its usage when option `usage` read one,
    /// a VM's disks when kind `vm_disks` was asked for, and its guest tools
    /// when kind `guest_tools` was. A resource id
    /// its type already emitted this run becomes an error resource naming
    /// both (only the first is kept); a region code no Region was emitted
    /// for gets its Region first.
    pub fn push_service(&mut self, mut cs: CloudService) {
        if !self.first_of_its_id(&cs) {
            return;
        }
        if let Some(facts) = self.facts.as_mut() {
            facts.observe(&cs);
        }
        let is_vm = cs.cloud_service_type == normalize::group_and_type(Kind::Vm).1;
        let mut derived = if self.disks && is_vm { normalize::disks_of(&cs) } else { Vec::new() };
        if self.guest_tools && is_vm {
            // Out of the VM's data (it stays as without the kind), into
            // their own record.
            let read = cs.data.as_object_mut().and_then(|d| d.remove("guest_tools"));
            derived.push(crate::operations::guest_tools_of(&cs, read.as_ref()));
        }
        if let (Some(u), Value::Object(data)) = (self.usage.get(&cs.resource_id), &mut cs.data) {
            data.insert("usage".into(), u.clone());
        }
        if self.vms_out || !is_vm {
            self.with_region(&cs);
            self.push(Record::CloudService(cs));
        }
        for d in derived {
            if self.first_of_its_id(&d) {
                self.with_region(&d);
                self.push(Record::CloudService(d));
            }
        }
    }

    /// Whether `cs` is the first of its type with its id this run; if not,
    /// an error resource says which two collide.
    fn first_of_its_id(&mut self, cs: &CloudService) -> bool {
        let ids = self.seen.entry(cs.cloud_service_type.clone()).or_default();
        match ids.get(&cs.resource_id) {
            None => {
                ids.insert(cs.resource_id.clone(), cs.name.clone());
                true
            }
            Some(first) => {
                let message = format!(
                    "duplicate {} uuid {}: '{}' has the uuid of '{first}', emitted before; only the first is kept",
                    cs.cloud_service_type, cs.resource_id, cs.name
                );
                match normalize::kind_of_type(&cs.cloud_service_type) {
                    Some(kind) => self.push_error(kind, message),
                    None => self.sink.log(Level::Warn, &message, &[]),
                }
                false
            }
        }
    }

    /// Emits the Region of `cs`'s region code if none was emitted yet.
    fn with_region(&mut self, cs: &CloudService) {
        if let Some(code) = cs.region_code.as_deref()
            && !self.regions_out.contains(code)
            && let Some(region) = normalize::region_of_service(cs, &self.locations)
        {
            self.push(Record::Region(region));
        }
    }

    /// Hands the buffered records to the sink.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() || self.stopped {
            return;
        }
        let batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(BATCH_SIZE));
        if self.sink.emit(batch) == Flow::Stop {
            self.stopped = true;
        }
    }
}

impl<S: Sink> Log for Emitter<'_, S> {
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.sink.log(level, message, fields);
    }
}
