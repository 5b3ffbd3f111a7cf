// The WIT edge: the component's `collector` export, JSON text in and WIT
// out, errors as `collector-error` variants. The build's entry module
// imports the collector, then re-exports `collector` from here.

import { CollectorError, InvalidArgument, messageOf } from './errors.js';
import { currentApp } from './server.js';

function object(text: string, what: string): Record<string, any> {
  let v: unknown;
  try {
    v = text ? JSON.parse(text) : {};
  } catch (e) {
    throw new InvalidArgument(`${what} is not valid JSON: ${messageOf(e)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgument(`${what} must be a JSON object`);
  return v as Record<string, any>;
}

function guarded<A extends unknown[], R>(f: (...a: A) => R): (...a: A) => R {
  return (...a: A) => {
    try {
      return f(...a);
    } catch (e) {
      // componentize-js turns a thrown `{ tag, val }` into the result's error.
      throw e instanceof CollectorError ? { tag: e.code, val: e.message } : { tag: 'internal', val: messageOf(e) };
    }
  };
}

export const collector = {
  init: guarded((options: string) => {
    const m = currentApp().init(object(options, 'options'));
    return {
      supportedResourceTypes: m.supported_resource_type,
      supportedSchedules: m.supported_schedules,
      supportedFeatures: m.supported_features,
      optionsSchema: JSON.stringify(m.options_schema ?? {}),
    };
  }),
  verify: guarded((options: string, secret: string) => {
    currentApp().verify(object(options, 'options'), object(secret, 'secret'));
  }),
  getTasks: guarded((options: string, secret: string) =>
    currentApp().getTasks(object(options, 'options'), object(secret, 'secret')).map((t) => ({ options: JSON.stringify(t) }))),
  collect: guarded((options: string, secret: string, taskOptions: string) => {
    const [emitted, errors] = currentApp().collect(object(options, 'options'), object(secret, 'secret'), object(taskOptions, 'task options'));
    return { emitted: BigInt(emitted), errors: BigInt(errors) };
  }),
};
