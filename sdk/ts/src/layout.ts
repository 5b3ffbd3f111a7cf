// Dynamic layouts for CloudForet's console, from the short form CloudForet
// plugins write: one `{Label: key}` entry per field plus options, `search`,
// `table` and `tabs.N` (see the Python SDK's layout module for the format).
// A layout that already has `view` is taken as it is.

export type Layout = Record<string, any>;

const OPTION_KEYS = ['is_optional', 'delimiter', 'display_unit', 'source_unit', 'default', 'field_description',
  'source_type', 'source_format', 'sub_key', 'unit', 'link', 'width', 'display_format'];
const FIELD_KEYS = ['type', 'key', 'name', 'options', 'enums', 'reference', 'data_type', 'labels', 'reference_key'];

/** One short-form field, e.g. `{ Size: 'data.size', type: 'size', display_unit: 'GB' }`. */
export function field(spec: Record<string, any>): Layout {
  const s: Record<string, any> = { ...spec };
  const out: Layout = {};
  if ('key' in s && 'name' in s) {
    out.name = s.name;
    out.key = s.key;
  } else {
    const labels = Object.keys(s).filter((k) => !OPTION_KEYS.includes(k) && !FIELD_KEYS.includes(k));
    if (labels.length !== 1) throw new Error(`a layout field needs exactly one {Label: key} entry: ${JSON.stringify(spec)}`);
    out.name = labels[0];
    out.key = s[labels[0]];
  }
  out.type = s.type ?? 'text';
  const options: Record<string, any> = { ...(s.options ?? {}) };
  for (const k of OPTION_KEYS) if (k in s) options[k] = s[k];
  if (out.type === 'list' && !('delimiter' in options)) options.delimiter = ' ';
  if ('reference_key' in s) out.reference = { reference_key: s.reference_key, resource_type: 'inventory.CloudService' };
  for (const k of ['enums', 'reference', 'data_type']) if (k in s) out[k] = s[k];
  if (Object.keys(options).length) out.options = options;
  return out;
}

function view(name: string, type: string, spec: Layout): Layout {
  const options: Layout = {};
  if (spec.fields) options.fields = spec.fields.map(field);
  for (const k of ['root_path', 'unwind', 'default_sort', 'search']) if (k in spec) options[k] = spec[k];
  if (spec.sort) options.default_sort = Object.fromEntries(['key', 'desc'].filter((k) => k in spec.sort).map((k) => [k, spec.sort[k]]));
  if (spec.items) options.layouts = spec.items.map((i: Layout) => view(i.name, i.type ?? 'item', i));
  return { name, type, options };
}

/** The dynamic layout of a cloud service type, from the short form. */
export function convertCloudServiceTypeMeta(metadata: Layout): Layout {
  if ('view' in metadata) return metadata;
  const tabs = Object.keys(metadata)
    .filter((k) => k.startsWith('tabs.'))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
    .map((k) => metadata[k]);
  const v: Layout = {
    search: (metadata.search?.fields ?? []).map(field),
    table: { layout: view('Main Table', 'query-search-table', metadata.table ?? {}) },
    sub_data: { layouts: tabs.map((t) => view(t.name, t.type ?? (t.items ? 'list' : 'item'), t)) },
  };
  if (metadata.widget) v.widget = metadata.widget;
  const out: Layout = { view: v };
  if (metadata.query_sets) out.query_sets = metadata.query_sets;
  return out;
}

/** A cloud service's metadata: show it with its type's layout. */
export function convertCloudServiceMeta(provider: string, cloudServiceGroup: string, cloudServiceType: string): Layout {
  return {
    view: {
      sub_data: {
        reference: {
          resource_type: 'inventory.CloudServiceType',
          options: { provider, cloud_service_group: cloudServiceGroup, cloud_service_type: cloudServiceType },
        },
      },
    },
  };
}
