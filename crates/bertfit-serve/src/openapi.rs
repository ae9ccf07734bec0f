//! The OpenAPI 3 document of the server's routes, generated from the handlers' and types' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{ClassifierInfo, Health, Info, ModelType, PredictInput, PredictRequest, PredictResponse, Prediction, TruncationDirection};
use crate::error::{ErrorBody, ErrorKind};

#[derive(OpenApi)]
#[openapi(
    info(title = "bertfit", description = "Text classification with a fine-tuned encoder (or an ensemble), compatible with text-embeddings-inference's /predict."),
    paths(crate::routes::predict, crate::routes::health, crate::routes::info, crate::routes::metrics, crate::routes::openapi),
    components(schemas(PredictRequest, PredictInput, TruncationDirection, PredictResponse, Prediction, Info, ModelType, ClassifierInfo, Health, ErrorBody, ErrorKind)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the optional bearer token (`--api-key`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = doc.components.as_mut() {
            components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
    }
}

/// The document as pretty JSON, with this build's version.
pub fn document() -> serde_json::Result<String> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json()
}
