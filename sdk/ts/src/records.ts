// Records and responses with the names of CloudForet's plugin SDK
// (`make_cloud_service` → `makeCloudService`), fields in CloudForet's own
// snake_case, as they appear in the console's layouts (`data.vcpus`).

import { InvalidArgument, messageOf } from './errors.js';
import { convertCloudServiceMeta, convertCloudServiceTypeMeta, Layout } from './layout.js';

export type Tags = Record<string, string>;
export interface Reference { resource_id: string; external_link?: string }

export interface CloudService {
  name: string; cloud_service_type: string; cloud_service_group: string; provider: string;
  data: Record<string, unknown>; metadata: Layout; ip_addresses: string[]; account?: string;
  instance_type?: string; instance_size?: number; region_code?: string; reference?: Reference;
  tags: Tags; launched_at?: string;
}
export interface CloudServiceType {
  name: string; group: string; provider: string; metadata: Layout; is_primary: boolean; is_major: boolean;
  service_code?: string; tags: Tags; labels: string[];
}
export interface Region { name: string; region_code: string; provider: string; tags: Tags }

export type ResourceType = 'inventory.CloudService' | 'inventory.CloudServiceType' | 'inventory.Region';

/** One element of what `Collector.collect` yields. */
export interface Response {
  state: 'SUCCESS' | 'FAILURE';
  resource_type: ResourceType | 'inventory.ErrorResource';
  match_keys?: string[][];
  cloud_service?: CloudService;
  cloud_service_type?: CloudServiceType;
  region?: Region;
  error_message?: string;
  error_data?: { provider: string; cloud_service_group: string; cloud_service_type: string; resource_type: string };
}

function required(what: string, fields: Record<string, unknown>) {
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v !== 'string' || v === '') throw new InvalidArgument(`${what}: ${k} is required`);
  }
}

export function makeCloudServiceType(t: {
  name: string; group: string; provider: string; metadata: Layout; is_primary?: boolean; is_major?: boolean;
  service_code?: string; tags?: Tags; labels?: string[];
}): CloudServiceType {
  required('makeCloudServiceType', { name: t.name, group: t.group, provider: t.provider });
  if (!t.metadata) throw new InvalidArgument('makeCloudServiceType: metadata is required');
  return {
    name: t.name, group: t.group, provider: t.provider, metadata: convertCloudServiceTypeMeta(t.metadata),
    is_primary: t.is_primary ?? false, is_major: t.is_major ?? false, service_code: t.service_code,
    tags: t.tags ?? {}, labels: t.labels ?? [],
  };
}

export function makeCloudService(c: {
  name: string; cloud_service_type: string; cloud_service_group: string; provider: string;
  data?: Record<string, unknown>; ip_addresses?: string[]; account?: string; instance_type?: string;
  instance_size?: number; region_code?: string; reference?: Reference; tags?: Tags; launched_at?: string; metadata?: Layout;
}): CloudService {
  required('makeCloudService', { cloud_service_type: c.cloud_service_type, cloud_service_group: c.cloud_service_group, provider: c.provider });
  return {
    ...c,
    data: c.data ?? {},
    metadata: c.metadata ?? convertCloudServiceMeta(c.provider, c.cloud_service_group, c.cloud_service_type),
    ip_addresses: c.ip_addresses ?? [],
    tags: c.tags ?? {},
  };
}

export function makeRegion(r: { name?: string; region_code: string; provider: string; tags?: Tags }): Region {
  required('makeRegion', { region_code: r.region_code, provider: r.provider });
  return { name: r.name ?? '', region_code: r.region_code, provider: r.provider, tags: r.tags ?? {} };
}

/** One successful record; the resource type follows from which record is given. */
export function makeResponse(r: {
  cloud_service?: CloudService; cloud_service_type?: CloudServiceType; region?: Region; match_keys?: string[][];
}): Response {
  const [resource_type, key] = r.cloud_service ? ['inventory.CloudService', 'cloud_service'] as const
    : r.cloud_service_type ? ['inventory.CloudServiceType', 'cloud_service_type'] as const
    : r.region ? ['inventory.Region', 'region'] as const
    : [undefined, undefined];
  if (!resource_type) throw new InvalidArgument('makeResponse: give cloud_service, cloud_service_type or region');
  return { state: 'SUCCESS', resource_type, match_keys: r.match_keys ?? [], [key]: r[key] };
}

/** An `inventory.ErrorResource`: this part failed, the collection goes on. */
export function makeErrorResponse(e: {
  error: unknown; provider: string; cloud_service_group: string; cloud_service_type: string; resource_type?: string;
}): Response {
  const message = messageOf(e.error);
  return {
    state: 'FAILURE',
    resource_type: 'inventory.ErrorResource',
    error_message: message,
    error_data: {
      provider: e.provider, cloud_service_group: e.cloud_service_group, cloud_service_type: e.cloud_service_type,
      resource_type: e.resource_type ?? 'inventory.CloudService',
    },
  };
}
