//! The static files. The stylesheet is served under a name that holds a
//! hash of its content (`/static/passport.<hash>.css`, which the templates
//! link): cached for a year as immutable, since a changed file gets a new
//! name. The plain `/static/passport.css` stays for old references, to be
//! revalidated each time. Both carry an `ETag` and answer `If-None-Match`
//! with 304; both, like the icon and the pages, are compressed (gzip, br)
//! when the browser accepts it.

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use crate::http::error::PageError;
use crate::http::{AppState, PagePath};

const STYLESHEET: &str = include_str!("../../static/passport.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// Cache-Control of a file whose name changes with its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The first 10 hex digits of the stylesheet's SHA-256.
static STYLESHEET_HASH: LazyLock<String> = LazyLock::new(|| content_hash(STYLESHEET));

fn content_hash(body: &str) -> String {
    Sha256::digest(body.as_bytes())[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stylesheet's address, with its content hash (the pages link this).
pub(crate) fn stylesheet_href() -> String {
    format!("/static/passport.{}.css", *STYLESHEET_HASH)
}

/// The static routes, compressed.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(favicon))
        .layer(CompressionLayer::new())
}

/// A weak validator: the same content may go out gzip-, br- or not encoded.
fn etag(hash: &str) -> String {
    format!("W/\"{hash}\"")
}

/// Does `If-None-Match` name this `ETag` (weak comparison) or `*`?
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == bare(tag))
}

/// One file with its validator: 304 when the browser has it already.
fn serve(
    headers: &HeaderMap,
    body: &'static str,
    content_type: &'static str,
    cache: &'static str,
    hash: &str,
) -> Response {
    let tag = etag(hash);
    let mut resp = if not_modified(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(ETAG, v);
    }
    resp
}

/// `GET /static/{file}`: the stylesheet under its hashed name (immutable)
/// or its plain name (revalidated); anything else is the 404 page.
async fn static_file(PagePath(file): PagePath<String>, headers: HeaderMap) -> Response {
    let hash = STYLESHEET_HASH.as_str();
    let css = "text/css; charset=utf-8";
    if file == format!("passport.{hash}.css") {
        serve(&headers, STYLESHEET, css, IMMUTABLE, hash)
    } else if file == "passport.css" {
        serve(&headers, STYLESHEET, css, "public, no-cache", hash)
    } else {
        PageError::NotFound.into_response()
    }
}

/// The icon browsers ask for (SVG, which every current browser accepts).
pub(crate) async fn favicon(headers: HeaderMap) -> Response {
    static HASH: LazyLock<String> = LazyLock::new(|| content_hash(FAVICON));
    serve(
        &headers,
        FAVICON,
        "image/svg+xml",
        "public, max-age=86400",
        &HASH,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashed_name_follows_the_content() {
        assert_eq!(content_hash("a"), content_hash("a"));
        assert_ne!(content_hash("a"), content_hash("b"));
        assert_eq!(content_hash("a").len(), 10);
        assert!(stylesheet_href().starts_with("/static/passport."));
    }

    #[test]
    fn if_none_match_compares_weakly_and_in_lists() {
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, "W/\"abc\""));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"x\", \"abc\""));
        assert!(not_modified(&h, "W/\"abc\""));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("W/\"abd\""));
        assert!(!not_modified(&h, "W/\"abc\""));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, "W/\"abc\""));
    }
}
