//! The request and response shapes of the HTTP API, compatible with text-embeddings-inference's
//! `/predict`: parsing a request body into a typed [`PredictRequest`] with errors that name the JSON path
//! at fault, and the answers' types (which also describe the API in the OpenAPI document).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::{ApiError, ErrorKind};

/// One input: a text, or a text pair (sentence-pair tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sequence {
    /// A single text.
    Single(String),
    /// A text and its second segment.
    Pair(String, String),
}

impl Sequence {
    /// The text and optional second segment, as the tokenizer takes them.
    pub fn as_pair(&self) -> (&str, Option<&str>) {
        match self {
            Sequence::Single(a) => (a, None),
            Sequence::Pair(a, b) => (a, Some(b)),
        }
    }

    /// Characters in the input (TEI's `x-compute-characters`).
    pub fn chars(&self) -> usize {
        match self {
            Sequence::Single(a) => a.chars().count(),
            Sequence::Pair(a, b) => a.chars().count() + b.chars().count(),
        }
    }
}

/// `inputs`: one input (`"text"`, `["text"]` or `["text", "pair"]`), answered with one list of scores,
/// or a batch (`[["text"], ["text", "pair"], ...]`), answered with one list per input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PredictInput {
    /// A single input.
    Single(Sequence),
    /// A batch of inputs.
    Batch(Vec<Sequence>),
}

impl PredictInput {
    /// The inputs, in order.
    pub fn sequences(&self) -> &[Sequence] {
        match self {
            PredictInput::Single(s) => std::slice::from_ref(s),
            PredictInput::Batch(b) => b,
        }
    }

    /// Reads `inputs` from its JSON value. Errors name the JSON path (`inputs[2][0]`).
    pub fn from_json(v: &Value) -> Result<PredictInput, ApiError> {
        let shape = "expected a string, a pair [string, string], or a batch [[string], [string, string], ...]";
        match v {
            Value::String(s) => Ok(PredictInput::Single(Sequence::Single(s.clone()))),
            Value::Array(items) if items.is_empty() => Err(ApiError::new(ErrorKind::Validation, "inputs: empty batch")),
            Value::Array(items) if items[0].is_string() => Ok(PredictInput::Single(sequence(items, "inputs")?)),
            Value::Array(items) => {
                let mut batch = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let path = format!("inputs[{i}]");
                    match item {
                        Value::Array(parts) => batch.push(sequence(parts, &path)?),
                        other => {
                            return Err(malformed(format!(
                                "{path}: expected [string] or [string, string] in a batch, found {}",
                                kind_of(other)
                            )))
                        }
                    }
                }
                Ok(PredictInput::Batch(batch))
            }
            other => Err(malformed(format!("inputs: {shape}, found {}", kind_of(other)))),
        }
    }
}

fn malformed(message: String) -> ApiError {
    ApiError::new(ErrorKind::Malformed, message)
}

/// `[string]` or `[string, string]` at `path`.
fn sequence(parts: &[Value], path: &str) -> Result<Sequence, ApiError> {
    let text = |i: usize| -> Result<String, ApiError> {
        match &parts[i] {
            Value::String(s) => Ok(s.clone()),
            other => Err(malformed(format!("{path}[{i}]: expected a string, found {}", kind_of(other)))),
        }
    };
    match parts.len() {
        1 => Ok(Sequence::Single(text(0)?)),
        2 => Ok(Sequence::Pair(text(0)?, text(1)?)),
        n => Err(malformed(format!("{path}: an input is a text or a pair of texts, found {n} elements"))),
    }
}

/// The JSON type of `v`, for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl PartialSchema for PredictInput {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let strings = |n: usize, what: &str| {
            ArrayBuilder::new().items(string()).min_items(Some(n)).max_items(Some(n)).description(Some(what.to_string()))
        };
        OneOfBuilder::new()
            .item(string().description(Some("A single text")))
            .item(strings(2, "A text pair"))
            .item(
                ArrayBuilder::new()
                    .items(OneOfBuilder::new().item(strings(1, "A single text")).item(strings(2, "A text pair")))
                    .description(Some("A batch of texts and text pairs")),
            )
            .description(Some("A text, a text pair, or a batch of texts and text pairs"))
            .examples([serde_json::json!("I like you."), serde_json::json!([["I like you."], ["Is it?", "It is."]])])
            .into()
    }
}

