//! The table of encoder families: everything that differs between families is a row here (weight prefix,
//! Hugging Face architecture name, position scheme, token types, tensor-name renames, config-key aliases
//! and defaults, the encoder implementation, the classification head), not a `match` in the code that
//! uses it. The BERT-layout families share one encoder after renames; ModernBERT and DeBERTa name their
//! own. A `model_type` with no row is refused, with the list of supported ones.

use super::config::Activation;

/// How position ids are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// 0, 1, 2, … (BERT).
    Absolute,
    /// Real tokens count from `pad_token_id + 1`, padding gets `pad_token_id` (RoBERTa's
    /// `create_position_ids_from_input_ids`).
    PadOffset,
    /// Rotary embeddings of 0, 1, 2, … in attention, no position table (ModernBERT).
    Rotary,
    /// Relative-distance embeddings in attention, absolute positions optional (DeBERTa).
    Relative,
}

/// Which encoder implementation computes a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// The BERT layout (`model::bert`), after the family's renames.
    Bert,
    /// ModernBERT (`model::modernbert`).
    ModernBert,
    /// DeBERTa-v2/v3 (`model::deberta`).
    Deberta,
}

/// A family's own sequence-classification head (what `*ForSequenceClassification` computes on the
/// encoder output), with its Hugging Face tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyHead {
    /// The encoder's pooler (dense + tanh of the first token) feeds the head (BERT).
    pub pooler: bool,
    /// A dense layer on the first token before the output layer, and its activation (RoBERTa's
    /// `classifier.dense` + tanh, ELECTRA's + GELU, DistilBERT's `pre_classifier` + ReLU).
    pub dense: Option<(&'static str, Activation)>,
    /// Name of the output layer (`classifier`, `classifier.out_proj`).
    pub out: &'static str,
    /// Dropout is applied to the head's input too, not only between its layers (all but DistilBERT).
    pub input_dropout: bool,
}

/// A family's masked-language-model head (what `*ForMaskedLM` computes on the encoder output): dense +
/// activation + LayerNorm, then the decoder, whose weight is tied to the word embeddings, plus a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlmHead {
    /// Hugging Face class of the masked LM, written to `architectures`.
    pub architecture: &'static str,
    /// The transform's dense layer (`cls.predictions.transform.dense`), hidden size to embedding size.
    pub dense: &'static str,
    /// The transform's LayerNorm.
    pub norm: &'static str,
    /// The decoder layer (`cls.predictions.decoder`); its weight is the word embeddings.
    pub decoder: &'static str,
    /// The output bias (`cls.predictions.bias`; older checkpoints may name it `DECODER.bias`).
    pub bias: &'static str,
    /// The transform's activation; `None`: the config's `hidden_act` (RoBERTa's head is always GELU).
    pub activation: Option<Activation>,
}

const BERT_MLM: MlmHead = MlmHead {
    architecture: "BertForMaskedLM",
    dense: "cls.predictions.transform.dense",
    norm: "cls.predictions.transform.LayerNorm",
    decoder: "cls.predictions.decoder",
    bias: "cls.predictions.bias",
    activation: None,
};

const ROBERTA_MLM: MlmHead = MlmHead {
    architecture: "RobertaForMaskedLM",
    dense: "lm_head.dense",
    norm: "lm_head.layer_norm",
    decoder: "lm_head.decoder",
    bias: "lm_head.bias",
    activation: Some(Activation::GeluErf),
};

/// One encoder family.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// Whether the attention block's output goes through dropout before its residual add (DistilBERT's
    /// does not).
    pub attention_output_dropout: bool,
    /// Whether `config.json`'s `embedding_size` may differ from `hidden_size`, with an
    /// `embeddings_project` dense layer between them (ELECTRA).
    pub projected_embeddings: bool,
    /// Checkpoint tensor-name fragments and the canonical (BERT) names they map to, applied in order,
    /// both ways (so a canonical fragment that contains a later one comes first).
    pub tensor_renames: &'static [(&'static str, &'static str)],
    /// `config.json` keys of this family and the BERT keys they stand for.
    pub config_aliases: &'static [(&'static str, &'static str)],
    /// Defaults of BERT keys where the family's own defaults differ (applied when the config lacks them).
    pub config_defaults: &'static [(&'static str, f64)],
    /// The encoder implementation.
    pub encoder: EncoderKind,
    /// Name prefixes of tensors that live outside the encoder (saved without the family prefix).
    pub outside_encoder: &'static [&'static str],
    /// The classification head.
    pub head: FamilyHead,
    /// Whether the engine (`crate::engine`) computes this family (each family enters it with its
    /// engine-vs-graph test; the others train on the candle graph).
    pub engine: bool,
    /// The masked-LM head `bertfit pretrain` trains, where the family has one on the BERT layout.
    pub mlm: Option<MlmHead>,
}

