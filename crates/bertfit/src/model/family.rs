//! The table of encoder families: everything that differs between checkpoints of the BERT layout is a
//! row here (weight prefix, Hugging Face architecture name, position scheme, token types, tensor-name
//! renames, config-key aliases, head names), not a `match` in the code that uses it. A `model_type` with
//! no row is refused, with the list of supported ones.

/// How position ids are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// 0, 1, 2, … (BERT).
    Absolute,
    /// Real tokens count from `pad_token_id + 1`, padding gets `pad_token_id` (RoBERTa's
    /// `create_position_ids_from_input_ids`).
    PadOffset,
}

/// One encoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// `model_type` values of `config.json` this row serves.
    pub model_types: &'static [&'static str],
    /// Prefix of the encoder's tensors in a sequence-classification checkpoint (`bert.`…).
    pub prefix: &'static str,
    /// Hugging Face class of the sequence classifier, written to `architectures`.
    pub architecture: &'static str,
    /// Position numbering.
    pub positions: Positions,
    /// Whether the family has a token-type (segment) embedding.
    pub token_types: bool,
    /// Checkpoint tensor-name fragments and the canonical (BERT) names they map to.
    pub tensor_renames: &'static [(&'static str, &'static str)],
    /// `config.json` keys of this family and the BERT keys they stand for.
    pub config_aliases: &'static [(&'static str, &'static str)],
    /// Name of the classification head's output layer.
    pub head: &'static str,
    /// Whether the engine (`crate::engine`) computes this family (each family enters it with its
    /// engine-vs-graph test; the others train on the candle graph).
    pub engine: bool,
}

/// Every supported family. The next families (DistilBERT, ELECTRA, …) are rows added here.
pub const FAMILIES: &[Family] = &[
    Family {
        model_types: &["bert"],
        prefix: "bert",
        architecture: "BertForSequenceClassification",
        positions: Positions::Absolute,
        token_types: true,
        tensor_renames: &[],
        config_aliases: &[],
        head: "classifier",
        engine: true,
    },
    Family {
        model_types: &["roberta"],
        prefix: "roberta",
        architecture: "RobertaForSequenceClassification",
        positions: Positions::PadOffset,
        token_types: true,
        tensor_renames: &[],
        config_aliases: &[],
        head: "classifier",
        engine: true,
    },
    Family {
        model_types: &["xlm-roberta"],
        prefix: "roberta",
        architecture: "XLMRobertaForSequenceClassification",
        positions: Positions::PadOffset,
        token_types: true,
        tensor_renames: &[],
        config_aliases: &[],
        head: "classifier",
        engine: true,
    },
    Family {
        model_types: &["camembert"],
        prefix: "roberta",
        architecture: "CamembertForSequenceClassification",
        positions: Positions::PadOffset,
        token_types: true,
        tensor_renames: &[],
        config_aliases: &[],
        head: "classifier",
        engine: true,
    },
];

impl Family {
    /// The row for a `model_type`, if supported.
    pub fn lookup(model_type: &str) -> Option<&'static Family> {
        FAMILIES.iter().find(|f| f.model_types.contains(&model_type))
    }

    /// Every supported `model_type`, for error messages.
    pub fn supported() -> Vec<&'static str> {
        FAMILIES.iter().flat_map(|f| f.model_types.iter().copied()).collect()
    }

    /// Every encoder prefix a checkpoint may carry (`bert.`, `roberta.`), without repeats.
    pub fn prefixes() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for f in FAMILIES {
            if !out.contains(&f.prefix) {
                out.push(f.prefix);
            }
        }
        out
    }

    /// The canonical name of a checkpoint tensor name after this family's renames.
    pub fn rename(&self, name: &str) -> String {
        let mut s = name.to_string();
        for (from, to) in self.tensor_renames {
            s = s.replace(from, to);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_type_has_one_row() {
        let types = Family::supported();
        for t in &types {
            assert_eq!(FAMILIES.iter().filter(|f| f.model_types.contains(t)).count(), 1, "{t}");
        }
        assert_eq!(types, vec!["bert", "roberta", "xlm-roberta", "camembert"]);
    }

    #[test]
    fn rows_say_what_the_match_sites_said() {
        let bert = Family::lookup("bert").expect("bert");
        assert_eq!((bert.prefix, bert.architecture, bert.positions), ("bert", "BertForSequenceClassification", Positions::Absolute));
        let xlmr = Family::lookup("xlm-roberta").expect("xlmr");
        assert_eq!((xlmr.prefix, xlmr.positions), ("roberta", Positions::PadOffset));
        assert_eq!(Family::lookup("camembert").map(|f| f.architecture), Some("CamembertForSequenceClassification"));
        assert!(Family::lookup("distilbert").is_none());
        assert!(Family::lookup("gpt2").is_none());
        assert_eq!(Family::prefixes(), vec!["bert", "roberta"]);
    }

    #[test]
    fn renames_apply_in_order() {
        let f = Family { tensor_renames: &[("q_lin", "self.query"), ("sa_layer_norm", "attention.output.LayerNorm")], ..FAMILIES[0] };
        assert_eq!(f.rename("layer.0.attention.q_lin.weight"), "layer.0.attention.self.query.weight");
        assert_eq!(f.rename("layer.0.sa_layer_norm.bias"), "layer.0.attention.output.LayerNorm.bias");
    }
}
