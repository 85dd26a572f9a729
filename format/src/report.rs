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
//! bytes; `ratio = bf16_bytes / bytes`, the compression ratio (4.0 reads
//! "4:1 smaller than BF16"), `None` when `bytes` is 0.
//!
//! The figures every tool prints are defined here once:
//! - **encoded ratio** ([`SizeReport::encoded`]): over the tensors stored
//!   palette-encoded (encoding PALETTE), their BF16 bytes over their bytes
//!   (own sections plus shares of palettes, bases and FisherZ tables). A
//!   tensor that fell back to raw BF16 keeps its regime but is not encoded,
//!   so it is not counted here;
//! - **whole-file ratio** ([`SizeReport::ratio`]): BF16 bytes of every
//!   tensor over the file length;
//! - **per regime** ([`SizeReport::by_regime`]): tensors, elements, bytes
//!   and ratio of every tensor of the regime (raw or encoded), with the worst
//!   recorded quality of each figure ([`RegimeBytes::worst`]).
//!
//! The writer (`hhtld_writer::builder::Writer::finish`) and a reader of any
//! file ([`SizeReport::from_layout`], used by `hhtld inspect`) fill the same
//! [`Accounting`] and call [`SizeReport::compute`], so both count alike; it
//! lives in `format` so that read-only tools need no writer.

use std::fmt;
use std::ops::Range;

use crate::layout::{align64, HEADER_LEN, SECTION_ENTRY_LEN};
use crate::validate::{Layout, Quality};
use crate::{Encoding, Regime, Role, SectionKind};
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Its recorded quality (palette-encoded tensors).
    pub quality: Option<Quality>,
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
    /// `bf16_bytes / bytes` (e.g. 4.0 for 4:1), `None` when either is 0.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.bytes(), self.bf16_bytes())
    }
}

/// Sum over the tensors of one regime.
#[derive(Debug, Clone, PartialEq)]
pub struct RegimeBytes {
    /// The regime.
    pub regime: Regime,
    /// Number of tensors.
    pub tensors: u64,
    /// How many of them are palette-encoded.
    pub encoded: u64,
    /// Number of elements.
    pub numel: u64,
    /// Sum of [`TensorBytes::bytes`].
    pub bytes: u64,
    /// Worst recorded quality, each figure on its own (lowest rho median,
    /// p5 and min, highest rel_fro); `None` when no tensor records one.
    pub worst: Option<Quality>,
}

/// Sum over the palette-encoded tensors ([`SizeReport::encoded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedBytes {
    /// Number of palette-encoded tensors.
    pub tensors: u64,
    /// Their elements.
    pub numel: u64,
    /// Their bytes (own plus shared shares).
    pub bytes: u64,
}

impl EncodedBytes {
    /// `2 x numel`.
    pub fn bf16_bytes(&self) -> u64 {
        self.numel.saturating_mul(2)
    }
    /// `bf16_bytes / bytes`: the encoded ratio.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.bytes, self.bf16_bytes())
    }
}

/// The worse of two quality records, field by field.
fn worse(a: Option<Quality>, b: Option<Quality>) -> Option<Quality> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Quality {
            rho_median: a.rho_median.min(b.rho_median),
            rho_p5: a.rho_p5.min(b.rho_p5),
            rho_min: a.rho_min.min(b.rho_min),
            rel_fro: a.rel_fro.max(b.rel_fro),
        }),
        (a, b) => a.or(b),
    }
}

/// A quality record as JSON (`rho_median`, `rho_p5`, `rho_min`,
/// `rel_fro`), `null` without one; what `--json` outputs print.
pub fn quality_json(q: &Option<Quality>) -> Value {
    q.map_or(Value::Null, |q| {
        json!({
            "rho_median": q.rho_median,
            "rho_p5": q.rho_p5,
            "rho_min": q.rho_min,
            "rel_fro": q.rel_fro,
        })
    })
}

impl RegimeBytes {
    /// `2 x numel`.
    pub fn bf16_bytes(&self) -> u64 {
        self.numel.saturating_mul(2)
    }
    /// `bf16_bytes / bytes`.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.bytes, self.bf16_bytes())
    }
}

/// The size report the writer's `finish` returns and `inspect` prints. See the module
/// documentation for what each number counts.
#[derive(Debug, Clone, PartialEq)]
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
    /// Payload of shared PALETTE, BASIS and FISHER_Z sections no tensor
    /// uses, and of sections of unknown kinds.
    pub unused_shared: u64,
    /// Payload of sections of kinds this version does not know (optional
    /// sections of a newer minor version); not in `by_kind`.
    pub unknown_bytes: u64,
}

/// The length of each section range, as payload bytes.
fn range_lens<'a>(ranges: impl Iterator<Item = &'a Range<usize>>) -> Vec<u64> {
    ranges.map(|r| r.len() as u64).collect()
}

