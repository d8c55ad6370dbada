//! The receiver's gRPC services and HTTP routes: each records what it
//! accepts in the shared [`State`] or answers with the failure it was told.

use super::*;

pub(super) struct GrpcSvc(pub(super) Arc<State>);

fn http_to_grpc(status: u16) -> tonic::Code {
    match status {
        400 => tonic::Code::InvalidArgument,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        413 => tonic::Code::ResourceExhausted,
        429 | 502 | 503 | 504 => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    }
}

#[tonic::async_trait]
impl LogsService for GrpcSvc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let size = req.encoded_len();
        match self.0.next_failure() {
            None => Ok(tonic::Response::new(self.0.accept(req, size, 0))),
            Some(Failure::Partial { rejected }) => Ok(tonic::Response::new(self.0.accept(req, size, rejected))),
            Some(Failure::Http { status, .. }) => {
                Err(tonic::Status::new(http_to_grpc(status), format!("HTTP {status}")))
            }
            Some(Failure::Grpc { code, retry_info: None }) => Err(tonic::Status::new(code, "scripted failure")),
            Some(Failure::Redirect | Failure::Html) => Err(tonic::Status::unavailable("scripted failure")),
            Some(Failure::Grpc { code, retry_info: Some(d) }) => {
                Err(tonic::Status::with_details(code, "scripted failure", grpc_retry_details(code, d).into()))
            }
        }
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcSvc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        lock(&self.0.metrics).push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

pub(super) async fn http_metrics(state: Arc<State>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(raw) = decompress(&headers, &body) else {
        return (StatusCode::BAD_REQUEST, "bad content encoding").into_response();
    };
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
    let req = if json {
        serde_json::from_slice::<ExportMetricsServiceRequest>(&raw).map_err(|e| e.to_string())
    } else {
        ExportMetricsServiceRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
    };
    match req {
        Ok(req) => {
            lock(&state.metrics).push(req);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportMetricsServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("cannot decode request: {e}")).into_response(),
    }
}

/// A request body without its `Content-Encoding` (gzip, zstd or none).
fn decompress(headers: &HeaderMap, body: &Bytes) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    let done = match encoding {
        "gzip" => flate2::read::GzDecoder::new(body.as_ref()).read_to_end(&mut raw).map(|_| ()),
        "zstd" => zstd::stream::read::Decoder::new(body.as_ref()).and_then(|mut d| d.read_to_end(&mut raw)).map(|_| ()),
        _ => {
            raw = body.to_vec();
            Ok(())
        }
    };
    done.ok().map(|()| raw)
}

/// The page a redirect lands on: 200, HTML, whatever the method.
pub(super) async fn landing(state: Arc<State>) -> Response {
    state.landing_hits.fetch_add(1, Ordering::Relaxed);
    html_page()
}

fn html_page() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], LANDING_PAGE).into_response()
}

pub(super) async fn http_logs(state: Arc<State>, headers: HeaderMap, body: Bytes) -> Response {
    let failure = state.next_failure();
    let Some(raw) = decompress(&headers, &body) else {
        return (StatusCode::BAD_REQUEST, "bad content encoding").into_response();
    };
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
    let req = if json {
        serde_json::from_slice::<ExportLogsServiceRequest>(&raw).map_err(|e| e.to_string())
    } else {
        ExportLogsServiceRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("cannot decode request: {e}")).into_response(),
    };
    let size = req.encoded_len();
    let rejected = match failure {
        None => 0,
        Some(Failure::Partial { rejected }) => rejected,
        Some(Failure::Http { status, retry_after }) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (code, "scripted failure").into_response();
            if let Some(s) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, s.into());
            }
            return r;
        }
        Some(Failure::Grpc { .. }) => return (StatusCode::SERVICE_UNAVAILABLE, "scripted failure").into_response(),
        Some(Failure::Redirect) => return (StatusCode::FOUND, [(header::LOCATION, LANDING)]).into_response(),
        Some(Failure::Html) => return html_page(),
    };
    let answer = state.accept(req, size, rejected);
    if json {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], serde_json::to_vec(&answer).unwrap_or_default())
            .into_response()
    } else {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-protobuf")], answer.encode_to_vec()).into_response()
    }
}
