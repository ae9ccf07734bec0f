//! Domain-adaptive pretraining: masked-language modelling on the user's unlabeled text (corpus reading
//! and packing, dynamic masking, the training run), and fill-mask predictions to check the result.

pub mod config;
pub mod corpus;
pub mod fill_mask;
pub mod masking;
pub mod run;
pub mod state;

pub use config::PretrainConfig;
pub use corpus::{DocumentSeparator, Packing};
pub use run::{run, PretrainOptions, PretrainSummary};
pub use state::{MlmRecord, PretrainState};
