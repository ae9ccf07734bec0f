//! The model layer: the table of encoder families, the Hugging Face config, the BERT port with HF tensor
//! names, classification heads, weight loading and saving, and the ops and fused CPU kernels they compute
//! with. Framework (candle) types stay inside `model`, `engine`, `infer` and `train`.

mod bert;
pub mod classifier;
pub mod config;
pub mod deberta;
pub mod encoder;
pub mod family;
pub mod head;
pub mod kernels;
pub mod masked_lm;
pub mod modernbert;
pub mod ops;
pub mod params;
pub mod random;

pub use bert::{Encoder, Freeze, Inputs};
pub(crate) use bert::site;
pub use classifier::{Classifier, LoadOptions, SavedMeta};
pub use config::{Activation, BertConfig, HeadConfig, Pooling};
pub use family::Family;
pub use masked_lm::MaskedLm;
pub use ops::Mode;
// model files are found by `crate::source`; re-exported here for existing callers
pub use crate::source::{hub, ModelFolder};
