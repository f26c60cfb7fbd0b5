//! The agent's endpoints and the checks every request passes before its handler runs: a panic becomes a
//! 500, the token is checked in constant time, an announced body over the limit is refused before it is
//! read, and beyond the in-flight limit work is refused with 503 (health and device checks always answer).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State as Shared};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use super::api::{ApiError, State};
use super::{body, measure, models};
use crate::backend;

/// Paths that need no in-flight permit: cheap, and what an operator checks while the agent is busy.
const ALWAYS_ANSWERED: [&str; 2] = ["/v1/health", "/v1/device"];

/// The whole API, with `extra` routes (tests add failing ones) behind the same checks.
pub(super) fn router(state: Arc<State>, extra: Router<Arc<State>>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/device", get(device))
        .route("/v1/profile", post(measure::profile))
        .route("/v1/profile/group", post(measure::profile_group))
        .route("/v1/models", get(models::list))
        .route(
            "/v1/models/{name}",
            put(models::deploy).delete(models::delete),
        )
        .route("/v1/models/{name}/infer", post(models::infer))
        .merge(extra)
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(middleware::from_fn(log))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn device() -> Json<serde_json::Value> {
    Json(
        json!({ "fingerprint": crate::fingerprint::detect(), "backends": backend::availability() }),
    )
}

async fn no_such_endpoint(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; the agent keeps serving");
    ApiError::internal("the agent failed while handling this request (a bug; it keeps serving)")
        .into_response()
}

/// Token, announced body size and the in-flight limit, in that order. A body that is refused, or left
/// unread by its handler, lingers (see [`body::Lingering`]).
async fn admit(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    let request = request.map(body::Lingering::wrap);
    if let Err(e) = authorize(&state, &request) {
        return e.into_response();
    }
    let limit = state.body.max_bytes;
    if body::announced_length(request.headers()).is_some_and(|n| n > limit as u64) {
        return body::too_large(limit).into_response();
    }
    if ALWAYS_ANSWERED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is handling as many requests as it allows (--max-concurrent); retry later",
        )
        .retry_after(1)
        .into_response();
    };
    next.run(request).await
}

fn authorize(state: &State, request: &Request) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let sent = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "));
    match sent {
        // Constant time, so the answer's timing says nothing about how much of a guess was right.
        Some(t)
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                t.as_bytes(),
                token.as_bytes(),
            )) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong token")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this agent needs 'Authorization: Bearer <token>'",
        )),
    }
}

async fn log(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        "{method} {path} -> {} in {:.1} ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1e3
    );
    response
}
