//! Embeds sentences with candle from a self-contained `.hhtld` file: the
//! weights, `config.json` and `tokenizer.json` all come from the one file.
//!
//! ```text
//! cargo run --release -p hhtld-reader --features candle --example embed -- \
//!     minilm.hhtld "A cat sits on the mat." "A dog lies on the rug." "Tax law changed."
//! ```
//! Prints the cosine similarity of every pair of sentences.

use std::error::Error;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use hhtld_reader::candle::HhtldBackend;
use tokenizers::{PaddingParams, Tokenizer};

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: embed MODEL.hhtld SENTENCE...")?;
    let sentences: Vec<String> = args.collect();

    // --- loading a model from a .hhtld file ---
    let backend = HhtldBackend::open(&path)?;
    let meta = |key: &str| -> Result<String, String> {
        match backend.file().view().metadata_value(key) {
            Ok(Some(v)) => Ok(v.to_owned()),
            Ok(None) => Err(format!("{path} has no {key}")),
            Err(e) => Err(format!("{path}: {e}")),
        }
    };
    let config: Config = serde_json::from_str(&meta("file.config.json")?)?;
    let mut tokenizer = Tokenizer::from_bytes(meta("file.tokenizer.json")?)?;
    tokenizer.with_padding(Some(PaddingParams::default()));
    let model = BertModel::load(backend.into_var_builder(DType::F32, &Device::Cpu), &config)?;
    // --- that is all; the rest is an ordinary candle BERT embedding ---

    let enc = tokenizer.encode_batch(sentences.clone(), true)?;
    let col = |f: fn(&tokenizers::Encoding) -> &[u32]| {
        Tensor::new(
            enc.iter().map(|e| f(e).to_vec()).collect::<Vec<_>>(),
            &Device::Cpu,
        )
    };
    let (ids, types, mask) = (
        col(|e| e.get_ids())?,
        col(|e| e.get_type_ids())?,
        col(|e| e.get_attention_mask())?,
    );
    let hidden = model.forward(&ids, &types, Some(&mask))?;
    // Mean over real tokens, then L2 norm (sentence-transformers' pooling).
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let pooled = hidden
        .broadcast_mul(&m)?
        .sum(1)?
        .broadcast_div(&m.sum(1)?)?;
    let emb = pooled.broadcast_div(&pooled.sqr()?.sum_keepdim(1)?.sqrt()?)?;
    let sims: Vec<Vec<f32>> = emb.matmul(&emb.t()?)?.to_vec2()?;
    for (i, row) in sims.iter().enumerate() {
        for (j, s) in row.iter().enumerate().skip(i + 1) {
            println!("{s:.4}  {:?} ~ {:?}", sentences[i], sentences[j]);
        }
    }
    Ok(())
}