const BERT_HEAD: FamilyHead = FamilyHead { pooler: true, dense: None, out: "classifier", input_dropout: true };
const ROBERTA_HEAD: FamilyHead =
    FamilyHead { pooler: false, dense: Some(("classifier.dense", Activation::Tanh)), out: "classifier.out_proj", input_dropout: true };

const BERT: Family = Family {
    model_types: &["bert"],
    prefix: "bert",
    architecture: "BertForSequenceClassification",
    positions: Positions::Absolute,
    token_types: true,
    attention_output_dropout: true,
    projected_embeddings: false,
    tensor_renames: &[],
    config_aliases: &[],
    config_defaults: &[],
    encoder: EncoderKind::Bert,
    outside_encoder: HEAD_NAMES,
    head: BERT_HEAD,
    engine: true,
    mlm: Some(BERT_MLM),
};

/// BERT with RoBERTa's positions and head.
const ROBERTA: Family = Family {
    model_types: &["roberta"],
    prefix: "roberta",
    architecture: "RobertaForSequenceClassification",
    positions: Positions::PadOffset,
    head: ROBERTA_HEAD,
    mlm: Some(ROBERTA_MLM),
    ..BERT
};

/// Every supported family.
pub const FAMILIES: &[Family] = &[
    BERT,
    ROBERTA,
    Family {
        model_types: &["xlm-roberta"],
        architecture: "XLMRobertaForSequenceClassification",
        mlm: Some(MlmHead { architecture: "XLMRobertaForMaskedLM", ..ROBERTA_MLM }),
        ..ROBERTA
    },
    Family {
        model_types: &["camembert"],
        architecture: "CamembertForSequenceClassification",
        mlm: Some(MlmHead { architecture: "CamembertForMaskedLM", ..ROBERTA_MLM }),
        ..ROBERTA
    },
    Family {
        model_types: &["distilbert"],
        prefix: "distilbert",
        architecture: "DistilBertForSequenceClassification",
        token_types: false,
        attention_output_dropout: false,
        // `.attention.output.*` before `.output.*`: saving renames the longer canonical fragment first
        tensor_renames: &[
            ("transformer.layer.", "encoder.layer."),
            (".attention.q_lin.", ".attention.self.query."),
            (".attention.k_lin.", ".attention.self.key."),
            (".attention.v_lin.", ".attention.self.value."),
            (".attention.out_lin.", ".attention.output.dense."),
            (".sa_layer_norm.", ".attention.output.LayerNorm."),
            (".ffn.lin1.", ".intermediate.dense."),
            (".ffn.lin2.", ".output.dense."),
            (".output_layer_norm.", ".output.LayerNorm."),
        ],
        config_aliases: &[
            ("dim", "hidden_size"),
            ("n_layers", "num_hidden_layers"),
            ("n_heads", "num_attention_heads"),
            ("hidden_dim", "intermediate_size"),
            ("activation", "hidden_act"),
            ("dropout", "hidden_dropout_prob"),
            ("attention_dropout", "attention_probs_dropout_prob"),
            ("seq_classif_dropout", "classifier_dropout"),
        ],
        head: FamilyHead { pooler: false, dense: Some(("pre_classifier", Activation::Relu)), out: "classifier", input_dropout: false },
        mlm: Some(MlmHead {
            architecture: "DistilBertForMaskedLM",
            dense: "vocab_transform",
            norm: "vocab_layer_norm",
            decoder: "vocab_projector",
            bias: "vocab_projector.bias",
            activation: None,
        }),
        ..BERT
    },
    Family {
        model_types: &["electra"],
        prefix: "electra",
        architecture: "ElectraForSequenceClassification",
        projected_embeddings: true,
        head: FamilyHead { dense: Some(("classifier.dense", Activation::GeluErf)), ..ROBERTA_HEAD },
        // ElectraForMaskedLM (the generator's layout): its transform maps the hidden size to the embedding size
        mlm: Some(MlmHead {
            architecture: "ElectraForMaskedLM",
            dense: "generator_predictions.dense",
            norm: "generator_predictions.LayerNorm",
            decoder: "generator_lm_head",
            bias: "generator_lm_head.bias",
            activation: Some(Activation::GeluErf),
        }),
        ..BERT
    },
    Family {
        model_types: &["modernbert"],
        prefix: "model",
        architecture: "ModernBertForSequenceClassification",
        positions: Positions::Rotary,
        token_types: false,
        attention_output_dropout: true,
        projected_embeddings: false,
        tensor_renames: &[],
        config_aliases: &[
            ("hidden_activation", "hidden_act"),
            ("norm_eps", "layer_norm_eps"),
            ("embedding_dropout", "hidden_dropout_prob"),
            ("attention_dropout", "attention_probs_dropout_prob"),
        ],
        // ModernBertConfig's defaults
        config_defaults: &[("hidden_dropout_prob", 0.0), ("attention_probs_dropout_prob", 0.0), ("classifier_dropout", 0.0), ("layer_norm_eps", 1e-5)],
        encoder: EncoderKind::ModernBert,
        // `head.dense` + `head.norm` (its prediction head) is the classifier's pooler, outside `model.`
        outside_encoder: &["classifier.", "head."],
        head: BERT_HEAD,
        engine: false,
        mlm: None,
    },
    Family {
        model_types: &["deberta-v2"],
        prefix: "deberta",
        architecture: "DebertaV2ForSequenceClassification",
        positions: Positions::Relative,
        // a token-type table only where `type_vocab_size` > 0 (DeBERTa-v3 has none)
        token_types: true,
        attention_output_dropout: true,
        projected_embeddings: true,
        tensor_renames: &[],
        config_aliases: &[("cls_dropout", "classifier_dropout")],
        config_defaults: &[("type_vocab_size", 0.0), ("layer_norm_eps", 1e-7)],
        encoder: EncoderKind::Deberta,
        // the ContextPooler is `pooler.dense`, beside the encoder
        outside_encoder: &["classifier.", "pooler."],
        head: BERT_HEAD,
        engine: false,
        mlm: None,
    },
];

