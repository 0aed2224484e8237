//! The operators' web console at `/console`: live calls, recent calls and their timelines,
//! scenario graphs with a call's path, campaigns, dead letters — served by the API process
//! behind the API's own token.
//!
//! **What it is.** One HTML shell, one stylesheet and one script (vanilla JavaScript, no
//! framework, no build step), embedded in the binary with `include_str!`. The script reads
//! the public `/v1` API — the console has no private endpoints, so what it shows is what an
//! integration sees, and the API contract test covers it.
//!
//! **Sign-in.** `/console/login` takes the API token once and answers with a session cookie
//! (`HttpOnly; SameSite=Strict; Path=/`, 12 hours, `Secure` behind an HTTPS proxy). The
//! cookie is not the token: it is `v1.<expiry>.<HMAC-SHA256(token, expiry)>`, so it ends by
//! itself, cannot be turned back into the token, and a new token ends every session. An
//! HttpOnly cookie rather than the token in `sessionStorage`: the console shows text that
//! callers and the CRM control (names, transcripts, variables); if an escaping mistake ever
//! let a script in, it could act during the visit but could not carry the long-lived API
//! token away. The script only ever writes text nodes (never `innerHTML`) and the pages
//! send a Content-Security-Policy that allows no inline script, which makes that mistake
//! hard to make.
//!
//! **Cross-site requests.** The cookie is `SameSite=Strict`; on top of that, a request
//! authenticated by the cookie that changes something (anything but GET/HEAD) must carry
//! the header `X-Ivrflow-Console: 1` — a header a cross-site form cannot add and a
//! cross-site script cannot send without a CORS preflight, which this server never grants.
//!
//! Not here: the API itself (`crate::api`), the campaign endpoints the campaigns page uses
//! (`GET /v1/campaigns`, `POST /v1/campaigns/{name}/pause|resume`; without them the page
//! says so).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::api::ApiState;
use crate::crm::signing::constant_time_eq;

/// The session cookie's name.
pub const COOKIE: &str = "ivrflow_console";
/// The header a cookie-authenticated request must carry to change anything.
pub const CSRF_HEADER: &str = "x-ivrflow-console";
/// How long a sign-in lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 3600);

const INDEX_HTML: &str = include_str!("../console/index.html");
const LOGIN_HTML: &str = include_str!("../console/login.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

/// No inline script or style, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mac(token: &str, expiry: u64) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of any length");
    m.update(format!("ivrflow-console|v1|{expiry}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// A session value for `token`, valid until `expiry` (Unix seconds).
pub fn session_value(token: &str, expiry: u64) -> String {
    format!("v1.{expiry}.{}", mac(token, expiry))
}

/// Whether `value` is a session for `token` that has not expired at `now`.
pub fn session_valid(token: &str, value: &str, now: u64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(expiry), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(expiry) = expiry.parse::<u64>() else {
        return false;
    };
    expiry > now
        && expiry <= now + SESSION.as_secs() + 60
        && constant_time_eq(mac(token, expiry).as_bytes(), sig.as_bytes())
}

/// The session cookie's value in `headers`, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// How a request proved it may use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A valid console session cookie, allowed for this method.
    Valid,
    /// A valid cookie on a request that changes something without [`CSRF_HEADER`].
    MissingCsrfHeader,
    /// No cookie, or an expired or forged one.
    None,
}

/// Check the console session of a request (used by the API's token check when the request
/// has no `Authorization` header).
pub fn check_session(token: &str, method: &Method, headers: &HeaderMap) -> Session {
    match cookie(headers) {
        Some(v) if session_valid(token, v, unix_now()) => {
            let safe = matches!(*method, Method::GET | Method::HEAD);
            if safe || headers.get(CSRF_HEADER).is_some_and(|v| v == "1") {
                Session::Valid
            } else {
                Session::MissingCsrfHeader
            }
        }
        _ => Session::None,
    }
}

fn page(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(to: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

/// Whether the request reached us over HTTPS (through a proxy that says so).
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The console's routes (merged into the API router; the shell is behind the token, the
/// static script and stylesheet hold no data and are open).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(index))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route(
            "/console/app.js",
            get(|| async {
                page(
                    StatusCode::OK,
                    "text/javascript; charset=utf-8",
                    APP_JS.to_owned(),
                )
            }),
        )
        .route(
            "/console/app.css",
            get(|| async {
                page(
                    StatusCode::OK,
                    "text/css; charset=utf-8",
                    APP_CSS.to_owned(),
                )
            }),
        )
}

async fn index(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), st.token.as_bytes()));
    if bearer || check_session(&st.token, &Method::GET, &headers) == Session::Valid {
        let html = INDEX_HTML.replace("{{VERSION}}", env!("CARGO_PKG_VERSION"));
        page(StatusCode::OK, "text/html; charset=utf-8", html)
    } else {
        redirect("/console/login")
    }
}

fn login_html(error: &str) -> String {
    let escaped = error
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    LOGIN_HTML.replace("{{ERROR}}", &escaped)
}

async fn login_page() -> Response {
    page(StatusCode::OK, "text/html; charset=utf-8", login_html(""))
}

/// `POST /console/login` (form `token=…`): a session cookie and back to the console, or
/// the form again with 401 (after a pause, to slow guessing).
async fn login(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = crate::api::parse_query(&String::from_utf8_lossy(&body));
    let given = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), st.token.as_bytes()) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        tracing::warn!("console sign-in with a wrong token");
        return page(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            login_html("That is not the API token (IVRFLOW_API_TOKEN)."),
        );
    }
    let expiry = unix_now() + SESSION.as_secs();
    let mut cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session_value(&st.token, expiry),
        SESSION.as_secs()
    );
    if https(&headers) {
        cookie.push_str("; Secure");
    }
    tracing::info!("console sign-in");
    let mut r = redirect("/console/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout() -> Response {
    let mut r = redirect("/console/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ivrflow_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    #[test]
    fn sessions_expire_and_cannot_be_forged() {
        let now = 1_000_000;
        let v = session_value(TOKEN, now + 3600);
        assert!(session_valid(TOKEN, &v, now));
        assert!(!session_valid(TOKEN, &v, now + 3600), "expired");
        assert!(!session_valid("another-token-000000", &v, now), "new token");
        let forged = v.replace(&format!(".{}.", now + 3600), &format!(".{}.", now + 7200));
        assert!(!session_valid(TOKEN, &forged, now));
        // An expiry beyond the session length was not made by us.
        let far = session_value(TOKEN, now + 10 * SESSION.as_secs());
        assert!(!session_valid(TOKEN, &far, now));
        for junk in ["", "v1", "v1.x.y", "v2.1.x", TOKEN] {
            assert!(!session_valid(TOKEN, junk, now), "{junk}");
        }
        assert!(!v.contains(TOKEN));
    }

    #[test]
    fn changes_need_the_console_header() {
        let v = session_value(TOKEN, unix_now() + 60);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={v}")).unwrap(),
        );
        assert_eq!(check_session(TOKEN, &Method::GET, &h), Session::Valid);
        assert_eq!(
            check_session(TOKEN, &Method::POST, &h),
            Session::MissingCsrfHeader
        );
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert_eq!(check_session(TOKEN, &Method::POST, &h), Session::Valid);
        assert_eq!(
            check_session(TOKEN, &Method::GET, &HeaderMap::new()),
            Session::None
        );
    }
}
