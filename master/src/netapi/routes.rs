//! The URL map, salt-api's `rest_cherrypy` shapes: see the module docs of
//! [`crate::netapi`] for the list.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use brine_protocol::Value;
use brine_protocol::pyfmt::{is_truthy, py_str};
use tracing::{info, warn};

use super::api::Api;
use super::auth::TokenData;
use super::clients::CLIENTS;
use super::request::{self, Parsed};
use super::respond::{ApiError, Format, allowed_origin, negotiate, reply};
use super::server::PeerAddr;
use super::{events, tar, ui, wheel};

type Shared = State<Arc<Api>>;

/// The router over `api`.
pub(crate) fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", get(root).post(run_session))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/run", post(run_tokens))
        .route("/token", post(token))
        .route("/minions", get(minions).post(minions_async))
        .route("/minions/{mid}", get(minion))
        .route("/jobs", get(jobs))
        .route("/jobs/{jid}", get(job))
        .route("/keys", get(keys).post(gen_keys))
        .route("/keys/{mid}", get(key_finger))
        .route("/events", get(sse))
        .route("/ws", get(ws))
        .route("/ws/{token}", get(ws_path))
        .route("/hook", post(hook_root))
        .route("/hook/{*path}", post(hook))
        .route("/stats", get(stats))
        .route("/app", get(app))
        .route("/app/{*rest}", get(app))
        .route("/static/{*path}", get(static_asset))
        .fallback(any(not_found))
        .layer(middleware::from_fn_with_state(Arc::clone(&api), edge))
        .with_state(api)
}

/// Per request: counts it, enforces `authorized_ips`, answers CORS
/// preflights and adds CORS headers (when `cors_origin` is set).
async fn edge(State(api): Shared, request: Request, next: Next) -> Response {
    api.stats.requests.fetch_add(1, Ordering::Relaxed);
    if !api.rest.authorized_ips.is_empty() {
        let peer = request
            .extensions()
            .get::<PeerAddr>()
            .map(|p| p.0.ip().to_string());
        let allowed = peer
            .as_deref()
            .is_some_and(|ip| api.rest.authorized_ips.iter().any(|a| a == ip));
        if !allowed {
            warn!(peer = ?peer, "REST API request refused: address not in authorized_ips");
            return ApiError::Forbidden("Bad IP".to_owned()).into_response();
        }
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allow = allowed_origin(&api.rest.cors_origin, origin.as_deref());
    if request.method() == Method::OPTIONS && !api.rest.cors_origin.is_empty() {
        let wants = request
            .headers()
            .get("access-control-request-method")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut response = Response::new(Body::empty());
        if let Some(allow) = &allow {
            add_cors(response.headers_mut(), allow);
            if matches!(wants.as_deref(), Some("GET" | "POST")) {
                let h = response.headers_mut();
                h.insert(
                    "access-control-allow-methods",
                    HeaderValue::from_static("GET, POST"),
                );
                h.insert(
                    "access-control-allow-headers",
                    HeaderValue::from_static("Content-Type, X-Auth-Token, X-Requested-With"),
                );
                h.insert("access-control-max-age", HeaderValue::from_static("1400"));
            }
        }
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(allow) = &allow {
        add_cors(response.headers_mut(), allow);
    }
    response
}

fn add_cors(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert("access-control-allow-origin", value);
    }
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("GET, POST"),
    );
    headers.insert(
        "access-control-allow-credentials",
        HeaderValue::from_static("true"),
    );
}

/// The format a request asked for, or the 406 response.
fn format(headers: &HeaderMap) -> Result<Format, ApiError> {
    negotiate(headers).ok_or_else(|| {
        ApiError::NotAcceptable(
            "None of the requested media types (Accept) can be produced".to_owned(),
        )
    })
}

/// Runs `work` with the negotiated format; errors render in it.
async fn answer<F>(headers: &HeaderMap, work: F) -> Response
where
    F: AsyncFnOnce(Format) -> Result<Response, ApiError>,
{
    let format = match format(headers) {
        Ok(format) => format,
        Err(err) => return err.into_response(),
    };
    match work(format).await {
        Ok(response) => response,
        Err(err) => err.into_response_as(format),
    }
}

