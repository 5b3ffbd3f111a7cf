// Write sandboxed CloudForet inventory collectors in TypeScript: handlers
// as with CloudForet's plugin SDK, built into a WebAssembly component
// (componentize-js) that cf-host loads, sandboxes and hot-swaps.

export * from './errors.js';
export * from './layout.js';
export * from './records.js';
export { CollectorPluginServer, BATCH_SIZE } from './server.js';
export type { Params, Metadata, Method } from './server.js';
export * as http from './http.js';
export { logger, state, sleep } from './host.js';

/** What the host puts in `secret_data` in place of `password`, `token` and `api_key`. */
export const HOST_INJECTED = '[host-injected]';
