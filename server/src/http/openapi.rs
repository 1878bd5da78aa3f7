//! The OpenAPI document, generated from the handlers' annotations and `common`'s types
//! (the router is built from the same annotations, so every route is in it), with the path
//! parameters' examples filled in from the catalogs served when it is fetched.

use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use crate::serving::AppState;

/// The document's fixed parts: what the generated paths are added to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "blindscore",
        version = "1",
        description = "Private scoring: clients send GLWE ciphertext bodies under a fresh key per query; the server scores its catalog without a key and returns encrypted scores. Binary bodies are bincode-encoded messages of the blindscore wire format (version 1). Every error is a JSON body {code, message}; its codes are those of ErrorCode."
    ),
    components(schemas(blindscore_common::api::ErrorCode)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The two ways a request authenticates: an app's API key on the catalog routes (when the
/// server has API keys), a bearer token on the admin route and the metrics.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "Required on every catalog route when the server is started with --api-keys; each app's score requests count against its quota.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The generated document, as served.
pub struct ApiDocument {
    json: Value,
}

impl ApiDocument {
    /// Wrap a generated document.
    pub fn new(document: utoipa::openapi::OpenApi) -> Self {
        ApiDocument {
            json: serde_json::to_value(document).expect("an OpenAPI document serializes"),
        }
    }

    /// The document as generated (no examples).
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The document with examples for the `name` and `version` path parameters: the
    /// first catalog served (by name) and its current version, so that a generic API
    /// tester reaches the real operations.
    pub fn with_examples(&self, state: &AppState) -> String {
        let mut json = self.json.clone();
        if let Some((name, current, _)) = state.registry.list().into_iter().next() {
            let version = current.version().to_hex();
            fill_path_examples(&mut json, &[("name", &name), ("version", &version)]);
        }
        serde_json::to_string(&json).expect("JSON serializes")
    }
}

/// Set `example` on every path parameter named in `examples`.
fn fill_path_examples(json: &mut Value, examples: &[(&str, &str)]) {
    let Some(paths) = json.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                if parameter["in"] != "path" {
                    continue;
                }
                if let Some((_, example)) = examples.iter().find(|(n, _)| parameter["name"] == *n) {
                    parameter["example"] = Value::String(example.to_string());
                }
            }
        }
    }
}
