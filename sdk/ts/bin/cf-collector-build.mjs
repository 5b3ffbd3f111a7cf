#!/usr/bin/env node
// Builds a TypeScript collector into a cf-host component.
//
//   node sdk/ts/bin/cf-collector-build.mjs collector.ts -o my-collector.wasm [--check]
//
// 1. Bundles the collector, the SDK and an entry module that re-exports the
//    SDK's `collector` export into one ES module (esbuild); the host's
//    imports (`cloudforet:collector/*`) stay imports.
// 2. Reads the identity (`new CollectorPluginServer({ name, version })`) by
//    running the same bundle in Node with the host's imports stubbed.
// 3. componentize-js (StarlingMonkey, pre-initialized with wizer) makes the
//    component for world `plugin`, with WASI's http and fetch-event left out
//    (cf-host gives HTTP only through `cloudforet:collector/http`).
// 4. Appends the `cloudforet-plugin` custom section {"name", "version"}.
//
// `--check` type-checks with tsc first. The tools come from the SDK's own
// node_modules (`npm ci` in sdk/ts), or CF_SDK_NODE_MODULES.

import { mkdtemp, readFile, rm, writeFile, rename, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const SDK = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WIT = join(SDK, 'wit');
const SECTION = 'cloudforet-plugin';
const WORLD = 'plugin';
const NODE_MODULES = process.env.CF_SDK_NODE_MODULES ?? join(SDK, 'node_modules');

/** Imports a package's ES entry from NODE_MODULES. */
async function load(pkg) {
  const dir = join(NODE_MODULES, pkg);
  const meta = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  const dot = typeof meta.exports === 'object' ? (meta.exports['.'] ?? meta.exports) : meta.exports;
  const entry = typeof dot === 'string' ? dot : (dot?.import ?? dot?.default ?? meta.main ?? 'index.js');
  return import(pathToFileURL(join(dir, typeof entry === 'string' ? entry : entry.default)).href);
}

// Named exports of the host's imports, for the Node stubs.
const IMPORTS = {
  'cloudforet:collector/http@0.2.2': ['send', 'sendAuthenticated'],
  'cloudforet:collector/emit@0.2.2': ['emit'],
  'cloudforet:collector/log@0.2.2': ['log'],
  'cloudforet:collector/state@0.2.2': ['get', 'set', 'delete'],
};

/** An esbuild plugin: `cloudforet:*` imports answered by `globalThis.__cfHost` (Node runs only). */
const stubHost = {
  name: 'cf-host-stubs',
  setup(b) {
    b.onResolve({ filter: /^cloudforet:/ }, (a) => ({ path: a.path, namespace: 'cf-host' }));
    b.onLoad({ filter: /.*/, namespace: 'cf-host' }, (a) => {
      const names = IMPORTS[a.path];
      if (!names) return { errors: [{ text: `unknown host import ${a.path}` }] };
      const fns = names.map((n, i) => `const f${i} = (...args) => { const h = globalThis.__cfHost; if (!h) throw new Error('no host: ${n}'); return h[${JSON.stringify(a.path.split('/')[1].split('@')[0])}](${JSON.stringify(n)}, ...args); };`);
      const exports = names.map((n, i) => `f${i} as ${n}`).join(', ');
      return { contents: `${fns.join('\n')}\nexport { ${exports} };`, loader: 'js' };
    });
  },
};

/**
 * Bundles `source` with the SDK. `exports` is the entry's export list
 * (`collector` for the component). Host imports stay external, or are stubbed
 * for Node with `forNode`.
 */
export async function bundle(source, outfile, { exports = 'collector', forNode = false } = {}) {
  const esbuild = await load('esbuild');
  const entry = `import ${JSON.stringify(resolve(source))};\nexport { ${exports} } from ${JSON.stringify(join(SDK, 'src/entry.ts'))};\n`;
  await esbuild.build({
    stdin: { contents: entry, resolveDir: dirname(resolve(source)), sourcefile: 'cf-collector-entry.ts', loader: 'ts' },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    outfile,
    alias: { '@cloudforet/collector-sdk': join(SDK, 'src/index.ts') },
    external: forNode ? [] : ['cloudforet:*'],
    plugins: forNode ? [stubHost] : [],
    logLevel: 'warning',
  });
}

/** The collector's identity: the bundle run in Node with stubbed host imports. */
export async function identity(source, dir) {
  const file = join(dir, 'identity.mjs');
  await bundle(source, file, { exports: 'currentApp', forNode: true });
  const app = (await import(pathToFileURL(file).href)).currentApp();
  return { name: app.name, version: app.version };
}

function leb128(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

/** The component with the `cloudforet-plugin` custom section appended. */
export function addIdentity(component, id) {
  const header = Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
  if (!component.subarray(0, 8).equals(header)) throw new Error('not a WebAssembly component');
  const name = Buffer.from(SECTION);
  const data = Buffer.from(JSON.stringify({ name: id.name, version: id.version }));
  const payload = Buffer.concat([leb128(name.length), name, data]);
  return Buffer.concat([component, Buffer.from([0]), leb128(payload.length), payload]);
}

export async function build(source, output, { check = false, name, version } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'cf-collector-build-'));
  try {
    if (check) {
      const tsc = join(NODE_MODULES, 'typescript/bin/tsc');
      const config = join(dir, 'tsconfig.json');
      await writeFile(config, JSON.stringify({
        extends: join(SDK, 'tsconfig.json'),
        compilerOptions: { paths: { '@cloudforet/collector-sdk': [join(SDK, 'src/index.ts')] } },
        include: [join(SDK, 'src/**/*.ts'), resolve(source)],
      }));
      execFileSync(process.execPath, [tsc, '-p', config], { stdio: 'inherit' });
    }
    const id = name && version ? { name, version } : { ...(await identity(source, dir)), ...(name ? { name } : {}), ...(version ? { version } : {}) };
    const js = join(dir, 'collector.js');
    await bundle(source, js);
    const { componentize } = await load('@bytecodealliance/componentize-js');
    const { component } = await componentize({
      sourcePath: js,
      witPath: WIT,
      worldName: WORLD,
      disableFeatures: ['http', 'fetch-event'],
    });
    const out = addIdentity(Buffer.from(component), id);
    await mkdir(dirname(resolve(output)), { recursive: true });
    await writeFile(output + '.tmp', out);
    await rename(output + '.tmp', output);
    return { ...id, size: out.length, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(argv) {
  const args = { check: false };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-o' || a === '--output') args.output = argv[++i];
    else if (a === '--name') args.name = argv[++i];
    else if (a === '--version') args.version = argv[++i];
    else if (a === '--check') args.check = true;
    else rest.push(a);
  }
  if (rest.length !== 1 || !args.output) {
    console.error('usage: cf-collector-build <collector.ts> -o <component.wasm> [--check] [--name N] [--version V]');
    process.exit(2);
  }
  const out = await build(rest[0], args.output, args);
  console.log(`built ${out.output}: ${out.name}@${out.version}, ${out.size} bytes`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`cf-collector-build: ${e.message ?? e}`);
    process.exit(1);
  });
}
