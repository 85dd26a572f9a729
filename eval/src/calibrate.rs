//! Calibration: run the original model on calibration text and measure,
//! for every linear layer, the second-moment (Gram) matrix of its input,
//! `G = mean(x xᵀ)` over the tokens the attention mask keeps.
//!
//! candle-transformers' `BertModel` exposes no intermediate activations, so
//! [`InstrumentedBert`] is a BERT forward of its own (post-LayerNorm, as in
//! the original paper and HF `BertModel`) built from candle-nn layers; its
//! hidden states equal `BertModel`'s (tested on the real model). The
//! statistics are returned as plain [`InputGram`]s: this crate does not
//! depend on the writer, whose `Calibration` the CLI builds from them.
//!
//! Per encoder layer `i` there are four inputs:
//! - the layer input, read by `attention.self.{query,key,value}` (one Gram
//!   for the three);
//! - the attention context, read by `attention.output.dense`;
//! - the attention block's output, read by `intermediate.dense`;
//! - the activated intermediate, read by `output.dense`.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};
use candle_transformers::models::bert::{Config as BertConfig, HiddenAct};

use crate::{length_batches, BatchInputs, EvalError, ModelFiles, Result, Weights};

/// The Gram matrix of one linear-layer input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputGram {
    /// The weights (safetensors names) that read this input, e.g. the query,
    /// key and value weights of one layer.
    pub weights: Vec<String>,
    /// Input width: the weights' column count.
    pub cols: usize,
    /// How many token vectors were averaged.
    pub tokens: u64,
    /// `mean(x xᵀ)`, `cols x cols`, row-major, exactly symmetric.
    pub gram: Vec<f32>,
}

/// What [`calibrate`] measured.
#[derive(Debug, Clone)]
pub struct CalibrationRun {
    /// One entry per distinct linear-layer input, in model order.
    pub grams: Vec<InputGram>,
    /// Sentences run.
    pub sentences: usize,
    /// Tokens they made (padding excluded).
    pub tokens: u64,
    /// Wall time of the forward passes, model load included.
    pub elapsed: Duration,
}

/// Running sums of `x xᵀ` per linear-layer input.
pub struct GramSums {
    slots: Vec<Slot>,
    tokens: u64,
}

struct Slot {
    weights: Vec<String>,
    cols: usize,
    /// `Σ x xᵀ` (F32 `cols x cols`), `None` before the first batch.
    sum: Option<Tensor>,
}

impl GramSums {
    /// Adds `Σ x xᵀ` over the rows of `x` (`(n, cols)`) to input `slot`.
    fn add(&mut self, slot: usize, x: &Tensor) -> Result<()> {
        let g = x.t()?.matmul(x)?;
        let s = &mut self.slots[slot];
        s.sum = Some(match s.sum.take() {
            Some(acc) => (acc + g)?,
            None => g,
        });
        Ok(())
    }

