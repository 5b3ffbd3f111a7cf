// The SDK natively in Node, its host imports stubbed: the `collector` export
// as the component has it (edge, server, records, layouts, HTTP, state).
// The component itself is tested by cf-host (tests/tests/sdk_guests.rs).
//
//   CF_SDK_NODE_MODULES=... node --test sdk/ts/test/

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { bundle, identity, addIdentity, SDK } from '../bin/cf-collector-build.mjs';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixture.ts');
let collector;
let host;

class FakeHost {
  constructor() { this.batches = []; this.logs = []; this.kv = new Map(); this.sent = []; this.stopAfter = Infinity; }
  http(name, req, cred) {
    this.sent.push({ name, req, cred });
    if (!req.url.startsWith('https://pc:9440/')) {
      const e = new Error('denied');
      e.payload = { tag: 'denied', val: `${req.url} is not granted` };
      throw e;
    }
    return { status: 201, headers: [['Content-Type', 'application/json']], body: new TextEncoder().encode('{"region":"r-1"}') };
  }
  emit(name, batch) {
    this.batches.push(batch);
    return { flow: this.batches.length >= this.stopAfter ? 'stop' : 'proceed', rejected: batch.length > 1 ? [{ index: 1, reason: 'bad' }] : [] };
  }
  log(name, level, message, fields) { this.logs.push({ level, message, fields }); }
  state(name, key, value) {
    if (name === 'get') return this.kv.get(key);
    if (name === 'set') this.kv.set(key, value);
    if (name === 'delete') this.kv.delete(key);
  }
}

before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cf-sdk-test-'));
  const file = join(dir, 'fixture.mjs');
  await bundle(fixture, file, { exports: 'collector', forNode: true });
  ({ collector } = await import(pathToFileURL(file).href));
});

const fresh = () => { host = new FakeHost(); globalThis.__cfHost = host; return host; };
const thrown = (f) => { try { f(); } catch (e) { return e; } assert.fail('did not throw'); };

test('identity is read from the CollectorPluginServer', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cf-sdk-id-'));
  assert.deepEqual(await identity(fixture, dir), { name: 'fixture', version: '1.2.3' });
});

test('the cloudforet-plugin section is appended', () => {
  const c = Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
  const out = addIdentity(c, { name: 'n', version: '0.1.0' });
  const payload = out.subarray(10);
  assert.equal(out[8], 0);
  assert.equal(out[9], payload.length);
  assert.equal(payload.subarray(1, 1 + payload[0]).toString(), 'cloudforet-plugin');
  assert.deepEqual(JSON.parse(payload.subarray(1 + payload[0]).toString()), { name: 'n', version: '0.1.0' });
  assert.throws(() => addIdentity(Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), { name: 'n', version: '1.0.0' }));
});

test('init answers the metadata with defaults', () => {
  fresh();
  const m = collector.init('{}');
  assert.deepEqual(m.supportedSchedules, ['hours']);
  assert.equal(m.optionsSchema, '{"type":"object"}');
  assert.deepEqual(thrown(() => collector.init('[1]')), { tag: 'invalid-argument', val: 'options must be a JSON object' });
});

test('verify errors keep their case', () => {
  fresh();
  collector.verify('{}', '{"username":"ok"}');
  assert.deepEqual(thrown(() => collector.verify('{}', '{"username":"x"}')), { tag: 'unauthenticated', val: 'Authenticate failure. (message = bad user)' });
});

test('get_tasks', () => {
  fresh();
  assert.deepEqual(collector.getTasks('{}', '{}'), [{ options: '{"k":1}' }, { options: '{"k":2}' }]);
});

test('collect batches, converts records and counts', () => {
  const h = fresh();
  const s = collector.collect('{"count":150}', '{}', '{}');
  assert.deepEqual(s, { emitted: 151n, errors: 0n });
  assert.deepEqual(h.batches.map((b) => b.length), [100, 51]);
  const [type, vm] = h.batches[0];
  assert.equal(type.tag, 'cloud-service-type');
  const view = JSON.parse(type.val.metadata).view;
  assert.deepEqual(view.search[0], { name: 'vCPUs', key: 'data.vcpus', type: 'text', data_type: 'integer' });
  assert.deepEqual(view.table.layout.options.default_sort, { key: 'name', desc: true });
  assert.deepEqual(view.table.layout.options.fields[0].options, { delimiter: ' ' });
  assert.deepEqual(view.sub_data.layouts.map((l) => l.name), ['Main', 'Disks']);
  assert.equal(vm.tag, 'cloud-service');
  assert.equal(vm.val.cloudServiceType, 'T');
  assert.deepEqual(vm.val.reference, { resourceId: 'id-0', externalLink: undefined });
  assert.deepEqual(vm.val.tags, [['a', 'b']]);
  assert.equal(vm.val.instanceSize, 2);
  assert.equal(vm.val.data, '{"i":0}');
  assert.equal(JSON.parse(vm.val.metadata).view.sub_data.reference.options.cloud_service_type, 'T');
  assert.ok(h.logs.some((l) => l.level === 'warn' && l.message.startsWith('host rejected 1 record')));
});

test('collect stops when the host says stop', () => {
  const h = fresh();
  h.stopAfter = 1;
  assert.deepEqual(collector.collect('{"count":1000}', '{}', '{}'), { emitted: 100n, errors: 0n });
  assert.equal(h.batches.length, 1);
});

test('a handler that throws fails the call as internal', () => {
  fresh();
  assert.deepEqual(thrown(() => collector.collect('{"fail":true}', '{}', '{}')), { tag: 'internal', val: 'Collector.collect failed: boom' });
});

test('http goes through the host with its credentials; transport errors become error resources', () => {
  const h = fresh();
  assert.deepEqual(collector.collect('{"http":true}', '{}', '{}'), { emitted: 2n, errors: 1n });
  const { name, req, cred } = h.sent[0];
  assert.equal(name, 'sendAuthenticated');
  assert.deepEqual(cred, { tag: 'basic' });
  assert.equal(req.method, 'post');
  assert.equal(req.timeoutMs, 2500);
  assert.equal(new TextDecoder().decode(req.body), '{"kind":"vm"}');
  assert.ok(req.headers.some(([k, v]) => k === 'content-type' && v === 'application/json'));
  assert.equal(h.sent[1].name, 'send');
  const [region, error] = h.batches[0];
  assert.equal(region.val.regionCode, 'r-1');
  assert.equal(error.tag, 'error-resource');
  assert.match(error.val.message, /refused by the host's egress policy: denied: https:\/\/elsewhere\/ is not granted/);
  assert.equal(h.kv.get('status'), '201');
});

// The SDKs target world 0.2.2, which the host keeps frozen in wit/v0.2.2.
test("the SDK's WIT is a world the host keeps", () => {
  const a = readFileSync(join(SDK, 'wit/collector.wit'), 'utf8');
  const b = readFileSync(join(SDK, '../../wit/v0.2.2/collector.wit'), 'utf8');
  assert.equal(a, b, "sdk/ts/wit/collector.wit differs from wit/v0.2.2/collector.wit: copy it again");
});
