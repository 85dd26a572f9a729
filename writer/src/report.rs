//! Where the bytes of a written file went (spec §8).
//!
//! Definitions, so that every byte is counted exactly once:
//! - **Section payload**: the `length` bytes of a section (its table entry).
//! - **Padding**: the zero bytes after each section up to the next multiple
//!   of 64. Counted on its own line, never in a section or tensor.
//! - **Header** (64 bytes) and **table** (32 bytes per section).
//!
//! So `file_len = header + table + padding + sum of all section payloads`,
//! see [`SizeReport::check`].
//!
//! Per tensor, `own_bytes` is the payload of the sections only it references
//! (ENTRY, SCALE, SLOT_L, or RAW) and `shared_bytes` its share of each
//! PALETTE, BASIS and FISHER_Z payload it uses. A shared object of `B` bytes
//! used by `n` tensors gives `B / n` bytes to each, and one extra byte to the
//! first `B mod n` users in tensor order, so shares are integers and add up.
//! Shared objects used by no tensor are on the `unused_shared` line; the
//! DIRECTORY, STRINGS and METADATA payloads are in `by_kind` only. Hence
//! `sum of tensor bytes + unused_shared + directory + strings + metadata =
//! sum of section payloads`.
//!
//! Every line is compared with BF16 storage of the same tensors: `2 x numel`
//! bytes; `ratio = bytes / bf16_bytes` (below 1 means smaller than BF16),
//! `None` when `bf16_bytes` is 0.

use std::fmt;

use hhtld_format::{Encoding, Regime, Role, SectionKind};
use serde_json::{json, Value};

/// Payload bytes of all sections of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindBytes {
    /// The section kind.
    pub kind: SectionKind,
    /// How many sections of that kind.
    pub sections: u64,
    /// Sum of their lengths (no padding).
    pub bytes: u64,
}

/// Bytes attributed to one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorBytes {
    /// Tensor name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Regime.
    pub regime: Regime,
    /// RAW or PALETTE.
    pub encoding: Encoding,
    /// Number of elements.
    pub numel: u64,
    /// Payload of the sections only this tensor references.
    pub own_bytes: u64,
    /// Its share of the shared palettes, bases and FisherZ tables it uses.
    pub shared_bytes: u64,
}

impl TensorBytes {
    /// `own_bytes + shared_bytes`.
    pub fn bytes(&self) -> u64 {
        self.own_bytes + self.shared_bytes
    }
    /// `2 x numel`, the size of the tensor in BF16.
    pub fn bf16_bytes(&self) -> u64 {
        self.numel.saturating_mul(2)
    }
    /// `bytes / bf16_bytes`, `None` for an empty tensor.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.bytes(), self.bf16_bytes())
    }
}

/// Sum over the tensors of one regime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegimeBytes {
    /// The regime.
    pub regime: Regime,
    /// Number of tensors.
    pub tensors: u64,
    /// Number of elements.
    pub numel: u64,
    /// Sum of [`TensorBytes::bytes`].
    pub bytes: u64,
}

impl RegimeBytes {
    /// `2 x numel`.
    pub fn bf16_bytes(&self) -> u64 {
        self.numel.saturating_mul(2)
    }
    /// `bytes / bf16_bytes`.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.bytes, self.bf16_bytes())
    }
}

/// The size report [`crate::builder::Writer::finish`] returns. See the module
/// documentation for what each number counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeReport {
    /// Total file length.
    pub file_len: u64,
    /// Header bytes (64).
    pub header_bytes: u64,
    /// Section table bytes (32 per section).
    pub table_bytes: u64,
    /// Zero bytes between sections and before the table.
    pub padding_bytes: u64,
    /// Payload per section kind, in kind order; kinds with no section omitted.
    pub by_kind: Vec<KindBytes>,
    /// Per tensor, in the order added.
    pub tensors: Vec<TensorBytes>,
    /// Per regime, in regime order; regimes with no tensor omitted.
    pub by_regime: Vec<RegimeBytes>,
    /// Payload of shared PALETTE, BASIS and FISHER_Z sections no tensor uses.
    pub unused_shared: u64,
}

fn ratio(bytes: u64, bf16: u64) -> Option<f64> {
    (bf16 > 0).then(|| bytes as f64 / bf16 as f64)
}

impl SizeReport {
    /// Payload bytes of one kind (0 when there is none).
    pub fn kind_bytes(&self, kind: SectionKind) -> u64 {
        self.by_kind
            .iter()
            .find(|k| k.kind == kind)
            .map_or(0, |k| k.bytes)
    }