fn ratio(bytes: u64, bf16: u64) -> Option<f64> {
    (bytes > 0 && bf16 > 0).then(|| bf16 as f64 / bytes as f64)
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

    /// `bf16_bytes / file_len` for the whole file: the whole-file ratio.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.file_len, self.bf16_bytes())
    }

    /// The palette-encoded tensors (encoding PALETTE) summed: the encoded
    /// ratio's numbers.
    pub fn encoded(&self) -> EncodedBytes {
        self.tensors
            .iter()
            .filter(|t| t.encoding == Encoding::Palette)
            .fold(
                EncodedBytes {
                    tensors: 0,
                    numel: 0,
                    bytes: 0,
                },
                |a, t| EncodedBytes {
                    tensors: a.tensors + 1,
                    numel: a.numel.saturating_add(t.numel),
                    bytes: a.bytes + t.bytes(),
                },
            )
    }

    /// Checks both accounting identities of the module documentation;
    /// `Err` says which one fails. A report from the writer always passes.
    pub fn check(&self) -> Result<(), String> {
        let payload: u64 = self.by_kind.iter().map(|k| k.bytes).sum::<u64>() + self.unknown_bytes;
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
    /// `unused_shared`, `bf16_bytes`, `ratio`, `encoded{}`, `by_kind[]`,
    /// `by_regime[]`, `tensors[]` (each line with `bytes`, `bf16_bytes` and
    /// `ratio`).
    pub fn to_json(&self) -> Value {
        let enc = self.encoded();
        json!({
            "file_len": self.file_len,
            "header": self.header_bytes,
            "table": self.table_bytes,
            "padding": self.padding_bytes,
            "unused_shared": self.unused_shared,
            "unknown_bytes": self.unknown_bytes,
            "bf16_bytes": self.bf16_bytes(),
            "ratio": self.ratio(),
            "encoded": {
                "tensors": enc.tensors,
                "numel": enc.numel,
                "bytes": enc.bytes,
                "bf16_bytes": enc.bf16_bytes(),
                "ratio": enc.ratio(),
            },
            "by_kind": self.by_kind.iter().map(|k| json!({
                "kind": k.kind.name(),
                "sections": k.sections,
                "bytes": k.bytes,
            })).collect::<Vec<_>>(),
            "by_regime": self.by_regime.iter().map(|r| json!({
                "regime": r.regime.name(),
                "tensors": r.tensors,
                "encoded": r.encoded,
                "numel": r.numel,
                "bytes": r.bytes,
                "bf16_bytes": r.bf16_bytes(),
                "ratio": r.ratio(),
                "worst": quality_json(&r.worst),
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
                "quality": quality_json(&t.quality),
            })).collect::<Vec<_>>(),
        })
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
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
            "bf16: {} bytes, bf16/file ratio {}:1",
            self.bf16_bytes(),
            fmt_ratio(self.ratio())
        )
    }
}

/// One section as the accounting sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionBytes {
    /// Kind, `None` for a kind this version does not know.
    pub kind: Option<SectionKind>,
    /// File offset.
    pub offset: u64,
    /// Payload length.
    pub length: u64,
}

/// One tensor as the accounting sees it: its line of the report, and the
/// shared objects whose bytes [`SizeReport::compute`] splits among their
/// users.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorAccount {
    /// The tensor's report line; its `shared_bytes` is not read (use 0):
    /// `compute` sets it from `palettes` and `basis`.
    pub line: TensorBytes,
    /// Palette indices it uses (a palette used by two stages counts once).
    pub palettes: Vec<u32>,
    /// Basis index it uses.
    pub basis: Option<u32>,
}

/// Everything [`SizeReport::compute`] needs: the table and the directory.
#[derive(Debug, Clone, Copy)]
pub struct Accounting<'a> {
    /// File length.
    pub file_len: u64,
    /// Section table bytes.
    pub table_len: u64,
    /// Every section, in file order.
    pub sections: &'a [SectionBytes],
    /// PALETTE payload per palette index.
    pub palette_bytes: &'a [u64],
    /// FISHER_Z payload per palette index (0 without a table).
    pub fisher_bytes: &'a [u64],
    /// BASIS payload per basis index.
    pub basis_bytes: &'a [u64],
    /// Tensors, in directory order.
    pub tensors: &'a [TensorAccount],
}

