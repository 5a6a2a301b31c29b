//! The demo's stand-in for an in-house tool: it knows nothing about OAuth and simply shows the
//! identity headers keyway-proxy sends it. `/` renders a page, `/api/whoami` answers JSON.

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// Identity headers the proxy sets (and strips from clients), in display order.
const IDENTITY_HEADERS: [&str; 6] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
];

/// The demo tool's routes.
pub fn router() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/whoami", get(whoami))
        .route("/healthz", get(|| async { "ok" }))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn whoami(headers: HeaderMap) -> impl IntoResponse {
    let body: serde_json::Map<String, serde_json::Value> = IDENTITY_HEADERS
        .iter()
        .filter(|h| headers.contains_key(**h))
        .map(|h| ((*h).to_string(), header(&headers, h).into()))
        .collect();
    axum::Json(body)
}

async fn page(headers: HeaderMap) -> impl IntoResponse {
    let user = escape(header(&headers, "x-forwarded-user"));
    let email = escape(header(&headers, "x-forwarded-email"));
    let groups = escape(header(&headers, "x-forwarded-groups"));
    let rows: String = IDENTITY_HEADERS
        .iter()
        .map(|h| {
            format!(
                "<tr><th>{h}</th><td>{}</td></tr>",
                escape(header(&headers, h))
            )
        })
        .collect();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo tool · keyway</title>
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f5f7fb; color: #1c2434; }}
 main {{ max-width: 44rem; margin: 3rem auto; padding: 2rem; background: #fff;
        border-radius: 12px; box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
 h1 {{ margin-top: 0; font-size: 1.6rem; }}
 table {{ border-collapse: collapse; width: 100%; }}
 th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e3e8f0; }}
 th {{ font: 14px ui-monospace, monospace; color: #52607a; width: 45%; }}
 a.button {{ display: inline-block; margin-top: 1.5rem; padding: .5rem 1rem; border-radius: 8px;
        background: #1f5eff; color: #fff; text-decoration: none; }}
</style></head>
<body><main>
<h1>Hello, <span id="user">{user}</span></h1>
<p>This demo tool has no login code of its own. keyway-proxy signed you in and told it who you
are: <strong id="email">{email}</strong>, groups <strong id="groups">{groups}</strong>.</p>
<table aria-label="Identity headers received">{rows}</table>
<a class="button" href="/oauth2/sign_out">Sign out</a>
</main></body></html>"#
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html))
}

/// Minimal HTML escaping for text and attribute contexts.
fn escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_body(path: &str, headers: &[(&str, &str)]) -> String {
        let mut req = Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = router()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn page_shows_escaped_identity() {
        let body = get_body(
            "/",
            &[
                ("x-forwarded-user", "alice"),
                ("x-forwarded-email", "<b>@x"),
            ],
        )
        .await;
        assert!(body.contains(r#"<span id="user">alice</span>"#));
        assert!(body.contains("&lt;b&gt;@x"));
        assert!(!body.contains("<b>@x"));
    }

    #[tokio::test]
    async fn whoami_lists_only_present_headers() {
        let body = get_body("/api/whoami", &[("x-forwarded-groups", "engineering")]).await;
        assert_eq!(body, r#"{"x-forwarded-groups":"engineering"}"#);
    }
}
