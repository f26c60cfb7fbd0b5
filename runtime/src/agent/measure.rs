//! `POST /v1/profile` and `POST /v1/profile/group`: models stream into a scratch folder of their own, then
//! wait for the device (one measurement at a time, with inference and deployment held off) and are timed in
//! a worker process that is killed when it overruns.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::api::{blocking, Answer, ApiError, State};
use super::body;
use super::settings::MeasureSettings;
use crate::measure_job::{run_in_worker, MeasureJob, MeasureOutcome, WorkerError};

/// Most models one `POST /v1/profile/group` may carry.
pub const MAX_GROUP: usize = 256;

fn query_pairs(query: Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn settings(pairs: &[(String, String)]) -> Result<MeasureSettings, ApiError> {
    MeasureSettings::from_pairs(pairs).map_err(ApiError::bad_request)
}

pub(super) async fn profile(
    Shared(state): Shared<Arc<State>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let settings = settings(&query_pairs(query)?)?;
    let mut outcomes = measure(&state, settings, None, &headers, body).await?;
    Ok(Json(json!(outcomes.remove(0))).into_response())
}

/// `sizes=N1,N2,..` splits the body into models; the other query parameters are the settings.
pub(super) async fn profile_group(
    Shared(state): Shared<Arc<State>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let (sizes, rest): (Vec<_>, Vec<_>) = query_pairs(query)?
        .into_iter()
        .partition(|(key, _)| key == "sizes");
    let sizes = group_sizes(sizes.last().map(|(_, v)| v.as_str()))?;
    let settings = settings(&rest)?;
    let outcomes = measure(&state, settings, Some(&sizes), &headers, body).await?;
    Ok(Json(json!({ "results": outcomes })).into_response())
}

/// The `sizes` parameter: positive byte counts, at most [`MAX_GROUP`], whose sum does not overflow.
fn group_sizes(list: Option<&str>) -> Result<Vec<usize>, ApiError> {
    let list = list.ok_or_else(|| {
        ApiError::bad_request(
            "missing query parameter 'sizes' (bytes of each model, comma-separated)",
        )
    })?;
    let sizes: Vec<usize> = list
        .split(',')
        .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::bad_request("query parameter 'sizes': expected positive whole numbers")
        })?;
    if sizes.len() > MAX_GROUP {
        return Err(ApiError::bad_request(format!(
            "{} models in one group; at most {MAX_GROUP}",
            sizes.len()
        )));
    }
    // Checked: sizes near usize::MAX must be a 400, not an overflow.
    sizes
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n))
        .ok_or_else(|| ApiError::bad_request("query parameter 'sizes': the sizes overflow"))?;
    Ok(sizes)
}

/// Stores the models, then measures them together in a worker process once the device is free, with the
/// time limit scaled by their number.
async fn measure(
    state: &Arc<State>,
    settings: MeasureSettings,
    sizes: Option<&[usize]>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<MeasureOutcome>, ApiError> {
    let folder = tempfile::tempdir_in(state.scratch.path())
        .map_err(|e| ApiError::internal(format!("creating a scratch folder: {e}")))?;
    let models = body::into_files(body, headers, state.body, sizes, folder.path()).await?;
    let timeout = state.worker_timeout * models.len() as u32;
    let mut engine = settings.engine;
    // One engine cache for every measurement of this machine (and its command-line tools).
    engine.tensorrt.cache = Some(crate::backend::default_tensorrt_cache());
    let job = MeasureJob {
        models,
        engine,
        protocol: settings.protocol,
        batch: settings.batch,
    };
    let exe = state.worker_exe.clone();
    // Held by the blocking task, so a client that hangs up does not free the device early.
    let device = state.measuring.clone().write_owned().await;
    blocking(move || {
        let _device = device;
        let _folder = folder;
        run_in_worker(&exe, &job, timeout).map_err(|e| match e {
            WorkerError::Job(message) => ApiError::bad_request(message),
            e @ WorkerError::Timeout(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string())
            }
            e => ApiError::internal(e.to_string()),
        })
    })
    .await
}
