//! Dynamic layouts: what CloudForet's console shows of a CloudServiceType
//! (its `metadata`) and of each cloud service.
//!
//! The structure is the one CloudForet's Python plugin SDK generates:
//! `{"view": {"search": [...], "table": {"layout": {"name": "Main Table",
//! "type": "query-search-table", "options": {"default_sort", "fields"}}},
//! "sub_data": {"layouts": [...]}}}`, with fields of type `text`, `enum`
//! (state icons), `size`, `datetime`, `list`. [`view`] builds a type's;
//! [`service_reference`] is what each cloud service carries.

use serde_json::{json, Map, Value};

/// A console field (`{"name", "key", "type", "options"?}`).
#[derive(Clone, Debug)]
pub struct Field(pub(crate) Value);

pub fn text(name: &str, key: &str) -> Field {
    Field(json!({"name": name, "key": key, "type": "text"}))
}

/// A size in `source_unit` shown in `display_unit` (`BYTES`, `MB`, `GB`...).
pub fn size(name: &str, key: &str, source_unit: &str, display_unit: &str) -> Field {
    Field(json!({"name": name, "key": key, "type": "size",
        "options": {"display_unit": display_unit, "source_unit": source_unit}}))
}

pub fn datetime(name: &str, key: &str) -> Field {
    Field(json!({"name": name, "key": key, "type": "datetime", "options": {"source_type": "iso8601"}}))
}

pub fn list(name: &str, key: &str, delimiter: &str) -> Field {
    Field(json!({"name": name, "key": key, "type": "list", "options": {"delimiter": delimiter}}))
}

/// An enum shown as a coloured state dot: `states` is `(value, colour)`.
pub fn state(name: &str, key: &str, states: &[(&str, &str)]) -> Field {
    let mut opts = Map::new();
    for (value, color) in states {
        opts.insert(
            (*value).to_string(),
            json!({"type": "state", "options": {"icon": {"image": "ic_circle-filled", "color": color}}}),
        );
    }
    Field(json!({"name": name, "key": key, "type": "enum", "options": opts}))
}

impl Field {
    /// The field as the console reads it.
    pub fn into_json(self) -> Value {
        self.0
    }

    /// Hidden by default in the main table.
    pub fn optional(mut self) -> Field {
        let obj = self.0.as_object_mut().expect("fields are objects");
        let opts = obj.entry("options").or_insert_with(|| json!({}));
        if let Some(o) = opts.as_object_mut() {
            o.insert("is_optional".into(), Value::Bool(true));
        }
        self
    }
}

/// A search key (`{"name", "key", "type": "text", "data_type"?}`).
pub struct Search(pub(crate) Value);

pub fn search(name: &str, key: &str) -> Search {
    Search(json!({"name": name, "key": key, "type": "text"}))
}

pub fn search_typed(name: &str, key: &str, data_type: &str) -> Search {
    Search(json!({"name": name, "key": key, "type": "text", "data_type": data_type}))
}

/// A sub-data tab.
pub enum Tab {
    /// Key/value view of one object.
    Item { name: String, fields: Vec<Field> },
    /// A table of the list at `root_path`.
    Table { name: String, root_path: String, fields: Vec<Field> },
}

pub fn item(name: &str, fields: Vec<Field>) -> Tab {
    Tab::Item { name: name.into(), fields }
}

pub fn table(name: &str, root_path: &str, fields: Vec<Field>) -> Tab {
    Tab::Table { name: name.into(), root_path: root_path.into(), fields }
}

fn fields_json(fields: Vec<Field>) -> Value {
    Value::Array(fields.into_iter().map(|f| f.0).collect())
}

/// The whole `metadata` of a CloudServiceType.
pub fn view(search: Vec<Search>, default_sort: &str, table_fields: Vec<Field>, tabs: Vec<Tab>) -> Value {
    let layouts: Vec<Value> = tabs
        .into_iter()
        .map(|t| match t {
            Tab::Item { name, fields } => json!({"name": name, "type": "item", "options": {"fields": fields_json(fields)}}),
            Tab::Table { name, root_path, fields } => json!({"name": name, "type": "table",
                "options": {"root_path": root_path, "fields": fields_json(fields)}}),
        })
        .collect();
    json!({
        "view": {
            "search": search.into_iter().map(|s| s.0).collect::<Vec<_>>(),
            "table": {"layout": {
                "name": "Main Table",
                "type": "query-search-table",
                "options": {"default_sort": {"key": default_sort, "desc": false}, "fields": fields_json(table_fields)}
            }},
            "sub_data": {"layouts": layouts}
        }
    })
}

/// The per-service `metadata` pointing the console at its type's layout.
pub fn service_reference(provider: &str, group: &str, kind: &str) -> Value {
    json!({"view": {"sub_data": {"reference": {
        "resource_type": "inventory.CloudServiceType",
        "options": {"provider": provider, "cloud_service_group": group, "cloud_service_type": kind}
    }}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_has_the_sdk_structure() {
        let v = view(
            vec![search("Name", "name"), search_typed("CPUs", "data.cpus", "integer")],
            "name",
            vec![text("Name", "name"), state("State", "data.state", &[("ON", "green.500")]), size("Memory", "data.mem", "BYTES", "GB").optional()],
            vec![item("Details", vec![datetime("Created", "data.created")]), table("Disks", "data.disks", vec![list("Tags", "data.tags", ", ")])],
        );
        let table = &v["view"]["table"]["layout"];
        assert_eq!(table["type"], "query-search-table");
        assert_eq!(table["options"]["default_sort"], json!({"key": "name", "desc": false}));
        assert_eq!(table["options"]["fields"][1]["options"]["ON"]["type"], "state");
        assert_eq!(table["options"]["fields"][2]["options"]["is_optional"], true);
        assert_eq!(v["view"]["search"][1]["data_type"], "integer");
        let tabs = v["view"]["sub_data"]["layouts"].as_array().unwrap();
        assert_eq!((tabs[0]["type"].as_str(), tabs[1]["type"].as_str()), (Some("item"), Some("table")));
        assert_eq!(tabs[1]["options"]["root_path"], "data.disks");
    }
}