fn wrap_return(items: Vec<Value>) -> Value {
    [("return", Value::Array(items))].into_iter().collect()
}

async fn body(api: &Api, headers: &HeaderMap, body: Body) -> Result<Parsed, ApiError> {
    request::read(headers, body, api.rest.max_request_body_size).await
}

async fn run_all(
    api: &Arc<Api>,
    chunks: &[Value],
    token: &TokenData,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(api.run_chunk(chunk, token).await?);
    }
    Ok(out)
}

async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return app().await;
    }
    answer(&headers, async |format| {
        let body: Value = [
            ("return", Value::from("Welcome")),
            (
                "clients",
                Value::Array(CLIENTS.iter().map(|c| Value::from(*c)).collect()),
            ),
        ]
        .into_iter()
        .collect();
        Ok(reply(format, StatusCode::OK, &body))
    })
    .await
}

async fn run_session(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    answer(&headers, async |format| {
        let token = api.session(request::session_id(&headers).as_deref())?;
        let chunks = request::lowstates(body(&api, &headers, raw).await?.data)?;
        let out = run_all(&api, &chunks, &token).await?;
        Ok(reply(format, StatusCode::OK, &wrap_return(out)))
    })
    .await
}

/// `POST /run`: no session; each chunk carries an eauth `token` or
/// `username`/`password`/`eauth`.
async fn run_tokens(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    answer(&headers, async |format| {
        let chunks = request::lowstates(body(&api, &headers, raw).await?.data)?;
        let mut out = Vec::new();
        for chunk in &chunks {
            let token = if let Some(token) = chunk.get("token") {
                let token = py_str(token);
                if token.is_empty() || !token.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(ApiError::Unauthorized("Invalid token".to_owned()));
                }
                api.logins
                    .by_token(&token)
                    .ok_or_else(|| ApiError::Unauthorized("Token expired or invalid".to_owned()))?
            } else if chunk.get("eauth").is_some() {
                api.login(chunk, false).await?.data
            } else {
                return Err(ApiError::Unauthorized(
                    "No authentication credentials given".to_owned(),
                ));
            };
            out.extend(api.run_chunk(chunk, &token).await?);
        }
        Ok(reply(format, StatusCode::OK, &wrap_return(out)))
    })
    .await
}

/// `POST /token`: an eauth token for `/run`, as a bare list.
async fn token(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    answer(&headers, async |format| {
        let chunks = request::lowstates(body(&api, &headers, raw).await?.data)?;
        let creds = chunks.first().cloned().unwrap_or_default();
        for key in ["username", "password", "eauth"] {
            if creds.get(key).is_none() {
                return Err(ApiError::BadRequest(format!("Missing '{key}'")));
            }
        }
        let data = api.login(&creds, false).await?.data;
        let item: Value = [
            ("start", Value::Float(data.start)),
            ("token", Value::from(data.token.as_str())),
            ("expire", Value::Float(data.expire)),
            ("name", Value::from(data.name.as_str())),
            ("eauth", Value::from(data.eauth.as_str())),
        ]
        .into_iter()
        .collect();
        Ok(reply(format, StatusCode::OK, &Value::Array(vec![item])))
    })
    .await
}

async fn login_form(headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        let body: Value = [
            ("status", Value::from(200)),
            ("return", Value::from("Please log in")),
        ]
        .into_iter()
        .collect();
        let mut response = reply(format, StatusCode::OK, &body);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Session"),
        );
        Ok(response)
    })
    .await
}

