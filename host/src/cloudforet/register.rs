//! `cf-host register`: publishes the collector in a CloudForet deployment:
//! its secret schema through identity v2 `Schema` and the plugin through
//! repository v1 `Plugin`. Both are idempotent: what exists with the same
//! content is left alone, what differs is updated, what is missing is
//! created, so registering on every deployment is harmless.

use super::client::{Connector, Upserted};
use super::pb::identity::v2::{
    schema_client::SchemaClient, CreateSchemaRequest, SchemaRequest, SchemaType, UpdateSchemaRequest,
};
use super::pb::repository::v1::{
    plugin_client::PluginClient, PluginQuery, PublicRegistryType, RegisterPluginRequest, UpdatePluginRequest,
};
use super::ApiError;
use crate::grpc::convert::{json_to_struct, json_to_value};
use prost_types::{ListValue, Struct};
use serde_json::{Map, Value};
use tonic::Code;

/// A secret schema (identity v2 `Schema`).
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaSpec {
    pub schema_id: String,
    pub name: String,
    pub schema_type: SchemaType,
    /// JSON Schema (an object) of the secret's data.
    pub schema: Map<String, Value>,
    pub provider: String,
    pub related_schemas: Vec<String>,
    pub options: Map<String, Value>,
    pub tags: Map<String, Value>,
}

/// The collector as a repository plugin (repository v1 `Plugin`).
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    /// Empty: the repository assigns one; the plugin is then found by name.
    pub plugin_id: String,
    pub name: String,
    /// The image CloudForet's supervisor deploys (this host's image).
    pub image: String,
    pub resource_type: String,
    pub provider: String,
    pub registry_type: PublicRegistryType,
    pub registry_config: Map<String, Value>,
    pub capability: Map<String, Value>,
    pub labels: Vec<String>,
    pub tags: Map<String, Value>,
    pub docs: Map<String, Value>,
}

impl SchemaType {
    /// Parses the names CloudForet uses (`SECRET`, `TRUSTING_SECRET`, ...).
    pub fn parse(s: &str) -> Option<SchemaType> {
        SchemaType::from_str_name(s).filter(|t| *t != SchemaType::None)
    }
}

impl PublicRegistryType {
    pub fn parse(s: &str) -> Option<PublicRegistryType> {
        PublicRegistryType::from_str_name(s).filter(|t| *t != PublicRegistryType::NoneRegistryType)
    }
}

fn list(v: &[String]) -> Option<ListValue> {
    Some(ListValue { values: v.iter().map(|s| json_to_value(&Value::String(s.clone()))).collect() })
}

fn st(m: &Map<String, Value>) -> Option<Struct> {
    Some(json_to_struct(m))
}

/// An absent Struct and an empty one are the same to CloudForet.
fn same(a: &Option<Struct>, b: &Option<Struct>) -> bool {
    a.clone().unwrap_or_default() == b.clone().unwrap_or_default()
}

fn same_list(a: &Option<ListValue>, b: &Option<ListValue>) -> bool {
    a.clone().unwrap_or_default() == b.clone().unwrap_or_default()
}

fn unconfigured(what: &str) -> ApiError {
    ApiError::new(Code::InvalidArgument, format!("no {what} endpoint configured (cloudforet.{what} or cloudforet.endpoint)"))
}

