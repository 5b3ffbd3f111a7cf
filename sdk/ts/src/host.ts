// The host's log and state imports.

import { log as witLog, Level } from 'cloudforet:collector/log@0.2.2';
import * as witState from 'cloudforet:collector/state@0.2.2';

type Fields = Record<string, unknown>;
const write = (level: Level) => (message: string, fields: Fields = {}) =>
  witLog(level, message, Object.entries(fields).map(([k, v]) => [k, String(v)]));

/** Structured logs into the host's pipeline (tagged with tenant, plugin and run; secrets redacted). */
export const logger = { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };

/** Key/value state kept by the host per tenant and collector across runs. */
export const state = {
  get: (key: string): string | undefined => witState.get(key),
  set: (key: string, value: string): void => witState.set(key, value),
  delete: (key: string): void => witState.delete(key),
};

/**
 * Waits `ms` milliseconds (e.g. before a retry). Handlers are synchronous, so
 * this spins on the monotonic clock and counts against the run's CPU budget;
 * keep waits short.
 */
export function sleep(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}
