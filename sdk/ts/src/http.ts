// Outbound HTTP through the host (`http.send` / `http.send-authenticated`).
// The host checks the egress policy, follows redirects and adds credentials:
// the collector never sees them (`secret_data` holds `[host-injected]`).
//
//   const resp = http.post(url, { json: { kind: 'vm' }, auth: http.BASIC });
//   const vms = resp.json().entities;
//
// An HTTP error status is not an exception; a transport failure is.

import * as wit from 'cloudforet:collector/http@0.2.2';
import { InvalidArgument, NotFound, PermissionDenied, Unauthenticated, Unavailable, Timeout as TimedOut, CollectorError, ResourceExhausted } from './errors.js';

export type Auth = wit.Credential;
/** `Authorization: Basic` from the secret's `username` and `password`. */
export const BASIC: Auth = { tag: 'basic' };
/** `Authorization: Bearer` from the secret's `token`. */
export const BEARER: Auth = { tag: 'bearer' };
/** The secret's `api_key` in the named header. */
export const apiKey = (header: string): Auth => ({ tag: 'api-key', val: header });

/** A transport failure; `kind` is the WIT `http-error` case. */
export class HttpError extends Error {
  constructor(readonly kind: wit.HttpError['tag'], message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

export class Response {
  readonly headers: Record<string, string> = {};
  constructor(readonly url: string, readonly status: number, headers: Array<[string, string]>, readonly body: Uint8Array) {
    for (const [k, v] of headers) {
      const name = k.toLowerCase();
      this.headers[name] = name in this.headers ? `${this.headers[name]}, ${v}` : v;
    }
  }
  get ok(): boolean {
    return this.status < 400;
  }
  text(): string {
    return new TextDecoder().decode(this.body);
  }
  json(): any {
    return JSON.parse(this.text());
  }
}

export interface RequestOptions {
  json?: unknown;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  auth?: Auth;
  /** Seconds; the host caps it. */
  timeout?: number;
}

export function request(method: wit.Method, url: string, o: RequestOptions = {}): Response {
  const headers: Array<[string, string]> = Object.entries(o.headers ?? {});
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  let body: Uint8Array | undefined;
  if (o.json !== undefined) {
    body = new TextEncoder().encode(JSON.stringify(o.json));
    if (!has('content-type')) headers.push(['content-type', 'application/json']);
  } else if (o.body !== undefined) {
    body = typeof o.body === 'string' ? new TextEncoder().encode(o.body) : o.body;
  }
  if (!has('accept')) headers.push(['accept', 'application/json']);
  const req: wit.Request = { method, url, headers, body, timeoutMs: o.timeout === undefined ? undefined : Math.max(1, Math.round(o.timeout * 1000)) };
  try {
    const r = o.auth ? wit.sendAuthenticated(req, o.auth) : wit.send(req);
    return new Response(url, r.status, r.headers, r.body);
  } catch (e: any) {
    const p: wit.HttpError | undefined = e?.payload;
    if (!p) throw e;
    throw new HttpError(p.tag, 'val' in p ? `${p.tag}: ${p.val}` : p.tag);
  }
}

export const get = (url: string, o?: RequestOptions) => request('get', url, o);
export const post = (url: string, o?: RequestOptions) => request('post', url, o);
export const put = (url: string, o?: RequestOptions) => request('put', url, o);
export const patch = (url: string, o?: RequestOptions) => request('patch', url, o);
export const del = (url: string, o?: RequestOptions) => request('delete', url, o);

/** The collector error a failed answer means (undefined for 2xx/3xx). */
export function errorForStatus(r: Response, what = 'request'): CollectorError | undefined {
  if (r.status < 400) return undefined;
  const m = `${what} answered HTTP ${r.status}`;
  if (r.status === 401) return new Unauthenticated(m);
  if (r.status === 403) return new PermissionDenied(m);
  if (r.status === 404) return new NotFound(m);
  if (r.status === 429 || r.status >= 500) return new Unavailable(m);
  return new InvalidArgument(m);
}

/** The collector error a transport failure means. */
export function errorForTransport(e: HttpError, what = 'request'): CollectorError {
  switch (e.kind) {
    case 'denied': return new PermissionDenied(`${what} refused by the host's egress policy: ${e.message}`);
    case 'timeout': return new TimedOut(`${what} timed out`);
    case 'too-large': return new ResourceExhausted(`${what}: ${e.message}`);
    case 'invalid-request': return new InvalidArgument(`${what}: ${e.message}`);
    default: return new Unavailable(`${what}: ${e.message}`);
  }
}