    /// Token count so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The means, symmetrised (the two halves of a float matmul may differ
    /// in the last bit). [`EvalError::Text`] when no token was seen.
    pub fn finish(self) -> Result<Vec<InputGram>> {
        if self.tokens == 0 {
            return Err(EvalError::Text("calibration saw no tokens".into()));
        }
        let n = self.tokens as f64;
        self.slots
            .into_iter()
            .map(|s| {
                let cols = s.cols;
                let sum = match s.sum {
                    Some(t) => t.flatten_all()?.to_vec1::<f32>()?,
                    None => vec![0.0; cols * cols],
                };
                let mut gram = vec![0f32; cols * cols];
                for i in 0..cols {
                    for j in 0..=i {
                        let a = f64::from(sum[i * cols + j]);
                        let b = f64::from(sum[j * cols + i]);
                        let v = ((a + b) / (2.0 * n)) as f32;
                        gram[i * cols + j] = v;
                        gram[j * cols + i] = v;
                    }
                }
                Ok(InputGram {
                    weights: s.weights,
                    cols,
                    tokens: self.tokens,
                    gram,
                })
            })
            .collect()
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

/// A BERT encoder whose forward pass can record the input of every linear
/// layer ([`InstrumentedBert::forward_recording`]).
pub struct InstrumentedBert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    /// Weight-name prefix (`""` or `"bert."`).
    prefix: String,
    heads: usize,
    head_size: usize,
    hidden: usize,
    intermediate: usize,
    act: HiddenAct,
}

impl InstrumentedBert {
    /// Loads the weights of a BERT encoder named as HF `BertModel` names
    /// them, optionally under a `bert.` prefix (as in `BertFor*` models).
    pub fn load(vb: VarBuilder, config: &BertConfig) -> Result<InstrumentedBert> {
        let prefix = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            ""
        } else if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let root = if prefix.is_empty() {
            vb.clone()
        } else {
            vb.pp("bert")
        };
        let (h, inter) = (config.hidden_size, config.intermediate_size);
        if config.num_attention_heads == 0 || h % config.num_attention_heads != 0 {
            return Err(EvalError::Json {
                what: "config.json".into(),
                reason: format!(
                    "hidden_size {h} is not a multiple of num_attention_heads {}",
                    config.num_attention_heads
                ),
            });
        }
        let eps = config.layer_norm_eps;
        let e = root.pp("embeddings");
        let word = candle_nn::embedding(config.vocab_size, h, e.pp("word_embeddings"))?;
        let position = candle_nn::embedding(
            config.max_position_embeddings,
            h,
            e.pp("position_embeddings"),
        )?;
        let token_type =
            candle_nn::embedding(config.type_vocab_size, h, e.pp("token_type_embeddings"))?;
        let emb_norm = candle_nn::layer_norm(h, eps, e.pp("LayerNorm"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = root.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                Ok(Layer {
                    query: candle_nn::linear(h, h, a.pp("self.query"))?,
                    key: candle_nn::linear(h, h, a.pp("self.key"))?,
                    value: candle_nn::linear(h, h, a.pp("self.value"))?,
                    attn_out: candle_nn::linear(h, h, a.pp("output.dense"))?,
                    attn_norm: candle_nn::layer_norm(h, eps, a.pp("output.LayerNorm"))?,
                    inter: candle_nn::linear(h, inter, l.pp("intermediate.dense"))?,
                    out: candle_nn::linear(inter, h, l.pp("output.dense"))?,
                    out_norm: candle_nn::layer_norm(h, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(InstrumentedBert {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            prefix: prefix.to_owned(),
            heads: config.num_attention_heads,
            head_size: h / config.num_attention_heads,
            hidden: h,
            intermediate: inter,
            act: config.hidden_act,
        })
    }

    /// Empty sums for every linear-layer input of this model.
    pub fn gram_sums(&self) -> GramSums {
        let mut slots = Vec::with_capacity(4 * self.layers.len());
        for i in 0..self.layers.len() {
            let name = |rest: &str| format!("{}encoder.layer.{i}.{rest}.weight", self.prefix);
            let slot = |weights: Vec<String>, cols| Slot {
                weights,
                cols,
                sum: None,
            };
            slots.push(slot(
                ["query", "key", "value"]
                    .map(|w| name(&format!("attention.self.{w}")))
                    .to_vec(),
                self.hidden,
            ));
            slots.push(slot(vec![name("attention.output.dense")], self.hidden));
            slots.push(slot(vec![name("intermediate.dense")], self.hidden));
            slots.push(slot(vec![name("output.dense")], self.intermediate));
        }
        GramSums { slots, tokens: 0 }
    }

    /// `(batch, seq)` ids, type ids and mask to `(batch, seq, hidden)`
    /// hidden states.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.run(ids, type_ids, mask, None)
    }

    /// [`InstrumentedBert::forward`] that also adds `x xᵀ` of every
    /// non-padding token's input of every linear layer to `sums`.
    pub fn forward_recording(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        sums: &mut GramSums,
    ) -> Result<Tensor> {
        self.run(ids, type_ids, mask, Some(sums))
    }

    fn run(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        mut sums: Option<&mut GramSums>,
    ) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let dev = ids.device();
        // Rows of the flattened (b * s, width) activations that are tokens.
        let kept: Vec<u32> = mask
            .flatten_all()?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?
            .iter()
            .enumerate()
            .filter(|(_, &m)| m != 0)
            .map(|(i, _)| i as u32)
            .collect();
        let kept = Tensor::new(kept.as_slice(), dev)?;
        if let Some(g) = sums.as_deref_mut() {
            g.tokens += kept.dim(0)? as u64;
        }
        let mut record = |slot: usize, x: &Tensor| -> Result<()> {
            if let Some(g) = sums.as_deref_mut() {
                let width = x.dim(D::Minus1)?;
                g.add(slot, &x.reshape((b * s, width))?.index_select(&kept, 0)?)?;
            }
            Ok(())
        };

        let positions = Tensor::arange(0u32, s as u32, dev)?;
        let emb = (self.word.forward(ids)? + self.token_type.forward(type_ids)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let mut x = self.emb_norm.forward(&emb)?;
        // Padding keys get the lowest float added to their scores, as
        // HF BERT does.
        let mask = mask.to_dtype(DType::F32)?.reshape((b, 1, 1, s))?;
        let bias = ((1.0 - mask)? * f64::from(f32::MIN))?;
        let heads = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, self.heads, self.head_size))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        for (i, l) in self.layers.iter().enumerate() {
            record(4 * i, &x)?;
            let q = heads(l.query.forward(&x)?)?;
            let k = heads(l.key.forward(&x)?)?;
            let v = heads(l.value.forward(&x)?)?;
            let scores =
                (q.matmul(&k.t()?)? / (self.head_size as f64).sqrt())?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let ctx =
                probs
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((b, s, self.hidden))?;
            record(4 * i + 1, &ctx)?;
            let attn = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            record(4 * i + 2, &attn)?;
            let pre = l.inter.forward(&attn)?;
            let act = match self.act {
                HiddenAct::Gelu => pre.gelu_erf()?,
                HiddenAct::GeluApproximate => pre.gelu()?,
                HiddenAct::Relu => pre.relu()?,
            };
            record(4 * i + 3, &act)?;
            x = l.out_norm.forward(&(l.out.forward(&act)? + &attn)?)?;
        }
        Ok(x)
    }
}

impl crate::Encoder for InstrumentedBert {
    fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        InstrumentedBert::forward(self, ids, type_ids, mask)
    }
}

/// Refuses calibration sentences that are also evaluation sentences
/// ([`EvalError::SharedText`]); identical texts share every sentence.
pub fn check_disjoint(calibration: &[String], evaluation: &[String]) -> Result<()> {
    let eval: std::collections::HashSet<&str> = evaluation.iter().map(String::as_str).collect();
    let mut shared = calibration.iter().filter(|s| eval.contains(s.as_str()));
    match shared.next() {
        None => Ok(()),
        Some(first) => Err(EvalError::SharedText {
            shared: 1 + shared.count(),
            example: first.clone(),
        }),
    }
}

/// Runs the model of `weights` (F32, CPU) over `sentences` in batches of
/// `batch` and returns the Gram matrix of every linear-layer input.
pub fn calibrate(
    weights: &Weights,
    files: &ModelFiles,
    sentences: &[String],
    batch: usize,
) -> Result<CalibrationRun> {
    if sentences.is_empty() {
        return Err(EvalError::Text("no calibration sentences".into()));
    }
    let start = Instant::now();
    let model = InstrumentedBert::load(
        weights.var_builder(DType::F32, &Device::Cpu)?,
        &files.config,
    )?;
    let mut sums = model.gram_sums();
    for chunk in length_batches(&files.tokenizer, sentences, batch)? {
        let texts: Vec<&str> = chunk.iter().map(|&i| sentences[i].as_str()).collect();
        let inputs = BatchInputs::new(&files.tokenizer, &texts)?;
        model.forward_recording(&inputs.ids, &inputs.type_ids, &inputs.mask, &mut sums)?;
    }
    let tokens = sums.tokens();
    let grams = sums.finish()?;
    Ok(CalibrationRun {
        grams,
        sentences: sentences.len(),
        tokens,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_transformers::models::bert::BertModel;
    use std::collections::HashMap;

    fn config() -> BertConfig {
        serde_json::from_str(
            r#"{"vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 2,
                "num_attention_heads": 2, "intermediate_size": 12, "hidden_act": "gelu",
                "hidden_dropout_prob": 0.1, "max_position_embeddings": 16,
                "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
                "pad_token_id": 0, "model_type": "bert"}"#,
        )
        .unwrap()
    }

    /// A BERT of `config()` with deterministic pseudo-random weights, named
    /// under `prefix`.
    fn weights(prefix: &str) -> HashMap<String, Tensor> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut t = |shape: &[usize]| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
        };
        let mut m = HashMap::new();
        let mut put = |name: String, shape: &[usize]| {
            m.insert(format!("{prefix}{name}"), t(shape));
        };
        for (name, rows) in [("word", 20), ("position", 16), ("token_type", 2)] {
            put(format!("embeddings.{name}_embeddings.weight"), &[rows, 8]);
        }
        let norm = |put: &mut dyn FnMut(String, &[usize]), p: &str| {
            put(format!("{p}.LayerNorm.weight"), &[8]);
            put(format!("{p}.LayerNorm.bias"), &[8]);
        };
        norm(&mut put, "embeddings");
        for i in 0..2 {
            let p = format!("encoder.layer.{i}");
            for (name, rows, cols) in [
                ("attention.self.query", 8, 8),
                ("attention.self.key", 8, 8),
                ("attention.self.value", 8, 8),
                ("attention.output.dense", 8, 8),
                ("intermediate.dense", 12, 8),
                ("output.dense", 8, 12),
            ] {
                put(format!("{p}.{name}.weight"), &[rows, cols]);
                put(format!("{p}.{name}.bias"), &[rows]);
            }
            norm(&mut put, &format!("{p}.attention.output"));
            norm(&mut put, &format!("{p}.output"));
        }
        m
    }