fn cookie(api: &Api, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if api.rest.uses_tls() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "session_id={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

async fn login(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    answer(&headers, async |format| {
        api.client
            .check_master()
            .await
            .map_err(|e| ApiError::Unavailable(format!("Salt Master is not available: {e}")))?;
        let data = body(&api, &headers, raw).await?.data;
        let creds = match data {
            Some(Value::Array(items)) => items.into_iter().next().unwrap_or_default(),
            Some(other) => other,
            None => Value::map(),
        };
        let login = api.login(&creds, true).await?;
        let perms = api.login_perms(&login.data);
        info!(user = %login.data.name, eauth = %login.data.eauth, "REST API login");
        let item: Value = [
            ("token", Value::from(login.session.as_str())),
            ("expire", Value::Float(login.data.expire)),
            ("start", Value::Float(login.data.start)),
            ("user", Value::from(login.data.name.as_str())),
            ("eauth", Value::from(login.data.eauth.as_str())),
            (
                "perms",
                if perms.is_empty() {
                    Value::map()
                } else {
                    Value::Array(perms)
                },
            ),
        ]
        .into_iter()
        .collect();
        let mut response = reply(format, StatusCode::OK, &wrap_return(vec![item]));
        if let Ok(value) = HeaderValue::from_str(&login.session) {
            response.headers_mut().insert("x-auth-token", value);
        }
        if let Some(value) = cookie(&api, &login.session, api.config.token_expire.as_secs()) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        Ok(response)
    })
    .await
}

async fn logout(State(api): Shared, headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        let id = request::session_id(&headers);
        api.session(id.as_deref())?;
        if let Some(id) = &id {
            api.logins.logout(id);
        }
        let body: Value = [("return", Value::from("Your token has been cleared"))]
            .into_iter()
            .collect();
        let mut response = reply(format, StatusCode::OK, &body);
        if let Some(value) = cookie(&api, "", 0) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        Ok(response)
    })
    .await
}

/// One lowstate on behalf of the session's user.
async fn one(api: &Arc<Api>, headers: &HeaderMap, chunk: Value) -> Result<Vec<Value>, ApiError> {
    let token = api.session(request::session_id(headers).as_deref())?;
    api.run_chunk(&chunk, &token).await
}

fn low(pairs: &[(&str, &str)]) -> Value {
    pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect()
}

async fn grains_of(api: Arc<Api>, headers: HeaderMap, tgt: &str) -> Response {
    answer(&headers, async |format| {
        let chunk = low(&[("client", "local"), ("tgt", tgt), ("fun", "grains.items")]);
        let out = one(&api, &headers, chunk).await?;
        Ok(reply(format, StatusCode::OK, &wrap_return(out)))
    })
    .await
}

async fn minions(State(api): Shared, headers: HeaderMap) -> Response {
    grains_of(api, headers, "*").await
}

async fn minion(State(api): Shared, Path(mid): Path<String>, headers: HeaderMap) -> Response {
    grains_of(api, headers, &mid).await
}

/// `POST /minions`: lowstates run as `local_async`; 202 with job links.
async fn minions_async(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    answer(&headers, async |format| {
        let token = api.session(request::session_id(&headers).as_deref())?;
        let chunks = request::lowstates(body(&api, &headers, raw).await?.data)?;
        let mut out = Vec::new();
        for mut chunk in chunks {
            if matches!(chunk, Value::Map(_)) {
                chunk.insert("client", "local_async");
            }
            out.extend(api.run_chunk(&chunk, &token).await?);
        }
        let links: Vec<Value> = out
            .iter()
            .filter_map(|r| r.get("jid").and_then(Value::as_str))
            .map(|jid| {
                [("href", Value::from(format!("/jobs/{jid}")))]
                    .into_iter()
                    .collect()
            })
            .collect();
        let body: Value = [
            ("return", Value::Array(out)),
            (
                "_links",
                [("jobs", Value::Array(links))]
                    .into_iter()
                    .collect::<Value>(),
            ),
        ]
        .into_iter()
        .collect();
        Ok(reply(format, StatusCode::ACCEPTED, &body))
    })
    .await
}

async fn jobs(State(api): Shared, headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        let out = one(
            &api,
            &headers,
            low(&[("client", "runner"), ("fun", "jobs.list_jobs")]),
        )
        .await?;
        Ok(reply(format, StatusCode::OK, &wrap_return(out)))
    })
    .await
}

