//! Where model files come from: a Hugging Face model folder on disk ([`ModelFolder`]), or the Hugging
//! Face Hub (downloaded into the standard hub cache, for users with network access).

pub mod folder;
pub mod hub;
pub mod weights;

pub use folder::ModelFolder;
pub use weights::WeightFiles;
