// Nutanix Prism Central VMs and clusters (v3 API), as a TypeScript collector:
// the same collector as examples/python-prism, record for record (both pass
// the same cassettes and golden file).
//
// Build: node sdk/ts/bin/cf-collector-build.mjs examples/ts-prism/prism.ts -o prism-ts.wasm

import {
  CollectorPluginServer, ERROR_REQUIRED_PARAMETER, InvalidArgument, PermissionDenied, Unauthenticated, CollectorError,
  http, logger, sleep, makeCloudService, makeCloudServiceType, makeErrorResponse, makeRegion, makeResponse, Response, Layout,
} from '@cloudforet/collector-sdk';

const app = new CollectorPluginServer({ name: 'prism-ts', version: '0.1.0' });

const PROVIDER = 'nutanix';
const KINDS = ['clusters', 'vms'] as const;
type Kind = (typeof KINDS)[number];
type Entity = Record<string, any>;
const OPTIONS_SCHEMA = {
  type: 'object',
  properties: {
    page_size: { type: 'integer', minimum: 1, maximum: 500, default: 500, title: 'Page size' },
    max_retries: { type: 'integer', minimum: 0, maximum: 10, default: 3, title: 'Retries per page' },
    resource_kinds: { type: 'array', items: { enum: [...KINDS] }, title: 'Kinds to collect' },
  },
};
const TYPES: Record<Kind, [string, string, Layout]> = {
  clusters: ['Cluster', 'Cluster', {
    search: { fields: [{ UUID: 'data.uuid' }, { 'AOS Version': 'data.aos_version' }, { Nodes: 'data.num_nodes', data_type: 'integer' }] },
    table: { sort: { key: 'name' }, fields: [{ 'AOS Version': 'data.aos_version' }, { Nodes: 'data.num_nodes' }, { 'External IP': 'data.external_ip' }] },
    'tabs.0': { name: 'Cluster', type: 'item', fields: [
      { Name: 'name' }, { UUID: 'data.uuid' }, { 'AOS Version': 'data.aos_version' },
      { Hypervisors: 'data.hypervisor_types', type: 'list', delimiter: ', ' }, { 'External IP': 'data.external_ip' }] },
  }],
  vms: ['Compute', 'VirtualMachine', {
    search: { fields: [{ UUID: 'data.uuid' }, { Power: 'data.power_state' }, { Cluster: 'region_code' }, { vCPUs: 'data.vcpus', data_type: 'integer' }] },
    table: { sort: { key: 'name' }, fields: [
      { Power: 'data.power_state', type: 'enum', enums: {
        ON: { type: 'state', options: { icon: { color: 'green.500' } } },
        OFF: { type: 'state', options: { icon: { color: 'gray.400' } } } } },
      { vCPUs: 'data.vcpus' }, { 'Memory (MiB)': 'data.memory_mib' }, { Cluster: 'region_code' },
      { 'IP Addresses': 'ip_addresses', type: 'list', delimiter: '<br>' }] },
    'tabs.0': { name: 'VM', type: 'item', fields: [
      { Name: 'name' }, { UUID: 'data.uuid' }, { Power: 'data.power_state' }, { vCPUs: 'data.vcpus' },
      { 'Memory (MiB)': 'data.memory_mib' }, { Host: 'data.host.name' }, { Cluster: 'data.cluster.name' }] },
    'tabs.1': { name: 'Disks', type: 'table', root_path: 'data.disks', fields: [
      { UUID: 'uuid' }, { Size: 'size_bytes', type: 'size' }, { Adapter: 'adapter_type' }] },
  }],
};

class Prism {
  base: string;
  auth: http.Auth;
  pageSize: number;
  maxRetries: number;

  constructor(options: Entity, secret: Entity) {
    let host: string | undefined = secret.host;
    if (!host) throw ERROR_REQUIRED_PARAMETER('secret_data.host');
    if (!host.includes('://')) host = `https://${host}:${secret.port || 9440}`;
    this.base = host.replace(/\/+$/, '');
    if (secret.api_key) this.auth = http.apiKey('X-ntnx-api-key');
    else if (secret.username) this.auth = http.BASIC;
    else throw ERROR_REQUIRED_PARAMETER('secret_data.username or secret_data.api_key');
    this.pageSize = Number(options.page_size ?? 500);
    if (!(this.pageSize >= 1 && this.pageSize <= 500)) throw new InvalidArgument('option page_size must be between 1 and 500');
    this.maxRetries = Number(options.max_retries ?? 3);
  }