impl Connector {
    /// Creates the schema, updates it when it differs, or leaves it.
    pub async fn ensure_schema(&self, s: &SchemaSpec) -> Result<Upserted, ApiError> {
        let svc = &self.identity;
        let get = SchemaRequest { schema_id: s.schema_id.clone() };
        let found = match self.call(svc, "Schema.get", &get, |ch, req| async move { SchemaClient::new(ch).get(req).await }).await {
            Ok(info) => Some(info),
            Err(e) if e.code == Code::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(existing) = found else {
            let create = CreateSchemaRequest {
                schema_id: s.schema_id.clone(),
                name: s.name.clone(),
                schema_type: s.schema_type.into(),
                schema: st(&s.schema),
                provider: s.provider.clone(),
                related_schemas: s.related_schemas.clone(),
                options: st(&s.options),
                tags: st(&s.tags),
            };
            let info = self.call(svc, "Schema.create", &create, |ch, req| async move { SchemaClient::new(ch).create(req).await }).await?;
            return Ok(Upserted::Created(info.schema_id));
        };
        if existing.schema_type != i32::from(s.schema_type) || existing.provider != s.provider {
            return Err(ApiError::new(
                Code::FailedPrecondition,
                format!(
                    "schema {} exists with type {} and provider '{}'; CloudForet cannot change them (choose another schema_id)",
                    s.schema_id,
                    SchemaType::try_from(existing.schema_type).map(|t| t.as_str_name()).unwrap_or("?"),
                    existing.provider
                ),
            ));
        }
        let update = UpdateSchemaRequest {
            schema_id: s.schema_id.clone(),
            name: s.name.clone(),
            schema: st(&s.schema),
            related_schemas: s.related_schemas.clone(),
            options: st(&s.options),
            tags: st(&s.tags),
        };
        if existing.name == update.name
            && same(&existing.schema, &update.schema)
            && existing.related_schemas == update.related_schemas
            && same(&existing.options, &update.options)
            && same(&existing.tags, &update.tags)
        {
            return Ok(Upserted::Unchanged(existing.schema_id));
        }
        let info = self.call(svc, "Schema.update", &update, |ch, req| async move { SchemaClient::new(ch).update(req).await }).await?;
        Ok(Upserted::Updated(info.schema_id))
    }

    /// Registers the plugin, updates it when it differs, or leaves it. The
    /// repository cannot change a plugin's image, resource type or provider:
    /// a difference there is an error naming it.
    pub async fn ensure_plugin(&self, p: &PluginSpec) -> Result<Upserted, ApiError> {
        let svc = self.repository.as_ref().ok_or_else(|| unconfigured("repository"))?;
        let query = if p.plugin_id.is_empty() {
            PluginQuery { name: p.name.clone(), ..Default::default() }
        } else {
            PluginQuery { plugin_id: p.plugin_id.clone(), ..Default::default() }
        };
        let found = self.call(svc, "Plugin.list", &query, |ch, req| async move { PluginClient::new(ch).list(req).await }).await?;
        let Some(existing) = found.results.into_iter().next() else {
            let register = RegisterPluginRequest {
                name: p.name.clone(),
                resource_type: p.resource_type.clone(),
                image: p.image.clone(),
                provider: p.provider.clone(),
                registry_type: p.registry_type.into(),
                registry_config: st(&p.registry_config),
                capability: st(&p.capability),
                labels: list(&p.labels),
                tags: st(&p.tags),
                plugin_id: p.plugin_id.clone(),
                docs: st(&p.docs),
            };
            let info = self.call(svc, "Plugin.register", &register, |ch, req| async move { PluginClient::new(ch).register(req).await }).await?;
            return Ok(Upserted::Created(info.plugin_id));
        };
        for (field, have, want) in [
            ("image", &existing.image, &p.image),
            ("resource_type", &existing.resource_type, &p.resource_type),
            ("provider", &existing.provider, &p.provider),
        ] {
            if have != want {
                return Err(ApiError::new(
                    Code::FailedPrecondition,
                    format!(
                        "plugin {} is registered with {field} '{have}', not '{want}'; the repository cannot change it (register under another name or plugin_id)",
                        existing.plugin_id
                    ),
                ));
            }
        }
        let update = UpdatePluginRequest {
            plugin_id: existing.plugin_id.clone(),
            name: p.name.clone(),
            capability: st(&p.capability),
            labels: list(&p.labels),
            tags: st(&p.tags),
            docs: st(&p.docs),
        };
        if existing.name == update.name
            && same(&existing.capability, &update.capability)
            && same_list(&existing.labels, &update.labels)
            && same(&existing.tags, &update.tags)
            && same(&existing.docs, &update.docs)
        {
            return Ok(Upserted::Unchanged(existing.plugin_id));
        }
        let info = self.call(svc, "Plugin.update", &update, |ch, req| async move { PluginClient::new(ch).update(req).await }).await?;
        Ok(Upserted::Updated(info.plugin_id))
    }
}