impl ToSchema for PredictInput {}

/// Which end of a too-long text `truncate` cuts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub enum TruncationDirection {
    /// Cut the start (keep the end).
    Left,
    /// Cut the end (keep the start), as in training.
    #[default]
    Right,
}

/// `POST /predict`.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
pub struct PredictRequest {
    /// The inputs.
    pub inputs: PredictInput,
    /// Cut texts longer than the model's length instead of refusing them [default: the server's
    /// `--auto-truncate`].
    #[schema(nullable = true, default = json!(null))]
    pub truncate: Option<bool>,
    /// Which end truncation cuts (`Left` or `Right`, any case).
    #[schema(default = "Right")]
    pub truncation_direction: TruncationDirection,
    /// Answer logits instead of probabilities (for an ensemble, the members' mean logits).
    #[schema(default = false)]
    pub raw_scores: bool,
}

impl PredictRequest {
    /// Parses a request body. Invalid JSON and wrong shapes are [`ErrorKind::Malformed`] (naming the
    /// line and column, or the field); empty batches [`ErrorKind::Validation`].
    pub fn parse(body: &[u8]) -> Result<PredictRequest, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| malformed(format!("malformed JSON: {e}")))?;
        let Value::Object(fields) = &v else { return Err(malformed(format!("expected a JSON object, found {}", kind_of(&v)))) };
        let inputs = fields.get("inputs").ok_or_else(|| malformed("missing field `inputs`".to_string()))?;
        let inputs = PredictInput::from_json(inputs)?;
        let flag = |name: &str| -> Result<Option<bool>, ApiError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(other) => Err(malformed(format!("{name}: expected a boolean, found {}", kind_of(other)))),
            }
        };
        let truncation_direction = match fields.get("truncation_direction") {
            None | Some(Value::Null) => TruncationDirection::Right,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("left") => TruncationDirection::Left,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("right") => TruncationDirection::Right,
            Some(other) => return Err(malformed(format!("truncation_direction: expected \"Left\" or \"Right\", found {other}"))),
        };
        Ok(PredictRequest { inputs, truncate: flag("truncate")?, truncation_direction, raw_scores: flag("raw_scores")?.unwrap_or(false) })
    }
}

/// One class's score.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Prediction {
    /// The probability (or, with `raw_scores`, the logit).
    #[schema(example = 0.93)]
    pub score: f32,
    /// The class name.
    #[schema(example = "positive")]
    pub label: String,
}

/// Every class's score, highest first.
pub fn ranked(labels: &[String], scores: &[f32]) -> Vec<Prediction> {
    let mut out: Vec<Prediction> = labels.iter().zip(scores).map(|(l, &s)| Prediction { score: s, label: l.clone() }).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The answer of `/predict`: one list for a single input, a list of lists for a batch.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PredictResponse {
    /// The scores of a single input.
    Single(Vec<Prediction>),
    /// The scores of each input of a batch.
    Batch(Vec<Vec<Prediction>>),
}

/// The classes, as in a Hugging Face config.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassifierInfo {
    /// Class names by id.
    pub id2label: BTreeMap<String, String>,
    /// Class ids by name.
    pub label2id: BTreeMap<String, usize>,
}

/// What kind of model is served (TEI's `model_type`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelType {
    /// A sequence classifier with these classes.
    pub classifier: ClassifierInfo,
}

