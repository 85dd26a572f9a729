//! `hhtld`: inspect, encode, decode, verify and evaluate hhtld files.
//!
//! Exit status: 0 on success, 1 when a quality gate is missed
//! (`encode --require-gates`, `verify --against`, `eval --min-cos`), 2 on any error (bad
//! file, bad arguments, I/O). Errors are one line on stderr; the tool never
//! panics on bad input.

mod cmd;

use cmd::{decode, encode, eval, inspect, verify};

use std::cell::RefCell;
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Palette-compressed neural-network weights: inspect, encode, decode, verify, eval.
#[derive(Parser, Debug)]
#[command(name = "hhtld", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print what a file holds: the summary (version, totals, ratios, worst
    /// quality per regime, metadata keys), then the tensors; sections and
    /// palettes on request.
    Inspect {
        /// The .hhtld file.
        file: PathBuf,
        /// Also verify: every section CRC, zero padding, UTF-8 metadata
        /// values.
        #[arg(long)]
        verify: bool,
        /// Also print the section table and the bytes per section kind.
        #[arg(long)]
        sections: bool,
        /// Also print the palette table.
        #[arg(long)]
        palettes: bool,
        /// Print every table (--sections --palettes).
        #[arg(long)]
        all: bool,
        /// Print JSON (always everything) instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Encode a safetensors model (a .safetensors file or a sharded
    /// model.safetensors.index.json) into an .hhtld file.
    Encode(encode::Args),
    /// Decode an .hhtld file back to safetensors, for loaders that do not
    /// read hhtld yet.
    Decode {
        /// The .hhtld file.
        file: PathBuf,
        /// Output .safetensors file (written atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// Dtype of the decoded (palette-encoded) tensors; passthrough
        /// tensors always keep their stored dtype and bytes. Default: each
        /// tensor's original dtype.
        #[arg(long, value_enum)]
        dtype: Option<DtypeArg>,
        /// Refuse output larger than this many times the input file's size,
        /// per tensor and in total (spec §7 "Expansion limit"; guards
        /// against decompression bombs). Default: 1024.
        #[arg(long, value_name = "X")]
        max_expansion: Option<u64>,
    },
    /// Check every CRC; with --against, recompute every quality gate from
    /// the original weights, and the model-level figures `encode --eval`
    /// stored (by running both models).
    Verify {
        /// The .hhtld file.
        file: PathBuf,
        /// The original .safetensors (or .index.json) to measure against.
        #[arg(long)]
        against: Option<PathBuf>,
        /// The evaluation text the file's stored figures (encode --eval)
        /// were measured on, when it is not the built-in one; its SHA-256
        /// must match theirs.
        #[arg(long, value_name = "FILE", requires = "against")]
        text: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the model (BERT family) with the original weights and with the
    /// .hhtld weights in candle, and compare the sentence embeddings:
    /// per-sentence cosine, top-10 neighbour overlap, Spearman of pairwise
    /// similarities.
    Eval(eval::Args),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DtypeArg {
    F32,
    Bf16,
    F16,
}

/// How a command ended, when it did not fail outright.
pub enum Outcome {
    /// Everything passed.
    Ok,
    /// A quality gate was missed.
    GateMissed,
}

/// A command failure: printed as one line, exit status 2.
pub struct Failure(pub String);

impl<E: Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

thread_local! {
    /// Everything a command prints on stdout, written once at the end so a
    /// closed pipe (`hhtld inspect F | head`) is an ignored write error, not
    /// a panic.
    static OUT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Appends a line to the command's stdout buffer.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::push_out(format!($($arg)*))
    };
}

/// Adds one line to the output buffer.
pub fn push_out(line: String) {
    OUT.with(|o| {
        let mut o = o.borrow_mut();
        o.push_str(&line);
        o.push('\n');
    });
}

fn flush_out() {
    let text = OUT.with(|o| std::mem::take(&mut *o.borrow_mut()));
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (EPIPE) is not an error of ours.
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn main() -> ExitCode {
    // Bad input never panics; should a bug do so anyway, the user gets one
    // line and status 2, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("hhtld: internal error: {info}");
    }));
    let code = std::panic::catch_unwind(real_main).unwrap_or(ExitCode::from(2));
    flush_out();
    code
}

fn real_main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.cmd {
        Command::Inspect {
            file,
            verify,
            sections,
            palettes,
            all,
            json,
        } => {
            let show = hhtld::inspect::Show {
                sections: sections || all,
                palettes: palettes || all,
            };
            inspect::run(&file, verify, json, show)
        }
        Command::Encode(args) => encode::run(args),
        Command::Decode {
            file,
            output,
            dtype,
            max_expansion,
        } => decode::run(
            &file,
            &output,
            dtype.map(|d| match d {
                DtypeArg::F32 => hhtld_format::Dtype::F32,
                DtypeArg::Bf16 => hhtld_format::Dtype::Bf16,
                DtypeArg::F16 => hhtld_format::Dtype::F16,
            }),
            max_expansion,
        ),
        Command::Verify {
            file,
            against,
            text,
            json,
        } => verify::run(&file, against.as_deref(), text.as_deref(), json),
        Command::Eval(args) => eval::run(args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::GateMissed) => ExitCode::from(1),
        Err(Failure(msg)) => {
            eprintln!("hhtld: error: {msg}");
            ExitCode::from(2)
        }
    }
}
