//! CORS over the public routes, for the origins the operator allows
//! ([`AllowedOrigins`]). Preflights are answered before the API keys and rate limits (a
//! browser sends them without the app's headers); an origin not allowed gets no CORS
//! header at all (tower-http's layer would still list the methods and headers), so the
//! browser keeps the answer from its page.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::origins::AllowedOrigins;
use crate::serving::AppState;

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for these origins; `None` when none is allowed.
pub fn layer(origins: &AllowedOrigins) -> Option<CorsLayer> {
    let origin = match origins {
        AllowedOrigins::None => return None,
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::HEAD, Method::POST])
            .allow_headers([header::CONTENT_TYPE, HeaderName::from_static("x-api-key")])
            .expose_headers([
                header::RETRY_AFTER,
                header::ETAG,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Outside [`layer`]: for a request from an origin not allowed, no `access-control-*`
/// header in the answer, preflight or not.
pub async fn only_allowed(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| state.config.cors.allows(o.as_bytes()));
    let mut response = next.run(req).await;
    if !allowed {
        let names: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            response.headers_mut().remove(name);
        }
    }
    response
}
