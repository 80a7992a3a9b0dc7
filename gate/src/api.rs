//! The verify API: `POST /v1/verify` with `{"image": "…"}` or `{"images": […]}` returns the
//! verdict(s); `GET /v1/policy` returns the active policy's hash and load time. Also the bounded
//! body reading shared with the admission webhook.

// Handlers' helpers fail with the HTTP answer to give; it is large, and that is fine here.
#![allow(clippy::result_large_err)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::engine::{Decision, DecisionView, Source};
use super::server::Gate;
use super::Judge;

/// A plain-text error answer.
pub(crate) fn bad_request(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// The request body, at most `limit` bytes (checked against `Content-Length` first, then while
/// reading, since the header may lie or be absent).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        bad_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    images: Option<Vec<String>>,
}

/// The verify API's answer to `{"images": […]}`.
#[derive(serde::Serialize)]
struct ListAnswer<'a> {
    admitted: bool,
    results: Vec<DecisionView<'a>>,
}

/// `POST /v1/verify`.
pub(crate) async fn verify<J: Judge>(
    State(gate): State<Gate<J>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limits = &gate.inner.config.limits;
    let bytes = match read_body(&headers, body, limits.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request: VerifyRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(StatusCode::BAD_REQUEST, &format!("malformed request: {e}")),
    };
    match (request.image, request.images) {
        (Some(image), None) => {
            let decision = gate.decide(&image, Source::Api).await;
            axum::Json(decision.view()).into_response()
        }
        (None, Some(images)) => {
            if images.len() > limits.max_images {
                return bad_request(
                    StatusCode::BAD_REQUEST,
                    &format!("more than {} images in one request", limits.max_images),
                );
            }
            let decisions = gate.decide_all(&images, Source::Api).await;
            let answer = ListAnswer {
                admitted: decisions.iter().all(|d| d.admitted()),
                results: decisions.iter().map(Decision::view).collect(),
            };
            axum::Json(answer).into_response()
        }
        _ => bad_request(
            StatusCode::BAD_REQUEST,
            "give exactly one of \"image\" or \"images\"",
        ),
    }
}

/// `GET /v1/policy`.
pub(crate) async fn policy<J: Judge>(State(gate): State<Gate<J>>) -> Response {
    let active = gate.active();
    axum::Json(json!({"hash": active.hash, "loaded_at": active.loaded_at})).into_response()
}
