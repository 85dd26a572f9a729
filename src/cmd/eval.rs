//! `hhtld eval`: run the model with its original weights and with the
//! weights of an hhtld file, and compare the sentence embeddings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hhtld_eval::{evaluate, sentences, ModelFiles, Sources, Weights, DEFAULT_TEXT};
use hhtld_reader::HhtldFile;
use serde_json::json;

use crate::{Failure, Outcome};

/// Sentences per forward pass.
const BATCH: usize = 32;

/// Parsed `eval` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The original weights: a .safetensors file, a sharded
    /// .index.json, or a model directory.
    pub original: PathBuf,
    /// The .hhtld file.
    pub encoded: PathBuf,
    /// Sentences, one per line (default: the 600 shipped evaluation
    /// sentences, data/text/eval.txt).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when any sentence's cosine to the original
    /// (cos_min) is below this.
    #[arg(long, value_name = "X")]
    pub min_cos: Option<f64>,
    /// config.json to use instead of the file's own (metadata) or the
    /// one beside the original.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// tokenizer.json to use instead of the file's own (metadata) or the
    /// one beside the original.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

pub fn run(a: Args) -> Result<Outcome, Failure> {
    let start = Instant::now();
    let text = match &a.text {
        Some(p) => read(p)?,
        None => DEFAULT_TEXT.to_owned(),
    };
    let sents = sentences(&text);
    if sents.is_empty() {
        return Err(Failure("the text has no sentences (one per line)".into()));
    }
    let original = Weights::original(&a.original)?;
    let file = HhtldFile::open(&a.encoded)?;
    let files = ModelFiles::find(&Sources {
        config: a.config.as_deref(),
        tokenizer: a.tokenizer.as_deref(),
        hhtld: Some(&file),
        dir: original.dir(),
    })?;
    let r = evaluate(&original, &Weights::Hhtld(file), &files, &sents, BATCH)?;
    let m = &r.metrics;
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        // The figures (Metrics' fields), then timings and the gate.
        let mut j = serde_json::to_value(m)?;
        for (k, v) in [
            ("load_original_s", json!(r.load_original.as_secs_f64())),
            ("load_hhtld_s", json!(r.load_hhtld.as_secs_f64())),
            ("embed_original_s", json!(r.embed_original.as_secs_f64())),
            ("embed_hhtld_s", json!(r.embed_hhtld.as_secs_f64())),
            ("wall_s", json!(secs)),
            ("min_cos", json!(a.min_cos)),
            ("passed", json!(a.min_cos.map(|x| m.cos_min >= x))),
        ] {
            j[k] = v;
        }
        crate::outln!("{j:#}");
    } else {
        crate::outln!(
            "{} vs {}: {} sentences",
            a.encoded.display(),
            a.original.display(),
            m.sentences
        );
        crate::outln!(
            "cosine to original   mean {:.5}   p1 {:.5}   min {:.5}",
            m.cos_mean,
            m.cos_p1,
            m.cos_min
        );
        crate::outln!("top-10 neighbour overlap   {:.4}", m.top10_overlap);
        crate::outln!("Spearman of pairwise sims  {:.5}", m.spearman);
        crate::outln!(
            "load: original {:.3} s, hhtld {:.3} s; embed: original {:.2} s, hhtld {:.2} s; wall {:.2} s",
            r.load_original.as_secs_f64(),
            r.load_hhtld.as_secs_f64(),
            r.embed_original.as_secs_f64(),
            r.embed_hhtld.as_secs_f64(),
            secs
        );
    }
    match a.min_cos {
        // A NaN cosine (a broken model) fails the gate too.
        Some(x) if m.cos_min < x || m.cos_min.is_nan() => {
            eprintln!("hhtld: cos_min {:.5} is below --min-cos {x}", m.cos_min);
            Ok(Outcome::GateMissed)
        }
        _ => Ok(Outcome::Ok),
    }
}