/// `GET /info`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Info {
    /// What `--model` named (paths or hub ids; several for an ensemble).
    pub model_id: String,
    /// The model folders served: one, or the members of an ensemble.
    pub members: Vec<String>,
    /// The classes.
    pub model_type: ModelType,
    /// Class names by id.
    pub labels: Vec<String>,
    /// Encoder families (`model_type` of each member's config).
    pub families: Vec<String>,
    /// Matmul precision of the dense layers (`f32` or `bf16`).
    pub model_dtype: String,
    /// Where the model runs (`cpu`, `cuda:0`).
    pub device: String,
    /// Longest input in tokens; longer ones are cut with `truncate`, refused without.
    pub max_input_length: usize,
    /// Token budget of one model batch (rows × padded length).
    pub max_batch_tokens: usize,
    /// Requests admitted at once; more are answered 429.
    pub max_concurrent_requests: usize,
    /// Inputs allowed in one request; more are answered 413.
    pub max_client_batch_size: usize,
    /// Longest time a request waits in the queue before it is answered 503.
    pub max_queue_ms: u64,
    /// Largest request body in bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Whether `truncate` defaults to true.
    pub auto_truncate: bool,
    /// Threads tokenizing requests.
    pub tokenization_workers: usize,
    /// Whether requests need `Authorization: Bearer <key>`.
    pub api_key_required: bool,
    /// bertfit's version.
    pub version: String,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PredictRequest, ApiError> {
        PredictRequest::parse(s.as_bytes())
    }

    #[test]
    fn single_pair_and_batch_shapes() {
        let single = |s: &str| Sequence::Single(s.into());
        assert_eq!(parse(r#"{"inputs": "a"}"#).expect("single").inputs, PredictInput::Single(single("a")));
        assert_eq!(parse(r#"{"inputs": ["a"]}"#).expect("one").inputs, PredictInput::Single(single("a")));
        assert_eq!(parse(r#"{"inputs": ["a", "b"]}"#).expect("pair").inputs, PredictInput::Single(Sequence::Pair("a".into(), "b".into())));
        let batch = parse(r#"{"inputs": [["a"], ["b", "c"]], "truncate": true, "truncation_direction": "left", "raw_scores": true}"#).expect("batch");
        assert_eq!(batch.inputs, PredictInput::Batch(vec![single("a"), Sequence::Pair("b".into(), "c".into())]));
        assert_eq!((batch.truncate, batch.truncation_direction, batch.raw_scores), (Some(true), TruncationDirection::Left, true));
        let defaults = parse(r#"{"inputs": "a", "truncate": null, "extra": 1}"#).expect("defaults");
        assert_eq!((defaults.truncate, defaults.truncation_direction, defaults.raw_scores), (None, TruncationDirection::Right, false));
    }

    #[test]
    fn errors_name_the_json_path() {
        let cases: &[(&str, ErrorKind, &str)] = &[
            ("{\"inputs\": ", ErrorKind::Malformed, "malformed JSON"),
            ("[1]", ErrorKind::Malformed, "expected a JSON object, found an array"),
            (r#"{"input": "a"}"#, ErrorKind::Malformed, "missing field `inputs`"),
            (r#"{"inputs": 3}"#, ErrorKind::Malformed, "inputs: expected a string"),
            (r#"{"inputs": []}"#, ErrorKind::Validation, "inputs: empty batch"),
            (r#"{"inputs": ["a", "b", "c"]}"#, ErrorKind::Malformed, "inputs: an input is a text or a pair of texts, found 3"),
            (r#"{"inputs": ["a", 2]}"#, ErrorKind::Malformed, "inputs[1]: expected a string, found a number"),
            (r#"{"inputs": [["a"], "b"]}"#, ErrorKind::Malformed, "inputs[1]: expected [string] or [string, string]"),
            (r#"{"inputs": [["a"], []]}"#, ErrorKind::Malformed, "inputs[1]: an input is a text or a pair of texts, found 0"),
            (r#"{"inputs": [["a"], ["b", null]]}"#, ErrorKind::Malformed, "inputs[1][1]: expected a string, found null"),
            (r#"{"inputs": "a", "truncate": "yes"}"#, ErrorKind::Malformed, "truncate: expected a boolean, found a string"),
            (r#"{"inputs": "a", "truncation_direction": "up"}"#, ErrorKind::Malformed, "truncation_direction: expected"),
        ];
        for (body, kind, msg) in cases {
            let err = parse(body).expect_err(body);
            assert_eq!(err.kind, *kind, "{body}: {err}");
            assert!(err.message.contains(msg), "{body}: {err}");
        }
    }

    #[test]
    fn ranked_scores_highest_first() {
        let labels = vec!["neg".to_string(), "neu".to_string(), "pos".to_string()];
        let r = ranked(&labels, &[0.2, 0.1, 0.7]);
        assert_eq!(r.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["pos", "neg", "neu"]);
    }
}
