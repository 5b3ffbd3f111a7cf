// A collector for the SDK's native tests: it exercises the helpers, HTTP and
// state through the (stubbed) host imports.
import { CollectorPluginServer, ERROR_AUTHENTICATE_FAILURE, http, makeCloudService, makeCloudServiceType, makeErrorResponse, makeRegion, makeResponse, state } from '@cloudforet/collector-sdk';

const app = new CollectorPluginServer({ name: 'fixture', version: '1.2.3' });

app.route('Collector.init', () => ({ metadata: { options_schema: { type: 'object' } } }));
app.route('Collector.verify', ({ secret_data }) => {
  if (secret_data.username !== 'ok') throw ERROR_AUTHENTICATE_FAILURE('bad user');
});
app.route('Job.get_tasks', () => ({ tasks: [{ task_options: { k: 1 } }, { task_options: { k: 2 } }] }));
app.route('Collector.collect', function* ({ options }) {
  if (options.http) {
    const r = http.post('https://pc:9440/api', { json: { kind: 'vm' }, auth: http.BASIC, timeout: 2.5 });
    state.set('status', String(r.status));
    yield makeResponse({ region: makeRegion({ name: 'r', region_code: r.json().region, provider: 'p' }) });
    try {
      http.get('https://elsewhere/');
    } catch (e) {
      yield makeErrorResponse({ error: e instanceof http.HttpError ? http.errorForTransport(e) : e, provider: 'p', cloud_service_group: 'G', cloud_service_type: 'T' });
    }
    return;
  }
  if (options.fail) throw new Error('boom');
  yield makeResponse({ cloud_service_type: makeCloudServiceType({ name: 'T', group: 'G', provider: 'p', metadata: {
    search: { fields: [{ vCPUs: 'data.vcpus', data_type: 'integer' }] },
    table: { sort: { key: 'name', desc: true }, fields: [{ IPs: 'ip_addresses', type: 'list' }] },
    'tabs.1': { name: 'Disks', type: 'table', root_path: 'data.disks', fields: [{ Size: 'size', type: 'size', display_unit: 'GB' }] },
    'tabs.0': { name: 'Main', type: 'item', fields: [{ UUID: 'data.uuid' }] },
  } }) });
  for (let i = 0; i < (options.count ?? 1); i++) {
    yield makeResponse({ cloud_service: makeCloudService({ name: `vm-${i}`, cloud_service_type: 'T', cloud_service_group: 'G', provider: 'p', data: { i }, reference: { resource_id: `id-${i}` }, tags: { a: 'b' }, instance_size: 2 }) });
  }
});
