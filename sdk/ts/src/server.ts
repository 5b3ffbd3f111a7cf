// The collector's handlers, as with CloudForet's `CollectorPluginServer`:
//
//   const app = new CollectorPluginServer({ name: 'my-collector', version: '0.1.0' });
//   app.route('Collector.collect', function* (params) { yield makeResponse({ ... }); });
//
// Every handler is optional: init answers the default metadata, verify
// accepts, get_tasks answers one task with empty options. `name` and
// `version` become the component's `cloudforet-plugin` section.

import { emit, Item } from 'cloudforet:collector/emit@0.2.2';
import { log } from 'cloudforet:collector/log@0.2.2';
import { CollectorError, Internal, messageOf } from './errors.js';
import { Response, Tags } from './records.js';

export type Params = {
  options: Record<string, any>;
  secret_data: Record<string, any>;
  task_options: Record<string, any>;
};
export type Method = 'Collector.init' | 'Collector.verify' | 'Job.get_tasks' | 'Collector.collect';
export type Metadata = {
  supported_resource_type?: string[]; supported_schedules?: string[]; supported_features?: string[];
  options_schema?: Record<string, unknown>;
};
type Handlers = {
  'Collector.init': (p: Pick<Params, 'options'>) => { metadata: Metadata } | void;
  'Collector.verify': (p: Omit<Params, 'task_options'>) => void;
  'Job.get_tasks': (p: Omit<Params, 'task_options'>) => { tasks: Array<{ task_options: Record<string, unknown> }> };
  'Collector.collect': (p: Params) => Iterable<Response | undefined>;
};

/** Records per `emit` call: one boundary crossing per batch. */
export const BATCH_SIZE = 100;
const DEFAULT_METADATA: Required<Metadata> = {
  supported_resource_type: ['inventory.CloudService', 'inventory.CloudServiceType', 'inventory.Region'],
  supported_schedules: ['hours'],
  supported_features: [],
  options_schema: {},
};

let current: CollectorPluginServer | undefined;
export function currentApp(): CollectorPluginServer {
  if (!current) throw new Internal('the component defines no CollectorPluginServer');
  return current;
}

export class CollectorPluginServer {
  readonly name: string;
  readonly version: string;
  private handlers: Partial<Handlers> = {};

  constructor(identity: { name: string; version: string }) {
    if (!/^[A-Za-z0-9_-]+$/.test(identity.name)) throw new Error(`plugin name ${identity.name} must be letters, digits, '-' or '_'`);
    if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(identity.version)) throw new Error(`plugin version ${identity.version} must be semver`);
    this.name = identity.name;
    this.version = identity.version;
    current = this;
  }

  route<M extends Method>(method: M, handler: Handlers[M]): this {
    this.handlers[method] = handler as any;
    return this;
  }

  init(options: Record<string, any>): Required<Metadata> {
    const answer = this.handlers['Collector.init']?.({ options });
    return { ...DEFAULT_METADATA, ...(answer ? answer.metadata : {}) };
  }

  verify(options: Record<string, any>, secret_data: Record<string, any>): void {
    this.handlers['Collector.verify']?.({ options, secret_data });
  }

  getTasks(options: Record<string, any>, secret_data: Record<string, any>): Array<Record<string, unknown>> {
    const h = this.handlers['Job.get_tasks'];
    if (!h) return [{}];
    return (h({ options, secret_data }).tasks ?? []).map((t) => t.task_options ?? {});
  }

  /** Runs Collector.collect, emitting in batches; answers [emitted, errors]. */
  collect(options: Record<string, any>, secret_data: Record<string, any>, task_options: Record<string, any>): [number, number] {
    const h = this.handlers['Collector.collect'];
    if (!h) throw new Internal('the collector has no Collector.collect handler');
    let emitted = 0;
    let errors = 0;
    let batch: Response[] = [];
    const flush = (): boolean => {
      const ack = emit(batch.map(toItem));
      emitted += batch.length;
      errors += batch.filter((r) => r.state === 'FAILURE').length;
      if (ack.rejected.length) {
        const first = ack.rejected[0];
        log('warn', `host rejected ${ack.rejected.length} record(s) of a batch: ${first.reason}`,
          [['count', String(ack.rejected.length)], ['first_index', String(first.index)]]);
      }
      batch = [];
      return ack.flow === 'stop';
    };
    const it = h({ options, secret_data, task_options })[Symbol.iterator]();
    try {
      for (;;) {
        const next = it.next();
        if (next.done) break;
        if (next.value === undefined) continue;
        batch.push(next.value);
        if (batch.length >= BATCH_SIZE && flush()) return [emitted, errors];
      }
      if (batch.length) flush();
    } catch (e) {
      if (e instanceof CollectorError) throw e;
      throw new Internal(`Collector.collect failed: ${messageOf(e)}`);
    } finally {
      it.return?.();
    }
    return [emitted, errors];
  }
}

const tags = (t: Tags | undefined): Array<[string, string]> => Object.entries(t ?? {}).map(([k, v]) => [k, String(v ?? '')]);
const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v ?? {}));

/** One response as a WIT item. */
export function toItem(r: Response): Item {
  if (r.state === 'FAILURE' || r.resource_type === 'inventory.ErrorResource') {
    const d = r.error_data ?? { provider: '', cloud_service_group: '', cloud_service_type: '', resource_type: 'inventory.CloudService' };
    return { tag: 'error-resource', val: { message: r.error_message || 'error', provider: d.provider, cloudServiceGroup: d.cloud_service_group, cloudServiceType: d.cloud_service_type, resourceType: d.resource_type } };
  }
  if (r.cloud_service) {
    const c = r.cloud_service;
    return { tag: 'cloud-service', val: {
      name: c.name ?? '', provider: c.provider, cloudServiceGroup: c.cloud_service_group, cloudServiceType: c.cloud_service_type,
      account: c.account ?? undefined, regionCode: c.region_code ?? undefined, instanceType: c.instance_type ?? undefined,
      instanceSize: c.instance_size ?? undefined, ipAddresses: (c.ip_addresses ?? []).map(String), tags: tags(c.tags),
      reference: { resourceId: c.reference?.resource_id ?? '', externalLink: c.reference?.external_link ?? undefined },
      launchedAt: c.launched_at ?? undefined, data: text(c.data), metadata: text(c.metadata),
    } };
  }
  if (r.cloud_service_type) {
    const t = r.cloud_service_type;
    return { tag: 'cloud-service-type', val: {
      name: t.name, group: t.group, provider: t.provider, serviceCode: t.service_code ?? undefined, isPrimary: !!t.is_primary,
      isMajor: !!t.is_major, labels: (t.labels ?? []).map(String), tags: tags(t.tags), metadata: text(t.metadata),
    } };
  }
  if (r.region) {
    return { tag: 'region', val: { name: r.region.name ?? '', regionCode: r.region.region_code, provider: r.region.provider, tags: tags(r.region.tags) } };
  }
  return { tag: 'error-resource', val: { message: `a ${r.resource_type} response without its record`, provider: '', cloudServiceGroup: '', cloudServiceType: '', resourceType: r.resource_type } };
}
