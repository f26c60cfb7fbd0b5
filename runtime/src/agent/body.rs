//! Request bodies, read under the agent's limits: at most `max_bytes`, no silence longer than the read
//! timeout, the whole body within the request timeout. Models for measurement stream straight into files so
//! that an upload is never held in memory.

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::api::{ApiError, BodyLimits};

/// The `Content-Length` a request announces, if any (chunked bodies have none).
pub(super) fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The 413 answer.
pub(super) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than this agent's limit of {limit} bytes"),
    )
}

/// How long, and how much of, a body that was not read is still read (and thrown away) after the answer.
const LINGER: std::time::Duration = std::time::Duration::from_secs(3);
const LINGER_BYTES: usize = 256 << 20;

/// A request body that, when dropped before its end (a request refused before or while its body arrives),
/// keeps being read and thrown away for a short while in the background. A client that is still writing
/// then gets the answer instead of a broken pipe, and a keep-alive connection stays usable for its next
/// request; beyond [`LINGER`] or [`LINGER_BYTES`] the connection is closed.
pub(super) struct Lingering {
    inner: Option<Body>,
    ended: bool,
}

impl Lingering {
    pub fn wrap(body: Body) -> Body {
        Body::new(Lingering {
            inner: Some(body),
            ended: false,
        })
    }
}

impl http_body::Body for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let polled = std::pin::Pin::new(inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if self.ended || http_body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut discarded = 0usize;
            let _ = tokio::time::timeout(LINGER, async {
                while let Some(Ok(frame)) = body.frame().await {
                    discarded += frame.data_ref().map_or(0, |d| d.len());
                    if discarded > LINGER_BYTES {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

/// Pulls a body chunk by chunk under the limits.
struct Reader {
    body: Body,
    limits: BodyLimits,
    announced: Option<u64>,
    deadline: Instant,
    got: usize,
}

impl Reader {
    /// An announced length over the limit was already refused by the admission check
    /// (`routes::admit`); a body that grows past it while it streams is refused in [`Reader::next`].
    fn new(body: Body, headers: &HeaderMap, limits: BodyLimits) -> Reader {
        Reader {
            body,
            limits,
            announced: announced_length(headers),
            deadline: Instant::now() + limits.request_timeout,
            got: 0,
        }
    }

    fn progress(&self) -> String {
        match self.announced {
            Some(n) => format!("{} of {n} announced bytes", self.got),
            None => format!("{} bytes", self.got),
        }
    }

    /// The next chunk, `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            let wait = (Instant::now() + self.limits.read_timeout).min(self.deadline);
            let frame = match tokio::time::timeout_at(wait, self.body.frame()).await {
                Ok(None) => return Ok(None),
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => {
                    return Err(ApiError::bad_request(format!(
                        "truncated body: {} arrived ({e})",
                        self.progress()
                    )))
                }
                Err(_) if Instant::now() >= self.deadline => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "request timeout: the body did not arrive within {} s ({} arrived)",
                            self.limits.request_timeout.as_secs_f64(),
                            self.progress()
                        ),
                    ))
                }
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "read timeout: nothing arrived for {} s ({} arrived)",
                            self.limits.read_timeout.as_secs_f64(),
                            self.progress()
                        ),
                    ))
                }
            };
            if let Ok(data) = frame.into_data() {
                self.got += data.len();
                if self.got > self.limits.max_bytes {
                    return Err(too_large(self.limits.max_bytes));
                }
                return Ok(Some(data));
            }
        }
    }
}

fn empty() -> ApiError {
    ApiError::bad_request("the body is empty")
}

/// The whole body in one buffer (allocated once, at its announced size).
pub(super) async fn read_all(
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
) -> Result<Vec<u8>, ApiError> {
    let mut reader = Reader::new(body, headers, limits);
    let mut all = Vec::with_capacity(reader.announced.unwrap_or(0) as usize);
    while let Some(chunk) = reader.next().await? {
        all.extend_from_slice(&chunk);
    }
    if all.is_empty() {
        return Err(empty());
    }
    Ok(all)
}

/// Streams the body into files in `dir`, `sizes[i]` bytes into `model-<i>.onnx`; the body must be exactly
/// their sum. `None` puts the whole body in one file.
pub(super) async fn into_files(
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
    sizes: Option<&[usize]>,
    dir: &Path,
) -> Result<Vec<PathBuf>, ApiError> {
    let mut reader = Reader::new(body, headers, limits);
    let expected: Option<usize> = sizes.map(|s| s.iter().sum());
    if let (Some(total), Some(announced)) = (expected, reader.announced) {
        if announced != total as u64 {
            return Err(mismatch(total, announced as usize));
        }
    }
    let open = |i: usize| {
        let path = dir.join(format!("model-{i}.onnx"));
        async move {
            let file = tokio::fs::File::create(&path).await.map_err(store_error)?;
            Ok::<_, ApiError>((path, file))
        }
    };
    let (path, mut file) = open(0).await?;
    let mut paths = vec![path];
    let mut room = sizes.map(|s| s[0]);
    let mut written = 0usize;
    while let Some(mut chunk) = reader.next().await? {
        while !chunk.is_empty() {
            if room == Some(0) {
                file.flush().await.map_err(store_error)?;
                let Some(&next) = sizes.and_then(|s| s.get(paths.len())) else {
                    return Err(ApiError::bad_request(format!(
                        "the sizes add up to {} bytes but the body has more",
                        expected.unwrap_or(0)
                    )));
                };
                let (path, f) = open(paths.len()).await?;
                (file, room) = (f, Some(next));
                paths.push(path);
            }
            let n = room.map_or(chunk.len(), |r| r.min(chunk.len()));
            file.write_all(&chunk.split_to(n))
                .await
                .map_err(store_error)?;
            written += n;
            room = room.map(|r| r - n);
        }
    }
    file.flush().await.map_err(store_error)?;
    if written == 0 {
        return Err(empty());
    }
    match expected {
        Some(total) if written != total => Err(mismatch(total, written)),
        _ => Ok(paths),
    }
}

fn store_error(e: std::io::Error) -> ApiError {
    ApiError::internal(format!("storing the model: {e}"))
}

fn mismatch(total: usize, body: usize) -> ApiError {
    ApiError::bad_request(format!(
        "the sizes add up to {total} bytes but the body has {body}"
    ))
}