/// Tensors of the classification heads, outside the encoder.
const HEAD_NAMES: &[&str] = &["classifier.", "pre_classifier."];

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

    /// The family's own name of a canonical tensor name (the inverse of [`Family::rename`]).
    pub fn unrename(&self, name: &str) -> String {
        let mut s = name.to_string();
        for (from, to) in self.tensor_renames {
            s = s.replace(to, from);
        }
        s
    }

    /// Whether a canonical tensor name belongs to the classification head (as opposed to the encoder and
    /// its pooler).
    pub fn is_head_tensor(name: &str) -> bool {
        HEAD_NAMES.iter().any(|p| name.starts_with(p))
    }

    /// A canonical tensor name as this family's checkpoints name it: under the family prefix, renamed,
    /// unless it lives outside the encoder.
    pub fn checkpoint_name(&self, name: &str) -> String {
        if self.outside_encoder.iter().any(|p| name.starts_with(p)) {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, self.unrename(name))
        }
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
        assert_eq!(types, vec!["bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "modernbert", "deberta-v2"]);
    }

    #[test]
    fn rows_say_what_the_match_sites_said() {
        let bert = Family::lookup("bert").expect("bert");
        assert_eq!((bert.prefix, bert.architecture, bert.positions), ("bert", "BertForSequenceClassification", Positions::Absolute));
        let xlmr = Family::lookup("xlm-roberta").expect("xlmr");
        assert_eq!((xlmr.prefix, xlmr.positions, xlmr.head.out), ("roberta", Positions::PadOffset, "classifier.out_proj"));
        assert_eq!(Family::lookup("camembert").map(|f| f.architecture), Some("CamembertForSequenceClassification"));
        let distil = Family::lookup("distilbert").expect("distilbert");
        assert!(!distil.token_types && !distil.attention_output_dropout && !distil.head.input_dropout);
        assert!(Family::lookup("gpt2").is_none());
        assert_eq!(Family::prefixes(), vec!["bert", "roberta", "distilbert", "electra", "model", "deberta"]);
        let modern = Family::lookup("modernbert").expect("modernbert");
        assert_eq!(modern.checkpoint_name("head.dense.weight"), "head.dense.weight");
        assert_eq!(modern.checkpoint_name("layers.2.attn.Wqkv.weight"), "model.layers.2.attn.Wqkv.weight");
    }

    #[test]
    fn renames_round_trip_every_layer_tensor() {
        let distil = Family::lookup("distilbert").expect("distilbert");
        assert_eq!(distil.rename("transformer.layer.0.attention.q_lin.weight"), "encoder.layer.0.attention.self.query.weight");
        assert_eq!(distil.rename("transformer.layer.1.sa_layer_norm.bias"), "encoder.layer.1.attention.output.LayerNorm.bias");
        assert_eq!(distil.rename("transformer.layer.1.output_layer_norm.bias"), "encoder.layer.1.output.LayerNorm.bias");
        assert_eq!(distil.unrename("encoder.layer.3.attention.output.dense.weight"), "transformer.layer.3.attention.out_lin.weight");
        assert_eq!(distil.unrename("encoder.layer.3.output.dense.weight"), "transformer.layer.3.ffn.lin2.weight");
        let canonical = [
            "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm",
        ];
        for family in FAMILIES {
            for part in canonical {
                let name = format!("encoder.layer.11.{part}.weight");
                assert_eq!(family.rename(&family.unrename(&name)), name, "{:?}", family.model_types);
            }
            assert_eq!(family.unrename("embeddings.word_embeddings.weight"), "embeddings.word_embeddings.weight");
        }
        assert!(Family::is_head_tensor("pre_classifier.weight") && Family::is_head_tensor("classifier.out_proj.bias"));
        assert!(!Family::is_head_tensor("pooler.dense.weight"));
    }
}
