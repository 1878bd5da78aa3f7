//! The generated OpenAPI document, served by the real server: it lists every route of the
//! router, and its path parameters' examples (a real catalog and its current version) take
//! a generic API tester to the real operations rather than to 404s.

mod common;

use blindscore_server::http::serve;
use blindscore_server::load::LoadedItems;
use blindscore_server::serving::{AppState, ServiceConfig, SpaceDeclaration};
use common::*;
use serde_json::Value;

/// Every route of the API, as the README's table lists them.
const ROUTES: [(&str, &str); 14] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/parameters"),
    ("get", "/v1/transparency"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/catalogs"),
    ("get", "/v1/catalogs/{name}"),
    ("get", "/v1/catalogs/{name}/versions/{version}/description"),
    ("get", "/v1/catalogs/{name}/versions/{version}/hint"),
    ("get", "/v1/catalogs/{name}/versions/{version}/ids"),
    ("get", "/v1/catalogs/{name}/versions/{version}/scales"),
    ("post", "/v1/catalogs/{name}/versions/{version}/score"),
    ("put", "/v1/admin/catalogs/{name}"),
];

async fn start() -> (String, String) {
    let catalog = random_catalog(500, 16, 8, 3);
    let state = AppState::new(ServiceConfig {
        rate_limit: None,
        ..ServiceConfig::default()
    });
    let items = LoadedItems {
        ids: (0..catalog.items()).map(|i| format!("item-{i}")).collect(),
        catalog,
        scales: vec![1.0; 500],
    };
    let entry = state
        .build_and_install("books", items, &SpaceDeclaration::default())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state, None, std::future::pending()));
    (format!("http://{addr}"), entry.version().to_hex())
}

/// The operations of the document: (method, path template, path parameters).
fn operations(document: &Value) -> Vec<(String, String, Vec<Value>)> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let parameters = operation["parameters"]
                .as_array()
                .map(|p| p.iter().filter(|p| p["in"] == "path").cloned().collect())
                .unwrap_or_default();
            out.push((method.clone(), path.clone(), parameters));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route_and_its_examples_reach_the_real_operations() {
    let (base, version) = start().await;
    let http = reqwest::Client::new();
    let document: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let listed: Vec<(String, String)> = operations(&document)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        listed, expected,
        "the document lists exactly the API's routes"
    );

    for (method, path, parameters) in operations(&document) {
        // Every path parameter has an example: the served catalog and its version.
        let mut url = path.clone();
        for parameter in &parameters {
            let name = parameter["name"].as_str().unwrap();
            let example = parameter["example"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: no example for {name}"));
            let real = match name {
                "name" => "books",
                "version" => version.as_str(),
                other => panic!("{path}: unexpected path parameter {other}"),
            };
            assert_eq!(example, real, "{path}: the example of {name}");
            url = url.replace(&format!("{{{name}}}"), example);
        }
        assert!(!url.contains('{'), "{path}: a parameter without an example");
        let request = match method.as_str() {
            "get" => http.get(format!("{base}{url}")),
            "post" => http.post(format!("{base}{url}")).body(Vec::new()),
            "put" => http.put(format!("{base}{url}")).body("{}\n"),
            other => panic!("{path}: unexpected method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        // The route exists: not the router's fallback, not a wrong method.
        let code = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string));
        assert!(
            code.as_deref() != Some("not_found") && status != 405,
            "{method} {url}: {status} {body}"
        );
        // What each operation answers with its examples and no further input.
        let expected = match (method.as_str(), path.as_str()) {
            // An empty query is refused by its check; the admin route is disabled here.
            ("post", _) => 400,
            ("put", _) => 403,
            _ => 200,
        };
        assert_eq!(status, expected, "{method} {url}: {body}");
    }

    // A route the router does not have is answered by its fallback.
    let missing = http.get(format!("{base}/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_names_the_error_codes_and_the_security_schemes() {
    let (base, _) = start().await;
    let document: Value = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &document["components"]["schemas"];
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .expect("the error codes")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "internal",
        "version_gone",
        "malformed_query",
        "busy",
        "not_found",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    for schema in ["CatalogInfo", "VersionInfo", "ErrorBody", "EmbeddingSpace"] {
        assert!(schemas[schema].is_object(), "schema {schema}");
    }
    let security = &document["components"]["securitySchemes"];
    assert_eq!(security["apiKey"]["name"], "x-api-key");
    assert_eq!(security["bearer"]["scheme"], "bearer");
    let score = &document["paths"]["/v1/catalogs/{name}/versions/{version}/score"]["post"];
    assert!(
        score["responses"]["500"].is_object(),
        "scoring documents 500 internal"
    );
    let binary = &score["requestBody"]["content"]["application/octet-stream"]["schema"];
    assert_eq!(binary["$ref"], "#/components/schemas/WireMessage");
    assert_eq!(schemas["WireMessage"]["format"], "binary");
}
