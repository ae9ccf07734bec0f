//! The BERT model.