impl SizeReport {
    /// The report of spec §8 from the table and directory. Sections of a
    /// kind this version does not know (a newer minor version) are counted
    /// on the `unused_shared` line, so the identities of
    /// [`SizeReport::check`] still hold.
    pub fn compute(a: &Accounting<'_>) -> SizeReport {
        let mut by_kind: Vec<KindBytes> = Vec::new();
        let mut padding = 0u64;
        let mut unknown = 0u64;
        for e in a.sections {
            let end = e.offset.saturating_add(e.length);
            padding += align64(end).unwrap_or(end) - end;
            let Some(kind) = e.kind else {
                unknown += e.length;
                continue;
            };
            match by_kind.iter_mut().find(|k| k.kind == kind) {
                Some(k) => {
                    k.sections += 1;
                    k.bytes += e.length;
                }
                None => by_kind.push(KindBytes {
                    kind,
                    sections: 1,
                    bytes: e.length,
                }),
            }
        }
        by_kind.sort_by_key(|k| k.kind);

        // Shared objects (payload, users in tensor order): palettes, their
        // FisherZ tables, then bases.
        let n_p = a.palette_bytes.len();
        let mut shared: Vec<(u64, Vec<usize>)> = a
            .palette_bytes
            .iter()
            .chain(a.fisher_bytes)
            .chain(a.basis_bytes)
            .map(|&b| (b, Vec::new()))
            .collect();
        for (t, info) in a.tensors.iter().enumerate() {
            let mut ps = info.palettes.clone();
            ps.sort_unstable();
            ps.dedup();
            for p in ps {
                let p = p as usize;
                if let Some(s) = shared.get_mut(p) {
                    s.1.push(t);
                }
                if let Some(s) = shared.get_mut(n_p + p) {
                    s.1.push(t);
                }
            }
            if let Some(s) = info
                .basis
                .and_then(|b| shared.get_mut(2 * n_p + b as usize))
            {
                s.1.push(t);
            }
        }
        let mut shares = vec![0u64; a.tensors.len()];
        let mut unused_shared = unknown;
        for (bytes, users) in &shared {
            if users.is_empty() {
                unused_shared += bytes;
                continue;
            }
            let n = users.len() as u64;
            for (i, &t) in users.iter().enumerate() {
                shares[t] += bytes / n + u64::from((i as u64) < bytes % n);
            }
        }

        let mut tensors = Vec::with_capacity(a.tensors.len());
        let mut by_regime: Vec<RegimeBytes> = Vec::new();
        for (info, share) in a.tensors.iter().zip(shares) {
            let tb = TensorBytes {
                shared_bytes: share,
                ..info.line.clone()
            };
            let encoded = u64::from(tb.encoding == Encoding::Palette);
            match by_regime.iter_mut().find(|r| r.regime == tb.regime) {
                Some(r) => {
                    r.tensors += 1;
                    r.encoded += encoded;
                    r.numel = r.numel.saturating_add(tb.numel);
                    r.bytes += tb.bytes();
                    r.worst = worse(r.worst, tb.quality);
                }
                None => by_regime.push(RegimeBytes {
                    regime: tb.regime,
                    tensors: 1,
                    encoded,
                    numel: tb.numel,
                    bytes: tb.bytes(),
                    worst: tb.quality,
                }),
            }
            tensors.push(tb);
        }
        by_regime.sort_by_key(|r| r.regime);

        SizeReport {
            file_len: a.file_len,
            header_bytes: HEADER_LEN as u64,
            table_bytes: a.table_len,
            padding_bytes: padding,
            by_kind,
            tensors,
            by_regime,
            unused_shared,
            unknown_bytes: unknown,
        }
    }

    /// The report of an existing file, from its validated layout (`bytes`
    /// is the file the layout was parsed from, for the tensor names).
    pub fn from_layout(layout: &Layout, bytes: &[u8]) -> SizeReport {
        let sections: Vec<SectionBytes> = layout
            .sections
            .iter()
            .map(|s| SectionBytes {
                kind: s.kind,
                offset: s.offset as u64,
                length: s.length as u64,
            })
            .collect();
        let mut fisher_bytes = vec![0u64; layout.palettes.len()];
        for f in &layout.fishers {
            if let Some(b) = fisher_bytes.get_mut(f.palette as usize) {
                *b += f.range.len() as u64;
            }
        }
        let tensors: Vec<TensorAccount> = layout
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| TensorAccount {
                line: TensorBytes {
                    name: layout.tensor_name(bytes, i).unwrap_or("").to_string(),
                    role: t.role,
                    regime: t.regime,
                    encoding: t.encoding,
                    numel: t.numel as u64,
                    own_bytes: (t.data.len()
                        + t.scale.as_ref().map_or(0, |s| s.range.len())
                        + t.slot.as_ref().map_or(0, |s| s.range.len()))
                        as u64,
                    shared_bytes: 0,
                    quality: t.quality,
                },
                palettes: t.stages().iter().map(|s| s.palette).collect(),
                basis: t.slot.as_ref().map(|s| s.basis),
            })
            .collect();
        SizeReport::compute(&Accounting {
            file_len: layout.file_len as u64,
            table_len: (layout.sections.len() * SECTION_ENTRY_LEN) as u64,
            sections: &sections,
            palette_bytes: &range_lens(layout.palettes.iter().map(|p| &p.range)),
            fisher_bytes: &fisher_bytes,
            basis_bytes: &range_lens(layout.bases.iter().map(|b| &b.range)),
            tensors: &tensors,
        })
    }
}
