// The host's imports of `cloudforet:collector@0.2.2` (wit/v0.2.2/collector.wit) as
// componentize-js presents them: records with camelCase fields, variants as
// `{ tag, val }`, enums as strings, `option` as undefined, `u64` as bigint,
// and a failed `result` thrown as an Error whose `payload` is the variant.

declare module 'cloudforet:collector/http@0.2.2' {
  export type Method = 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete';
  export interface Request {
    method: Method;
    url: string;
    headers: Array<[string, string]>;
    body: Uint8Array | undefined;
    timeoutMs: number | undefined;
  }
  export interface Response {
    status: number;
    headers: Array<[string, string]>;
    body: Uint8Array;
  }
  export type HttpError =
    | { tag: 'denied'; val: string }
    | { tag: 'invalid-request'; val: string }
    | { tag: 'timeout' }
    | { tag: 'connection'; val: string }
    | { tag: 'tls'; val: string }
    | { tag: 'too-large'; val: bigint };
  export type Credential = { tag: 'basic' } | { tag: 'bearer' } | { tag: 'api-key'; val: string };
  export function send(req: Request): Response;
  export function sendAuthenticated(req: Request, credential: Credential): Response;
}

declare module 'cloudforet:collector/log@0.2.2' {
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
  export function log(level: Level, message: string, fields: Array<[string, string]>): void;
}

declare module 'cloudforet:collector/state@0.2.2' {
  export function get(key: string): string | undefined;
  export function set(key: string, value: string): void;
  function _delete(key: string): void;
  export { _delete as delete };
}

declare module 'cloudforet:collector/emit@0.2.2' {
  type Tags = Array<[string, string]>;
  export interface CloudService {
    name: string; provider: string; cloudServiceGroup: string; cloudServiceType: string;
    account?: string; regionCode?: string; instanceType?: string; instanceSize?: number;
    ipAddresses: string[]; tags: Tags; reference: { resourceId: string; externalLink?: string };
    launchedAt?: string; data: string; metadata: string;
  }
  export interface CloudServiceType {
    name: string; group: string; provider: string; serviceCode?: string; isPrimary: boolean; isMajor: boolean;
    labels: string[]; tags: Tags; metadata: string;
  }
  export interface Region { name: string; regionCode: string; provider: string; tags: Tags }
  export interface ErrorResource {
    message: string; provider: string; cloudServiceGroup: string; cloudServiceType: string; resourceType: string;
  }
  export interface Namespace {
    namespaceId: string; name: string; category: string; resourceType: string; group: string; provider: string;
    icon?: string; tags: Tags;
  }
  export interface Metric {
    metricId: string; name: string; metricType: 'counter' | 'gauge'; resourceType: string; namespaceId: string;
    provider: string; unit: string; queryOptions: string; tags: Tags;
  }
  export type Item =
    | { tag: 'cloud-service'; val: CloudService }
    | { tag: 'cloud-service-type'; val: CloudServiceType }
    | { tag: 'region'; val: Region }
    | { tag: 'error-resource'; val: ErrorResource }
    | { tag: 'namespace'; val: Namespace }
    | { tag: 'metric'; val: Metric };
  export interface Ack { flow: 'proceed' | 'stop'; rejected: Array<{ index: number; reason: string }> }
  export function emit(batch: Item[]): Ack;
}
