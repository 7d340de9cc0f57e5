//! The web dashboard (`/`): one page, its script and its styles, built
//! into the binary from `crates/skyward-server/ui/` (hand-written, no
//! build step, no framework, no CDN: nothing is fetched but these three
//! files and the API).
//!
//! The page holds no data. After a login with a token (kept in the tab's
//! `sessionStorage`, sent as `Authorization: Bearer`, never a cookie, so
//! no other site can make the browser act with it) the script reads the
//! same `/v1/…` endpoints the CLI reads, with the token's scope: a read
//! token sees, a submit token may cancel, an admin sees every team.
//! Everything a workload's submitter wrote (names, teams, logs) is put in
//! the page as text, never as markup.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

pub const INDEX_HTML: &str = include_str!("../ui/index.html");
pub const APP_JS: &str = include_str!("../ui/app.js");
pub const APP_CSS: &str = include_str!("../ui/app.css");

/// What the page may load and run: its own files and the API, nothing
/// inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The files the dashboard is made of: (name, content type, text).
pub const FILES: [(&str, &str, &str); 3] = [
    ("index.html", "text/html; charset=utf-8", INDEX_HTML),
    ("app.js", "text/javascript; charset=utf-8", APP_JS),
    ("app.css", "text/css; charset=utf-8", APP_CSS),
];

/// Each file's entity tag: a hash of its text, so a browser revalidates
/// with one short request and re-downloads only after an upgrade.
fn etag(name: &str) -> Option<&'static str> {
    static TAGS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(n, _, t)| {
                let h = crate::auth::hash(t);
                (n.to_string(), format!("\"{}\"", &h[..h.len().min(16)]))
            })
            .collect()
    });
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.as_str())
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some((name, ctype, text)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such file in the dashboard\n",
        )
            .into_response();
    };
    let tag = etag(name);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .zip(tag)
        .is_some_and(|(v, tag)| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, *ctype)], *text).into_response()
    };
    let h = resp.headers_mut();
    for (k, v) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if let Some(v) = tag.and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert(header::ETAG, v);
    }
    resp
}

pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file == "index.html" {
        return serve("", &headers);
    }
    serve(&file, &headers)
}