async fn job(State(api): Shared, Path(jid): Path<String>, headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        let chunk = low(&[
            ("client", "runner"),
            ("fun", "jobs.list_job"),
            ("jid", &jid),
        ]);
        let out = one(&api, &headers, chunk).await?;
        let info = out.into_iter().next().unwrap_or_default();
        let mut returns = Value::map();
        for (id, result) in info
            .get("Result")
            .and_then(Value::as_map)
            .unwrap_or_default()
        {
            returns.insert(
                &py_str(id),
                result.get("return").cloned().unwrap_or(Value::Nil),
            );
        }
        let body: Value = [
            ("info", Value::Array(vec![info])),
            ("return", Value::Array(vec![returns])),
        ]
        .into_iter()
        .collect();
        Ok(reply(format, StatusCode::OK, &body))
    })
    .await
}

/// The `return` inside a wheel reply.
fn wheel_return(out: Vec<Value>) -> Value {
    out.into_iter()
        .next()
        .and_then(|r| r.get("data").and_then(|d| d.get("return")).cloned())
        .unwrap_or_else(Value::map)
}

async fn keys(State(api): Shared, headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        let out = one(
            &api,
            &headers,
            low(&[("client", "wheel"), ("fun", "key.list_all")]),
        )
        .await?;
        let body: Value = [("return", wheel_return(out))].into_iter().collect();
        Ok(reply(format, StatusCode::OK, &body))
    })
    .await
}

async fn key_finger(State(api): Shared, Path(mid): Path<String>, headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        let chunk = low(&[("client", "wheel"), ("fun", "key.finger"), ("match", &mid)]);
        let out = one(&api, &headers, chunk).await?;
        let body: Value = [("return", wheel_return(out))].into_iter().collect();
        Ok(reply(format, StatusCode::OK, &body))
    })
    .await
}

/// `POST /keys`: credentials and `mid` in the body; a new key pair for
/// `mid`, accepted, returned as a tar of `minion.pem` and `minion.pub`.
async fn gen_keys(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    answer(&headers, async |_format| {
        let data = body(&api, &headers, raw).await?.data;
        let creds = match data {
            Some(Value::Array(items)) => items.into_iter().next().unwrap_or_default(),
            Some(other) => other,
            None => Value::map(),
        };
        let Some(mid) = creds.get("mid").map(py_str).filter(|m| !m.is_empty()) else {
            return Err(ApiError::BadRequest("Missing 'mid'".to_owned()));
        };
        let token = api.login(&creds, false).await?.data;
        let auth_list = api.auth_list(&token).unwrap_or_default();
        if !super::auth::perms::spec_check(&auth_list, "key.gen_accept", &[], &[], "wheel")
            .unwrap_or(false)
        {
            return Err(ApiError::Forbidden(
                "Authorization error occurred.".to_owned(),
            ));
        }
        let keysize = creds
            .get("keysize")
            .and_then(|v| v.as_u64().or_else(|| py_str(v).parse().ok()))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(api.config.keysize);
        if !(1024..=16384).contains(&keysize) {
            return Err(ApiError::BadRequest(
                "keysize must be between 1024 and 16384".to_owned(),
            ));
        }
        let force = creds.get("force").is_some_and(is_truthy);
        let pair = {
            let api = Arc::clone(&api);
            let mid = mid.clone();
            tokio::task::spawn_blocking(move || wheel::gen_accept(&api, &mid, keysize, force))
                .await
                .map_err(|e| ApiError::Internal(format!("key generation failed: {e}")))?
                .map_err(|e| ApiError::BadRequest(e.to_string()))?
        };
        let Some((private, public)) = pair else {
            return Err(ApiError::BadRequest(format!(
                "A key for {mid} exists; send force=true to replace it"
            )));
        };
        info!(user = %token.name, minion = %mid, "REST API generated and accepted a minion key");
        let archive = tar::archive(&[
            ("minion.pem", 0o600, private.as_bytes()),
            ("minion.pub", 0o644, public.as_bytes()),
        ]);
        let mut response = Response::new(Body::from(archive));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        );
        if let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"saltkeys-{mid}.tar\""))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(response)
    })
    .await
}

