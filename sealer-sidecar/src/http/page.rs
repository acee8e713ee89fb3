//! The live page at `/`: one HTML file, a script and a style sheet, built into the binary
//! (nothing is fetched from anywhere else). The page holds no data; it reads the log through
//! the read API ([`crate::http::read`]) with the browser's credentials.
//!
//! With a read token configured, `/` asks for it with HTTP Basic authentication (any user
//! name, the read token as password), which the browser then sends with every request of the
//! page, the live stream included.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::auth::Role;
use crate::store::Store;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// Everything the page loads comes from this sealer; nothing else may run in it.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn with_security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the page, behind the read token.
pub async fn get_index<S: Store + Clone>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = state.tokens.check(Role::Read, &headers) {
        // A browser asks for the token as a password.
        let refused = refused.challenge(
            "Basic realm=\"ingress-audit sealer: any user name, the read token as password\"",
        );
        return with_security_headers(refused.into_response());
    }
    with_security_headers(
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            INDEX_HTML,
        )
            .into_response(),
    )
}

/// `GET /assets/app.js` (static code, no data).
pub async fn get_app_js() -> Response {
    with_security_headers(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            APP_JS,
        )
            .into_response(),
    )
}

/// `GET /assets/style.css` (static, no data).
pub async fn get_style_css() -> Response {
    with_security_headers(
        (
            [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
            STYLE_CSS,
        )
            .into_response(),
    )
}