    /// Sum of `2 x numel` over all tensors.
    pub fn bf16_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.bf16_bytes()))
    }

    /// `file_len / bf16_bytes` for the whole file.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.file_len, self.bf16_bytes())
    }

    /// Checks both accounting identities of the module documentation;
    /// `Err` says which one fails. A report from the writer always passes.
    pub fn check(&self) -> Result<(), String> {
        let payload: u64 = self.by_kind.iter().map(|k| k.bytes).sum();
        let whole = self.header_bytes + self.table_bytes + self.padding_bytes + payload;
        if whole != self.file_len {
            return Err(format!(
                "header + table + padding + payload = {whole} != file_len {}",
                self.file_len
            ));
        }
        let tensors: u64 = self.tensors.iter().map(TensorBytes::bytes).sum();
        let rest = self.kind_bytes(SectionKind::Directory)
            + self.kind_bytes(SectionKind::Strings)
            + self.kind_bytes(SectionKind::Metadata);
        if tensors + self.unused_shared + rest != payload {
            return Err(format!(
                "tensors {tensors} + unused shared {} + directory/strings/metadata {rest} != payload {payload}",
                self.unused_shared
            ));
        }
        let by_regime: u64 = self.by_regime.iter().map(|r| r.bytes).sum();
        if by_regime != tensors {
            return Err(format!("regime sum {by_regime} != tensor sum {tensors}"));
        }
        Ok(())
    }

    /// The report as JSON: `file_len`, `header`, `table`, `padding`,
    /// `unused_shared`, `bf16_bytes`, `ratio`, `by_kind[]`, `by_regime[]`,
    /// `tensors[]` (each line with `bytes`, `bf16_bytes` and `ratio`).
    pub fn to_json(&self) -> Value {
        json!({
            "file_len": self.file_len,
            "header": self.header_bytes,
            "table": self.table_bytes,
            "padding": self.padding_bytes,
            "unused_shared": self.unused_shared,
            "bf16_bytes": self.bf16_bytes(),
            "ratio": self.ratio(),
            "by_kind": self.by_kind.iter().map(|k| json!({
                "kind": k.kind.name(),
                "sections": k.sections,
                "bytes": k.bytes,
            })).collect::<Vec<_>>(),
            "by_regime": self.by_regime.iter().map(|r| json!({
                "regime": r.regime.name(),
                "tensors": r.tensors,
                "numel": r.numel,
                "bytes": r.bytes,
                "bf16_bytes": r.bf16_bytes(),
                "ratio": r.ratio(),
            })).collect::<Vec<_>>(),
            "tensors": self.tensors.iter().map(|t| json!({
                "name": t.name,
                "role": t.role.name(),
                "regime": t.regime.name(),
                "encoding": t.encoding.name(),
                "numel": t.numel,
                "own_bytes": t.own_bytes,
                "shared_bytes": t.shared_bytes,
                "bytes": t.bytes(),
                "bf16_bytes": t.bf16_bytes(),
                "ratio": t.ratio(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.4}"))
}

impl fmt::Display for SizeReport {
    /// A plain-text table: tensors, regimes, kinds, then the file totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<48} {:<12} {:<8} {:>14} {:>14} {:>8}",
            "tensor", "regime", "encoding", "bytes", "bf16 bytes", "ratio"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "{:<48} {:<12} {:<8} {:>14} {:>14} {:>8}",
                t.name,
                t.regime.name(),
                t.encoding.name(),
                t.bytes(),
                t.bf16_bytes(),
                fmt_ratio(t.ratio())
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<12} {:>8} {:>14} {:>14} {:>8}",
            "regime", "tensors", "bytes", "bf16 bytes", "ratio"
        )?;
        for r in &self.by_regime {
            writeln!(
                f,
                "{:<12} {:>8} {:>14} {:>14} {:>8}",
                r.regime.name(),
                r.tensors,
                r.bytes,
                r.bf16_bytes(),
                fmt_ratio(r.ratio())
            )?;
        }
        writeln!(f)?;
        writeln!(f, "{:<14} {:>8} {:>14}", "part", "sections", "bytes")?;
        writeln!(f, "{:<14} {:>8} {:>14}", "header", "", self.header_bytes)?;
        for k in &self.by_kind {
            writeln!(f, "{:<14} {:>8} {:>14}", k.kind.name(), k.sections, k.bytes)?;
        }
        writeln!(f, "{:<14} {:>8} {:>14}", "padding", "", self.padding_bytes)?;
        writeln!(f, "{:<14} {:>8} {:>14}", "table", "", self.table_bytes)?;
        writeln!(
            f,
            "{:<14} {:>8} {:>14}   (unused shared objects: {} bytes)",
            "file", "", self.file_len, self.unused_shared
        )?;
        write!(
            f,
            "bf16: {} bytes, file/bf16 ratio {}",
            self.bf16_bytes(),
            fmt_ratio(self.ratio())
        )
    }
}
