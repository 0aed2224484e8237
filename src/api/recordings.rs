//! `GET /v1/calls/{id}/recordings/{file}`: the callers' recordings as this node wrote them
//! (`crate::recordings`), behind the API token.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

use super::{ApiError, ApiResult, ApiState};

/// A caller's recording as this node wrote it (`audio/wav`, 8 kHz mono 16-bit). The URL
/// comes in the CRM's `call.completed` (`answers.<node>.url`). A recording made by another
/// node sharing the store is served by that node's API (its URL names it).
pub(super) async fn get_recording(
    State(st): State<ApiState>,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult {
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no recording {file:?} of call {id:?} on this node"),
            Some("file"),
        )
    };
    let Some(path) = st
        .recordings
        .as_deref()
        .and_then(|root| crate::recordings::path(root, &id, &file))
    else {
        return Err(missing());
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("audio/wav")),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
                        .unwrap_or(HeaderValue::from_static("attachment")),
                ),
            ],
            bytes,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => {
            tracing::error!(call_ref = %id, %file, error = %e, "cannot read a recording");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the recording cannot be read",
                None,
            ))
        }
    }
}
