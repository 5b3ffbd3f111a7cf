// Errors a handler throws to fail a call: each class is one case of the WIT
// `collector-error`, which cf-host maps 1:1 to a gRPC status when it serves
// CloudForet. Anything else a handler throws becomes `internal`.

export type ErrorCode =
  | 'invalid-argument' | 'unauthenticated' | 'permission-denied' | 'not-found'
  | 'unavailable' | 'timeout' | 'resource-exhausted' | 'internal';

export class CollectorError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'CollectorError';
  }
}

const kind = (code: ErrorCode) => class extends CollectorError {
  constructor(message: string) {
    super(code, message);
  }
};

/** Bad options, secret fields or task options (INVALID_ARGUMENT). */
export class InvalidArgument extends kind('invalid-argument') {}
/** The endpoint rejected the credentials (UNAUTHENTICATED). */
export class Unauthenticated extends kind('unauthenticated') {}
/** Authenticated but not allowed (PERMISSION_DENIED). */
export class PermissionDenied extends kind('permission-denied') {}
/** The endpoint or a required entity does not exist (NOT_FOUND). */
export class NotFound extends kind('not-found') {}
/** The endpoint could not be reached or answered 5xx/429 (UNAVAILABLE). */
export class Unavailable extends kind('unavailable') {}
/** The endpoint did not answer in time (DEADLINE_EXCEEDED). */
export class Timeout extends kind('timeout') {}
/** A limit was reached (RESOURCE_EXHAUSTED). */
export class ResourceExhausted extends kind('resource-exhausted') {}
/** Anything else (INTERNAL). */
export class Internal extends kind('internal') {}

/** spaceone-core's `ERROR_REQUIRED_PARAMETER(key=...)`. */
export const ERROR_REQUIRED_PARAMETER = (key: string) => new InvalidArgument(`Required parameter. (key = ${key})`);
/** spaceone-core's `ERROR_AUTHENTICATE_FAILURE(message=...)`. */
export const ERROR_AUTHENTICATE_FAILURE = (message: string) => new Unauthenticated(`Authenticate failure. (message = ${message})`);

/** The message of anything thrown. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