  /** One page, retried on 429 (honouring Retry-After), 5xx, timeouts and truncated JSON. */
  page(kind: Kind, offset: number, length: number): Entity {
    const url = `${this.base}/api/nutanix/v3/${kind}/list`;
    const body = { kind: kind.slice(0, -1), offset, length };
    for (let attempt = 0; ; attempt++) {
      const last = attempt === this.maxRetries;
      let resp: http.Response;
      try {
        resp = http.post(url, { json: body, auth: this.auth, timeout: 60 });
      } catch (e) {
        if (!(e instanceof http.HttpError)) throw e;
        if (last || !(e.kind === 'timeout' || e.kind === 'connection')) throw http.errorForTransport(e, `${kind} list`);
        this.wait(attempt, undefined, e.message);
        continue;
      }
      if (resp.status === 401 || resp.status === 403) {
        const E = resp.status === 401 ? Unauthenticated : PermissionDenied;
        throw new E(`Prism Central refused the credentials (${resp.status}) on ${kind} list`);
      }
      if ((resp.status === 429 || resp.status >= 500) && !last) {
        this.wait(attempt, resp.headers['retry-after'], `HTTP ${resp.status}`);
        continue;
      }
      const failed = http.errorForStatus(resp, `${kind} list`);
      if (failed) throw failed;
      try {
        return resp.json();
      } catch (e) {
        if (last) throw e;
        this.wait(attempt, undefined, 'truncated JSON');
      }
    }
  }

  wait(attempt: number, retryAfter: string | undefined, why: string) {
    const ms = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : 200 * 2 ** attempt;
    logger.warn(`retrying after ${why}`, { logger: 'prism', wait_ms: ms, attempt: attempt + 1 });
    sleep(ms);
  }

  *listAll(kind: Kind): Generator<Entity> {
    let offset = 0;
    for (;;) {
      const page = this.page(kind, offset, this.pageSize);
      const entities: Entity[] = page.entities ?? [];
      yield* entities;
      offset += entities.length;
      if (!entities.length || offset >= (page.metadata?.total_matches ?? 0)) return;
    }
  }
}

function cluster(entity: Entity, account?: string) {
  const status = entity.status ?? {};
  const res = status.resources ?? {};
  const config = res.config ?? {};
  const servers: Entity[] = res.nodes?.hypervisor_server_list ?? [];
  const uuid: string = entity.metadata.uuid;
  const data = {
    uuid,
    name: status.name ?? null,
    aos_version: config.build?.version ?? null,
    full_version: config.build?.full_version ?? null,
    num_nodes: servers.length,
    hypervisor_types: [...new Set(servers.map((s) => s.type).filter(Boolean))].sort(),
    external_ip: res.network?.external_ip ?? null,
    redundancy_factor: config.redundancy_factor ?? null,
  };
  return makeCloudService({
    name: status.name || uuid, cloud_service_type: 'Cluster', cloud_service_group: 'Cluster', provider: PROVIDER, data,
    account, region_code: status.name, reference: { resource_id: uuid },
    ip_addresses: data.external_ip ? [data.external_ip] : [], launched_at: entity.metadata.creation_time,
  });
}