/// The login for an event stream: `?token=<session>`, `?salt_token=<eauth
/// token>`, `X-Auth-Token` or the cookie, or `path_token`.
fn stream_login(
    api: &Api,
    uri: &Uri,
    headers: &HeaderMap,
    path_token: Option<&str>,
) -> Result<Arc<TokenData>, ApiError> {
    let query = uri.query();
    if let Some(token) = request::query_param(query, "salt_token") {
        return api
            .logins
            .by_token(&token)
            .ok_or_else(|| ApiError::Unauthorized("Token expired or invalid".to_owned()));
    }
    let session = path_token
        .map(str::to_owned)
        .or_else(|| request::query_param(query, "token"))
        .or_else(|| request::session_id(headers));
    api.session(session.as_deref())
}

async fn sse(State(api): Shared, uri: Uri, headers: HeaderMap) -> Response {
    match stream_login(&api, &uri, &headers, None) {
        Ok(token) => events::sse(&api, token),
        Err(err) => err.into_response(),
    }
}

async fn ws_with(
    api: Arc<Api>,
    uri: Uri,
    headers: HeaderMap,
    path: Option<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    match stream_login(&api, &uri, &headers, path.as_deref()) {
        Ok(token) => upgrade.on_upgrade(move |socket| events::websocket(api, token, socket)),
        Err(err) => err.into_response(),
    }
}

async fn ws(
    State(api): Shared,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    ws_with(api, uri, headers, None, upgrade).await
}

async fn ws_path(
    State(api): Shared,
    Path(token): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    ws_with(api, uri, headers, Some(token), upgrade).await
}

async fn hook_root(State(api): Shared, headers: HeaderMap, raw: Body) -> Response {
    fire_hook(api, headers, String::new(), raw).await
}

async fn hook(
    State(api): Shared,
    Path(path): Path<String>,
    headers: HeaderMap,
    raw: Body,
) -> Response {
    fire_hook(api, headers, path, raw).await
}

/// `POST /hook/<path>`: fires `salt/netapi/hook/<path>` with the body.
async fn fire_hook(api: Arc<Api>, headers: HeaderMap, path: String, raw: Body) -> Response {
    answer(&headers, async |format| {
        if !api.rest.webhook_disable_auth {
            api.session(request::session_id(&headers).as_deref())?;
        }
        let parsed = body(&api, &headers, raw).await?;
        let mut header_map = Value::map();
        for (name, value) in &headers {
            if matches!(name.as_str(), "cookie" | "x-auth-token" | "authorization") {
                continue;
            }
            header_map.insert(
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
        let data: Value = [
            ("body", Value::from(parsed.raw)),
            ("post", parsed.data.unwrap_or_else(Value::map)),
            ("headers", header_map),
        ]
        .into_iter()
        .collect();
        let path = path.trim_matches('/');
        let tag = if path.is_empty() {
            "salt/netapi/hook".to_owned()
        } else {
            format!("salt/netapi/hook/{path}")
        };
        api.shared.events.fire(&tag, data);
        let body: Value = [("success", Value::Bool(true))].into_iter().collect();
        Ok(reply(format, StatusCode::OK, &body))
    })
    .await
}

async fn stats(State(api): Shared, headers: HeaderMap) -> Response {
    answer(&headers, async |format| {
        if !api.rest.stats_disable_auth {
            api.session(request::session_id(&headers).as_deref())?;
        }
        let count = |n: &std::sync::atomic::AtomicU64| Value::from(n.load(Ordering::Relaxed));
        let body: Value = [
            ("requests", count(&api.stats.requests)),
            ("event_clients", count(&api.stats.event_clients)),
            (
                "event_clients_dropped",
                count(&api.stats.event_clients_dropped),
            ),
        ]
        .into_iter()
        .collect();
        Ok(reply(format, StatusCode::OK, &body))
    })
    .await
}

fn asset_response(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn app() -> Response {
    let (content_type, bytes) = ui::index();
    asset_response(content_type, bytes)
}

async fn static_asset(Path(path): Path<String>) -> Response {
    match ui::asset(&path) {
        Some((content_type, bytes)) => asset_response(content_type, bytes),
        None => ApiError::NotFound.into_response(),
    }
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}