    fn tensor(rows: &[Vec<u32>]) -> Tensor {
        Tensor::new(rows.to_vec(), &Device::Cpu).unwrap()
    }

    /// Two sentences of 5 and 3 tokens, the second padded with id 0.
    fn batch() -> (Tensor, Tensor, Tensor) {
        let ids = tensor(&[vec![1, 5, 7, 9, 2], vec![1, 4, 2, 0, 0]]);
        let types = ids.zeros_like().unwrap();
        let mask = tensor(&[vec![1; 5], vec![1, 1, 1, 0, 0]]);
        (ids, types, mask)
    }

    #[test]
    fn hidden_states_equal_candle_transformers_bert() {
        for prefix in ["", "bert."] {
            let vb = VarBuilder::from_tensors(weights(prefix), DType::F32, &Device::Cpu);
            let ours = InstrumentedBert::load(vb.clone(), &config()).unwrap();
            let theirs = BertModel::load(vb, &config()).unwrap();
            let (ids, types, mask) = batch();
            let a = ours.forward(&ids, &types, &mask).unwrap();
            let b = theirs.forward(&ids, &types, Some(&mask)).unwrap();
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-6, "{prefix:?}");
            assert_eq!(ours.prefix, prefix);
        }
    }

    #[test]
    fn grams_count_tokens_not_padding_and_name_every_linear_weight() {
        let vb = VarBuilder::from_tensors(weights(""), DType::F32, &Device::Cpu);
        let model = InstrumentedBert::load(vb, &config()).unwrap();
        let (ids, types, mask) = batch();
        let mut padded = model.gram_sums();
        model
            .forward_recording(&ids, &types, &mask, &mut padded)
            .unwrap();
        assert_eq!(padded.tokens(), 8);
        let padded = padded.finish().unwrap();
        // The same sentences one at a time, with no padding at all.
        let mut single = model.gram_sums();
        for (row, len) in [(0, 5), (1, 3)] {
            let cut = |t: &Tensor| t.narrow(0, row, 1).unwrap().narrow(1, 0, len).unwrap();
            model
                .forward_recording(&cut(&ids), &cut(&types), &cut(&mask), &mut single)
                .unwrap();
        }
        let single = single.finish().unwrap();
        assert_eq!(padded.len(), 8);
        for (p, s) in padded.iter().zip(&single) {
            assert_eq!((&p.weights, p.cols, p.tokens), (&s.weights, s.cols, 8));
            for (a, b) in p.gram.iter().zip(&s.gram) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{:?}", p.weights);
            }
            for i in 0..p.cols {
                assert!(p.gram[i * p.cols + i] > 0.0);
                for j in 0..i {
                    assert_eq!(p.gram[i * p.cols + j], p.gram[j * p.cols + i]);
                }
            }
        }
        assert_eq!(
            padded[0].weights,
            [
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.0.attention.self.key.weight",
                "encoder.layer.0.attention.self.value.weight"
            ]
        );
        assert_eq!(padded[7].weights, ["encoder.layer.1.output.dense.weight"]);
        assert_eq!((padded[3].cols, padded[2].cols), (12, 8));
        // The first input is the embedding LayerNorm output: its Gram by hand.
        let positions = Tensor::arange(0u32, 5, &Device::Cpu).unwrap();
        let sum = (model.word.forward(&ids).unwrap() + model.token_type.forward(&types).unwrap())
            .unwrap()
            .broadcast_add(&model.position.forward(&positions).unwrap())
            .unwrap();
        let x = model
            .emb_norm
            .forward(&sum)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let tokens: Vec<&Vec<f32>> = x[0].iter().chain(&x[1][..3]).collect();
        for i in 0..8 {
            for j in 0..8 {
                let want: f32 = tokens.iter().map(|t| t[i] * t[j]).sum::<f32>() / 8.0;
                let got = padded[0].gram[i * 8 + j];
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "({i}, {j})"
                );
            }
        }
    }

    #[test]
    fn the_shipped_texts_are_disjoint_and_a_shared_sentence_is_refused() {
        let calib = crate::sentences(crate::CALIBRATION_TEXT);
        let eval = crate::sentences(crate::DEFAULT_TEXT);
        assert_eq!((calib.len(), eval.len()), (1000, 600));
        check_disjoint(&calib, &eval).unwrap();
        let mut mixed = calib[..10].to_vec();
        mixed.push(eval[7].clone());
        match check_disjoint(&mixed, &eval) {
            Err(EvalError::SharedText { shared, example }) => {
                assert_eq!((shared, example.as_str()), (1, eval[7].as_str()))
            }
            other => panic!("{other:?}"),
        }
        assert!(check_disjoint(&eval, &eval).is_err());
    }

    #[test]
    fn finishing_without_tokens_is_an_error() {
        let vb = VarBuilder::from_tensors(weights(""), DType::F32, &Device::Cpu);
        let model = InstrumentedBert::load(vb, &config()).unwrap();
        assert!(matches!(
            model.gram_sums().finish(),
            Err(EvalError::Text(_))
        ));
    }
}