function vm(entity: Entity, account?: string) {
  const meta = entity.metadata;
  const status = entity.status;
  if (status === undefined) throw new Error('missing field `status`');
  const res = status.resources ?? {};
  const vcpus = (res.num_sockets || 0) * (res.num_vcpus_per_socket || 0);
  const memory = res.memory_size_mib || 0;
  const ips = (res.nic_list ?? []).flatMap((nic: Entity) => (nic.ip_endpoint_list ?? []).map((ip: Entity) => ip.ip).filter(Boolean));
  const disks = (res.disk_list ?? []).map((d: Entity) => ({
    uuid: d.uuid ?? null, size_bytes: d.disk_size_bytes ?? null, adapter_type: d.device_properties?.disk_address?.adapter_type ?? null,
  }));
  const clusterRef = status.cluster_reference ?? {};
  const hostRef = res.host_reference;
  const data = {
    uuid: meta.uuid, name: status.name ?? null, power_state: res.power_state ?? null, vcpus, memory_mib: memory,
    hypervisor_type: res.hypervisor_type ?? null,
    cluster: { uuid: clusterRef.uuid ?? null, name: clusterRef.name ?? null },
    host: hostRef && Object.keys(hostRef).length ? { uuid: hostRef.uuid ?? null, name: hostRef.name ?? null } : null,
    disks, disk_total_bytes: disks.reduce((n: number, d: Entity) => n + (d.size_bytes || 0), 0),
    categories: meta.categories ?? {},
  };
  return makeCloudService({
    name: status.name || meta.uuid, cloud_service_type: 'VirtualMachine', cloud_service_group: 'Compute', provider: PROVIDER,
    data, account, region_code: clusterRef.name, instance_type: `${vcpus}vCPU-${Math.floor(memory / 1024)}GiB`,
    instance_size: vcpus, ip_addresses: ips, reference: { resource_id: meta.uuid }, tags: meta.categories ?? {},
    launched_at: meta.creation_time,
  });
}

app.route('Collector.init', () => ({ metadata: { options_schema: OPTIONS_SCHEMA } }));

app.route('Collector.verify', ({ options, secret_data }) => {
  new Prism(options, secret_data).page('clusters', 0, 1);
});

app.route('Job.get_tasks', ({ options }) => ({
  tasks: (options.resource_kinds ?? KINDS).map((k: Kind) => ({ task_options: { resource_kinds: [k] } })),
}));

app.route('Collector.collect', function* ({ options, secret_data, task_options }): Generator<Response> {
  const prism = new Prism(options, secret_data);
  const kinds: string[] = task_options.resource_kinds ?? options.resource_kinds ?? [...KINDS];
  const unknown = kinds.filter((k) => !(KINDS as readonly string[]).includes(k));
  if (unknown.length) throw new InvalidArgument(`unknown resource kinds: ${[...new Set(unknown)].sort().join(', ')}`);
  // Clusters first, always: Prism Central's own uuid is every record's account.
  const all = [...prism.listAll('clusters')];
  const pc = all.find((c) => (c.status.resources.config?.service_list ?? []).includes('PRISM_CENTRAL'));
  const account: string | undefined = pc?.metadata.uuid;
  const clusters = all.filter((c) => c !== pc);
  for (const c of clusters) { // a cluster is a region, whatever the kinds
    yield makeResponse({ region: makeRegion({ name: c.status.name, region_code: c.status.name, provider: PROVIDER, tags: { 'nutanix:cluster_uuid': c.metadata.uuid } }) });
  }
  for (const kind of KINDS) {
    if (!kinds.includes(kind)) continue;
    const [group, name, layout] = TYPES[kind];
    yield makeResponse({ cloud_service_type: makeCloudServiceType({ name, group, provider: PROVIDER, metadata: layout, is_major: true, labels: [group] }) });
    const entities = kind === 'clusters' ? clusters : prism.listAll('vms');
    const normalize = kind === 'clusters' ? cluster : vm;
    try {
      for (const entity of entities) {
        let record;
        try {
          record = normalize(entity, account);
        } catch (e) {
          const reason = e instanceof Error ? e.message : String(e);
          yield makeErrorResponse({ error: new Error(`malformed ${kind.slice(0, -1)} entity ${entity.metadata?.uuid ?? '?'}: ${reason}`), provider: PROVIDER, cloud_service_group: group, cloud_service_type: name });
          continue;
        }
        yield makeResponse({ cloud_service: record });
      }
    } catch (e) {
      if (e instanceof Unauthenticated || e instanceof PermissionDenied) throw e;
      // A lost page: the rest of the collection goes on.
      yield makeErrorResponse({ error: e instanceof CollectorError ? e : new Error(String(e)), provider: PROVIDER, cloud_service_group: group, cloud_service_type: name });
    }
  }
});
