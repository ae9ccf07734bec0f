//! The model layer: Hugging Face config, BERT port with HF tensor names, classification head, weight
//! loading and saving. Framework (candle) types stay inside `model`, `train` and `predict`.

mod bert;
pub mod classifier;
pub mod config;
pub mod folder;
pub mod head;
pub mod hub;
pub mod infer;
pub mod kernels;
pub mod ops;
pub mod params;
pub mod random;

pub use bert::{Encoder, Freeze, Inputs};
pub use classifier::{Classifier, LoadOptions, SavedMeta};
pub use config::{Activation, BertConfig, HeadConfig, Pooling};
pub use folder::ModelFolder;
pub use ops::Mode;
