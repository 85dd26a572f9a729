//! Generates the conformance vectors in `spec/vectors/` (spec/hhtld.md).
//!
//! - `valid/X.hhtld`: small files written with the builder; beside each,
//!   `X.json` (what `hhtld inspect --json --verify X.hhtld` prints) and
//!   `X.rows.json` (every row of every float tensor decoded by the reader, as
//!   hex f32 bit patterns so comparisons are exact).
//! - `guarded/X.hhtld`: a valid file that readers refuse to decode whole
//!   under the default expansion limit (spec §7); `X.expected` lists the
//!   file length, the limit and each refused tensor with its f32 size.
//! - `invalid/X.hhtld`: a valid file with exactly one rule broken, CRCs
//!   recomputed so a reader reaches that rule; `X.expected` holds the
//!   `FormatError::kind()` and `FormatError::rule()` a reader must return.
//!   Rules with several vectors use `rule.variant.hhtld`.
//!
//! Everything is deterministic; `tests/conformance.rs` includes this file and
//! checks that regenerating reproduces the committed bytes.
//!
//! Run: `cargo run --release --example gen_vectors`

use std::collections::BTreeSet;
use std::error::Error;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use hhtld_format::error::RULES;
use hhtld_format::layout::{
    align64, BasisRecord, DirHeader, FisherRecord, Header, PaletteRecord, SectionEntry,
    TensorRecord, HEADER_CRC_SPAN, MAGIC, NONE, SECTION_FLAG_REQUIRED, TENSOR_RECORD_LEN,
};
use hhtld_format::limits::{MAX_PALETTES, MAX_SECTIONS, MAX_TENSORS};
use hhtld_format::{Dtype, ElemType, Regime, Role, SectionKind};
use hhtld_reader::HhtldFile;
use hhtld_writer::builder::{
    EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, Writer,
};
use zerocopy::little_endian::{F32, U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// Errors of the generator (its inputs are fixed, so any error is a bug).
pub type Res<T> = Result<T, Box<dyn Error>>;

/// A valid vector: its name (without extension) and bytes.
pub struct Valid {
    /// File stem under `valid/`.
    pub name: &'static str,
    /// The file.
    pub bytes: Vec<u8>,
}

/// An invalid vector and the rule it breaks.
pub struct Invalid {
    /// File stem under `invalid/`: the rule id in lower case, then `.variant`.
    pub name: String,
    /// The spec rule a reader must report.
    pub rule: &'static str,
    /// Whether open accepts the file and verification reports the rule
    /// (a rule about data that open does not read, spec §7).
    pub at_verify: bool,
    /// The file.
    pub bytes: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Deterministic inputs. No transcendental functions: results must not depend
// on the platform's libm.

/// `n` values on a 1/24 grid in [-2, 2): divisions by 24 round, so storing
/// them as f16/bf16 exercises rounding.
fn vals(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 + seed * 11 + i / 5) % 97) as f32 / 24.0 - 2.0)
        .collect()
}

/// `n` codes below `k`.
fn codes(n: usize, k: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 7 + seed * 3 + i / 3) % k) as u8)
        .collect()
}

/// `n` rows of SlotL coefficients, including the extremes -128 and 127.
fn coefs(n: usize, seed: usize) -> Vec<[i8; 8]> {
    (0..n)
        .map(|r| {
            let mut c = [0i8; 8];
            for (i, v) in c.iter_mut().enumerate() {
                *v = (((r * 8 + i) * 53 + seed * 29) % 256) as u8 as i8;
            }
            c
        })
        .collect()
}

fn scales(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|r| 0.25 + ((r * 5 + seed) % 7) as f32 / 3.0)
        .collect()
}

const QUALITY: Quality = Quality {
    rho_median: 0.993,
    rho_p5: 0.981,
    rho_min: 0.95,
    rel_fro: 0.0625,
};

fn le<T: IntoBytes + zerocopy::Immutable>(v: &[T]) -> Vec<u8> {
    v.as_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// Writer helpers.

type W = Writer<Cursor<Vec<u8>>>;

fn writer() -> Res<W> {
    Ok(Writer::new(Cursor::new(Vec::new()))?)
}

fn finish(w: W) -> Res<Vec<u8>> {
    let (c, _) = w.finish_into_inner()?;
    Ok(c.into_inner())
}

fn palette(w: &mut W, k: usize, d: usize, bits: u8, elem: ElemType, seed: usize) -> Res<PaletteId> {
    let values = vals(k * d, seed);
    Ok(w.add_palette(PaletteSpec {
        k,
        d,
        bits,
        elem,
        values: &values,
    })?)
}

fn raw(w: &mut W, name: &str, dtype: Dtype, shape: &[u64], bytes: &[u8]) -> Res<()> {
    Ok(w.add_raw_tensor(RawTensor::passthrough(name, dtype, shape, bytes))?)
}

/// Codes for one stage of a tensor of `shape` with palette `(k, d)`.
fn stage_codes(shape: &[u64], k: usize, d: usize, seed: usize) -> Vec<u8> {
    let (n_rows, n_cols) = hhtld_format::encode::matrix_dims(shape).expect("a small shape");
    codes(n_rows as usize * (n_cols as usize).div_ceil(d), k, seed)
}

fn n_rows(shape: &[u64]) -> usize {
    match shape {
        [] | [_] => 1,
        [r, ..] => *r as usize,
    }
}

// ---------------------------------------------------------------------------
// Valid vectors.

fn v_empty() -> Res<Vec<u8>> {
    finish(writer()?)
}

fn v_raw_dtypes() -> Res<Vec<u8>> {
    let mut w = writer()?;
    raw(&mut w, "scalar", Dtype::F32, &[], &1.5f32.to_le_bytes())?;
    let v: [u32; 5] = [
        0,
        0x8000_0000, // -0.0
        0x0000_0001, // smallest subnormal
        0x7F80_0000, // +inf
        0x7FC0_0000, // canonical quiet NaN
    ];
    raw(&mut w, "vector.f32", Dtype::F32, &[5], &le(&v))?;
    raw(&mut w, "bool", Dtype::Bool, &[4], &[0, 1, 1, 0])?;
    raw(&mut w, "u8", Dtype::U8, &[2, 3], &[0, 1, 2, 253, 254, 255])?;
    raw(&mut w, "i8", Dtype::I8, &[3], &le(&[-128i8, 0, 127]))?;
    raw(&mut w, "i16", Dtype::I16, &[2], &le(&[-32768i16, 32767]))?;
    raw(&mut w, "u16", Dtype::U16, &[2], &le(&[0u16, 65535]))?;
    raw(
        &mut w,
        "i32",
        Dtype::I32,
        &[2, 1],
        &le(&[i32::MIN, i32::MAX]),
    )?;
    raw(&mut w, "u32", Dtype::U32, &[2], &le(&[0u32, u32::MAX]))?;
    raw(
        &mut w,
        "i64",
        Dtype::I64,
        &[2, 2],
        &le(&[i64::MIN, -1, 0, i64::MAX]),
    )?;
    raw(&mut w, "u64", Dtype::U64, &[1], &le(&[u64::MAX]))?;
    raw(&mut w, "f8_e4m3", Dtype::F8E4M3, &[2], &[0x38, 0xB8])?;
    raw(&mut w, "f8_e5m2", Dtype::F8E5M2, &[2], &[0x3C, 0xFC])?;
    // 1.0, -2.0, smallest subnormal, +inf, -0.0, quiet NaN.
    let h: [u16; 6] = [0x3C00, 0xC000, 0x0001, 0x7C00, 0x8000, 0x7E00];
    raw(&mut w, "f16", Dtype::F16, &[2, 3], &le(&h))?;
    // 1.0, -1.5, smallest subnormal, +inf.
    let b: [u16; 4] = [0x3F80, 0xBFC0, 0x0001, 0x7F80];
    raw(&mut w, "bf16", Dtype::Bf16, &[2, 2], &le(&b))?;
    // f64 -> f32 rounding: underflow to 0, overflow to inf, a tie at f32::MAX
    // (rounds to even, which is inf), and 0.1 (inexact).
    let tie = f64::from(f32::MAX) + f64::from_bits((1023 + 103) << 52);
    let f: [f64; 6] = [1.0, -2.5, 1e-300, 1e300, tie, 0.1];
    raw(&mut w, "f64", Dtype::F64, &[2, 3, 1], &le(&f))?;
    raw(&mut w, "empty.2d", Dtype::F32, &[0, 4], &[])?;
    raw(&mut w, "empty.1d", Dtype::F16, &[0], &[])?;
    raw(&mut w, "zero.cols", Dtype::F32, &[2, 0], &[])?;
    finish(w)
}

fn v_palette_f32_8bit() -> Res<Vec<u8>> {
    let mut w = writer()?;
    let p = palette(&mut w, 200, 2, 8, ElemType::F32, 1)?;
    let shape = [4u64, 6];
    let c = stage_codes(&shape, 200, 2, 1);
    let s = scales(4, 1);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "attn.q.weight",
            Dtype::F32,
            &shape,
            Role::AttnQ,
            Regime::Argmax,
            &[Stage::new(p, &c)],
        )
        .with_scale(ElemType::F32, &s)
        .with_quality(Some(QUALITY)),
    )?;
    // A 1-D tensor (one row) sharing the palette.
    let c = stage_codes(&[6], 200, 2, 2);
    w.add_encoded_tensor(EncodedTensor::new(
        "attn.q.bias",
        Dtype::F32,
        &[6],
        Role::Bias,
        Regime::Index,
        &[Stage::new(p, &c)],
    ))?;
    finish(w)
}

fn v_palette_f16_4bit() -> Res<Vec<u8>> {
    let mut w = writer()?;
    // 7 columns, d = 3: 3 sub-vectors per row (odd, so a zero high nibble),
    // the last one covering a single column.
    let p = palette(&mut w, 16, 3, 4, ElemType::F16, 2)?;
    let shape = [5u64, 7];
    let c = stage_codes(&shape, 16, 3, 3);
    let s = scales(5, 2);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "mlp.up.weight",
            Dtype::F16,
            &shape,
            Role::MlpUp,
            Regime::Argmax,
            &[Stage::new(p, &c)],
        )
        .with_scale(ElemType::F16, &s),
    )?;
    finish(w)
}

fn v_palette_bf16_3d() -> Res<Vec<u8>> {
    let mut w = writer()?;
    let p = palette(&mut w, 9, 4, 4, ElemType::Bf16, 3)?;
    let shape = [3u64, 2, 4];
    let c = stage_codes(&shape, 9, 4, 4);
    let s = scales(3, 3);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "conv.weight",
            Dtype::Bf16,
            &shape,
            Role::Other,
            Regime::Argmax,
            &[Stage::new(p, &c)],
        )
        .with_scale(ElemType::Bf16, &s)
        .with_quality(Some(QUALITY)),
    )?;
    // A 0-D tensor: one row of one column.
    let g = palette(&mut w, 2, 1, 4, ElemType::Bf16, 4)?;
    w.add_encoded_tensor(EncodedTensor::new(
        "gain",
        Dtype::F32,
        &[],
        Role::Norm,
        Regime::Index,
        &[Stage::new(g, &[1])],
    ))?;
    finish(w)
}

fn v_shared_fisher() -> Res<Vec<u8>> {
    let mut w = writer()?;
    // One palette shared by two tensors, its FisherZ table computed by the writer.
    let p = palette(&mut w, 6, 2, 4, ElemType::F32, 5)?;
    w.add_fisher_z(p)?;
    for (name, shape, seed) in [("a", [3u64, 4], 1), ("b", [2u64, 6], 2)] {
        let c = stage_codes(&shape, 6, 2, seed);
        w.add_encoded_tensor(EncodedTensor::new(
            name,
            Dtype::F32,
            &shape,
            Role::AttnK,
            Regime::Argmax,
            &[Stage::new(p, &c)],
        ))?;
    }
    // One palette used by both stages of one tensor; d = 1, so its FisherZ
    // table is all zeros.
    let q = palette(&mut w, 4, 1, 8, ElemType::F16, 6)?;
    w.add_fisher_z(q)?;
    let shape = [2u64, 5];
    let c0 = stage_codes(&shape, 4, 1, 3);
    let c1 = stage_codes(&shape, 4, 1, 4);
    w.add_encoded_tensor(EncodedTensor::new(
        "c",
        Dtype::F16,
        &shape,
        Role::AttnV,
        Regime::Argmax,
        &[Stage::new(q, &c0), Stage::new(q, &c1)],
    ))?;
    // A palette no tensor uses.
    let u = palette(&mut w, 3, 2, 4, ElemType::Bf16, 7)?;
    w.add_fisher_z(u)?;
    w.set_metadata("model", "shared")?;
    finish(w)
}

fn v_slot_l() -> Res<Vec<u8>> {
    let mut w = writer()?;
    let p = palette(&mut w, 4, 1, 4, ElemType::F32, 8)?;
    let b32 = w.add_basis(5, ElemType::F32, &vals(40, 9))?;
    let b16 = w.add_basis(4, ElemType::F16, &vals(32, 10))?;
    let bbf = w.add_basis(3, ElemType::Bf16, &vals(24, 11))?;
    let cases = [
        ("s32", vec![3u64, 5], b32, Some(ElemType::F32), 0.125f32),
        ("s32.shared_basis", vec![1, 5], b32, None, 0.5),
        ("s16", vec![2, 4], b16, None, -0.03),
        ("sbf", vec![2, 3], bbf, Some(ElemType::Bf16), 1e-3),
    ];
    for (i, (name, shape, basis, scale_elem, slot_scale)) in cases.into_iter().enumerate() {
        let c = stage_codes(&shape, 4, 1, i);
        let rows = n_rows(&shape);
        let s = scales(rows, i);
        let k = coefs(rows, i);
        w.add_encoded_tensor(
            EncodedTensor {
                scale: scale_elem.map(|e| (e, s.as_slice())),
                ..EncodedTensor::new(
                    name,
                    Dtype::F32,
                    &shape,
                    Role::AttnO,
                    Regime::Argmax,
                    &[Stage::new(p, &c)],
                )
            }
            .with_slot_l(SlotL {
                basis,
                coef: &k,
                scale: slot_scale,
            }),
        )?;
    }
    finish(w)
}

fn v_stages_4() -> Res<Vec<u8>> {
    let mut w = writer()?;
    let specs = [
        (20, 2, 8, ElemType::F32),
        (7, 3, 4, ElemType::F16),
        (16, 4, 4, ElemType::Bf16),
        (2, 1, 8, ElemType::F16),
    ];
    let shape = [3u64, 10];
    let mut ids = Vec::new();
    let mut all_codes = Vec::new();
    for (i, &(k, d, bits, elem)) in specs.iter().enumerate() {
        ids.push(palette(&mut w, k, d, bits, elem, 12 + i)?);
        all_codes.push(stage_codes(&shape, k, d, i));
    }
    let stages: Vec<Stage> = ids
        .iter()
        .zip(&all_codes)
        .map(|(&palette, c)| Stage::new(palette, c))
        .collect();
    // FisherZ tables of real width (d = 3 and 4: correlations other than +-1).
    w.add_fisher_z(ids[1])?;
    w.add_fisher_z(ids[2])?;
    let basis = w.add_basis(10, ElemType::Bf16, &vals(80, 16))?;
    let s = scales(3, 5);
    let k = coefs(3, 5);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "mlp.down.weight",
            Dtype::F64,
            &shape,
            Role::MlpDown,
            Regime::Argmax,
            &stages,
        )
        .with_scale(ElemType::F16, &s)
        .with_slot_l(SlotL {
            basis,
            coef: &k,
            scale: 0.0078125,
        })
        .with_quality(Some(QUALITY)),
    )?;
    finish(w)
}

fn v_zero_rows() -> Res<Vec<u8>> {
    let mut w = writer()?;
    let p = palette(&mut w, 3, 2, 4, ElemType::F32, 17)?;
    let basis = w.add_basis(8, ElemType::F32, &vals(64, 18))?;
    w.add_encoded_tensor(
        EncodedTensor::new(
            "no.rows",
            Dtype::F32,
            &[0, 8],
            Role::TokenEmbedding,
            Regime::Index,
            &[Stage::new(p, &[])],
        )
        .with_scale(ElemType::F16, &[])
        .with_slot_l(SlotL {
            basis,
            coef: &[],
            scale: 0.5,
        })
        .with_quality(Some(QUALITY)),
    )?;
    raw(&mut w, "no.rows.raw", Dtype::I32, &[0, 3], &[])?;
    finish(w)
}

fn v_metadata() -> Res<Vec<u8>> {
    let mut w = writer()?;
    raw(&mut w, "тензор.weight", Dtype::U8, &[1], &[42])?;
    w.set_metadata("z", "last")?;
    w.set_metadata("a", "")?;
    w.set_metadata("model.name", "λ → ∞")?;
    w.set_metadata("ключ", "значение")?;
    w.set_metadata("a.b", "x".repeat(100).as_str())?;
    finish(w)
}

/// The file every invalid vector is made from: every record kind, every
/// section kind, and spare objects (`pW`, `b1`) so that references can be
/// redirected without changing any length.
///
/// Sections: 0 p0, 1 p1, 2 p2, 3 pW (PALETTE); 4 b0, 5 b1 (BASIS);
/// 6, 7 FISHER_Z of p0, p1; 8 ENTRY, 9 SCALE, 10 SLOT_L of `enc`;
/// 11 ENTRY, 12 SLOT_L of `wide`; 13 RAW of `raw`; 14 STRINGS;
/// 15 METADATA; 16 DIRECTORY.
fn v_mixed() -> Res<Vec<u8>> {
    let mut w = writer()?;
    let p0 = palette(&mut w, 5, 2, 4, ElemType::F16, 20)?;
    let p1 = palette(&mut w, 5, 1, 8, ElemType::F32, 21)?;
    let p2 = palette(&mut w, 4, 3, 4, ElemType::Bf16, 22)?;
    let pw = palette(&mut w, 3, 8, 4, ElemType::Bf16, 23)?;
    let b0 = w.add_basis(6, ElemType::F32, &vals(48, 24))?;
    let b1 = w.add_basis(8, ElemType::F16, &vals(64, 25))?;
    w.add_fisher_z(p0)?;
    w.add_fisher_z(p1)?;
    let shape = [3u64, 6];
    let c0 = stage_codes(&shape, 5, 2, 1);
    let c1 = stage_codes(&shape, 5, 1, 2);
    let c2 = stage_codes(&shape, 4, 3, 3);
    let k = coefs(3, 1);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "enc",
            Dtype::F32,
            &shape,
            Role::AttnQkv,
            Regime::Argmax,
            &[
                Stage::new(p0, &c0),
                Stage::new(p1, &c1),
                Stage::new(p2, &c2),
            ],
        )
        .with_scale(ElemType::F16, &scales(3, 1))
        .with_slot_l(SlotL {
            basis: b0,
            coef: &k,
            scale: 0.0625,
        })
        .with_quality(Some(QUALITY)),
    )?;
    let shape = [2u64, 8];
    let c = stage_codes(&shape, 3, 8, 4);
    let k = coefs(2, 2);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "wide",
            Dtype::Bf16,
            &shape,
            Role::LmHead,
            Regime::Index,
            &[Stage::new(pw, &c)],
        )
        .with_slot_l(SlotL {
            basis: b1,
            coef: &k,
            scale: -0.25,
        }),
    )?;
    let r: Vec<f32> = vals(6, 26);
    raw(&mut w, "raw", Dtype::F32, &[2, 3], &le(&r))?;
    w.set_metadata("a", "1")?;
    w.set_metadata("b", "2")?;
    finish(w)
}

/// A newer minor version with a section of a kind v1 does not know, without
/// REQUIRED: readers must skip it.
fn v_minor_unknown_optional() -> Res<Vec<u8>> {
    let mut e = Edit::new(&v_palette_f16_4bit()?)?;
    e.parts.minor = 1;
    e.parts.sections.push(Sec {
        kind: 0x0100,
        flags: 0,
        payload: b"a section from the future".to_vec(),
    });
    Ok(e.build())
}

/// A valid vector's builder.
type Gen = fn() -> Res<Vec<u8>>;

/// Every valid vector, in a fixed order.
pub fn valid_vectors() -> Res<Vec<Valid>> {
    let list: [(&'static str, Gen); 12] = [
        ("empty", v_empty),
        ("raw-dtypes", v_raw_dtypes),
        ("palette-f32-8bit", v_palette_f32_8bit),
        ("palette-f16-4bit", v_palette_f16_4bit),
        ("palette-bf16-3d", v_palette_bf16_3d),
        ("shared-fisher", v_shared_fisher),
        ("slot-l", v_slot_l),
        ("stages-4", v_stages_4),
        ("zero-rows", v_zero_rows),
        ("metadata", v_metadata),
        ("mixed", v_mixed),
        ("minor-unknown-optional", v_minor_unknown_optional),
    ];
    list.into_iter()
        .map(|(name, f)| Ok(Valid { name, bytes: f()? }))
        .collect()
}

// ---------------------------------------------------------------------------
// Guarded vectors: valid files that a reader refuses to decode whole under
// the default expansion limit (spec §7 "Expansion limit").

use hhtld_reader::DEFAULT_MAX_EXPANSION;

/// A decompression bomb: one BF16 tensor of `rows x cols` whose every row
/// is one 4-bit code into a 16-entry palette of `cols`-wide bf16 entries,
/// so the file is about `64 x cols + rows` bytes and decodes to
/// `4 x rows x cols` bytes of f32. `bomb(65536, 65536)` is the 2 MB file of
/// the issue that decodes to 16 GiB.
pub fn bomb(rows: u64, cols: u64) -> Res<Vec<u8>> {
    let mut w = writer()?;
    let p = palette(&mut w, 16, cols as usize, 4, ElemType::Bf16, 40)?;
    let shape = [rows, cols];
    let c = stage_codes(&shape, 16, cols as usize, 41);
    w.add_encoded_tensor(EncodedTensor::new(
        "bomb.weight",
        Dtype::Bf16,
        &shape,
        Role::Other,
        Regime::Argmax,
        &[Stage::new(p, &c)],
    ))?;
    finish(w)
}

/// The guarded vectors: a bomb small enough to commit (65536 x 1024, about
/// 100 KB decoding to 256 MiB of f32, 128 MiB of bf16: over 1300 x its size
/// either way).
pub fn guarded_vectors() -> Res<Vec<Valid>> {
    Ok(vec![Valid {
        name: "bomb",
        bytes: bomb(65536, 1024)?,
    }])
}

/// `X.expected` of a guarded vector: the tensors a reader refuses to decode
/// whole under the default limit, with their f32 size and the file's.
pub fn guarded_text(bytes: &[u8]) -> Res<String> {
    let f = HhtldFile::copy_from_slice(bytes)?;
    let h = f.view();
    let file_len = bytes.len() as u64;
    let mut out = format!("file_len {file_len}\nmax_expansion {DEFAULT_MAX_EXPANSION}\n");
    for t in h.tensors() {
        let decoded = t.numel() as u64 * 4;
        if decoded > DEFAULT_MAX_EXPANSION * file_len {
            out.push_str(&format!("refused {} {decoded}\n", t.name()));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Taking files apart and putting them back together.

/// One section: kind, flags and payload.
#[derive(Clone)]
pub struct Sec {
    /// Raw kind.
    pub kind: u16,
    /// Raw flags.
    pub flags: u16,
    /// The section's bytes.
    pub payload: Vec<u8>,
}

/// A file as its minor version and sections; [`Edit::build`] lays it out
/// as spec §1 says and computes every CRC.
#[derive(Clone)]
pub struct Parts {
    /// Minor version.
    pub minor: u16,
    /// Sections in file order.
    pub sections: Vec<Sec>,
}

/// Offsets of the records inside the DIRECTORY payload.
#[derive(Clone, Copy)]
struct DirShape {
    np: usize,
    nb: usize,
    nf: usize,
}

/// A valid file taken apart for editing.
pub struct Edit {
    /// The sections.
    pub parts: Parts,
    dir: usize,
    shape: DirShape,
}

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

fn view_mut<T: FromBytes + IntoBytes + KnownLayout>(b: &mut [u8], at: usize) -> Res<&mut T> {
    let n = core::mem::size_of::<T>();
    let s = b.get_mut(at..at + n).ok_or("record past the end")?;
    T::mut_from_bytes(s).map_err(|_| "record size".into())
}

impl Edit {
    /// Takes apart a valid file.
    pub fn new(bytes: &[u8]) -> Res<Edit> {
        let l = hhtld_format::parse(bytes)?;
        let sections = l
            .sections
            .iter()
            .map(|s| Sec {
                kind: s.raw_kind,
                flags: s.flags,
                payload: bytes[s.range()].to_vec(),
            })
            .collect();
        Ok(Edit {
            parts: Parts {
                minor: l.version.1,
                sections,
            },
            dir: l.directory as usize,
            shape: DirShape {
                np: l.palettes.len(),
                nb: l.bases.len(),
                nf: l.fishers.len(),
            },
        })
    }

    /// Index of the `nth` section of `kind`.
    pub fn find(&self, kind: SectionKind, nth: usize) -> Res<usize> {
        self.parts
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == kind.to_raw())
            .nth(nth)
            .map(|(i, _)| i)
            .ok_or_else(|| format!("no section {kind} #{nth}").into())
    }

    /// Payload of section `i`.
    pub fn payload(&mut self, i: usize) -> Res<&mut Vec<u8>> {
        Ok(&mut self
            .parts
            .sections
            .get_mut(i)
            .ok_or("no such section")?
            .payload)
    }

    fn dir_bytes(&mut self) -> &mut Vec<u8> {
        &mut self.parts.sections[self.dir].payload
    }

    /// The DIRECTORY header.
    pub fn dir_header(&mut self) -> Res<&mut DirHeader> {
        view_mut(self.dir_bytes(), 0)
    }

    /// PaletteRecord `i`.
    pub fn palette(&mut self, i: usize) -> Res<&mut PaletteRecord> {
        view_mut(self.dir_bytes(), 32 + 32 * i)
    }

    /// BasisRecord `i`.
    pub fn basis(&mut self, i: usize) -> Res<&mut BasisRecord> {
        let at = 32 + 32 * (self.shape.np + i);
        view_mut(self.dir_bytes(), at)
    }

    /// FisherRecord `i`.
    pub fn fisher(&mut self, i: usize) -> Res<&mut FisherRecord> {
        let at = 32 + 32 * (self.shape.np + self.shape.nb + i);
        view_mut(self.dir_bytes(), at)
    }

    /// TensorRecord `t`.
    pub fn tensor(&mut self, t: usize) -> Res<&mut TensorRecord> {
        let s = self.shape;
        let at = 32 + 32 * (s.np + s.nb + s.nf) + TENSOR_RECORD_LEN * t;
        view_mut(self.dir_bytes(), at)
    }

    /// Removes section `i` and renumbers every directory reference after it.
    pub fn remove_section(&mut self, i: usize) -> Res<()> {
        self.parts.sections.remove(i);
        if self.dir > i {
            self.dir -= 1;
        }
        let fix = |v: &mut U32| {
            if v.get() != NONE && v.get() as usize > i {
                *v = U32::new(v.get() - 1);
            }
        };
        let nt = self.dir_header()?.tensor_count.get() as usize;
        for p in 0..self.shape.np {
            fix(&mut self.palette(p)?.section);
        }
        for b in 0..self.shape.nb {
            fix(&mut self.basis(b)?.section);
        }
        for f in 0..self.shape.nf {
            fix(&mut self.fisher(f)?.section);
        }
        for t in 0..nt {
            let r = self.tensor(t)?;
            fix(&mut r.data);
            fix(&mut r.scale);
            fix(&mut r.slot_l);
        }
        Ok(())
    }

    /// Lays the sections out (spec §1) with every CRC computed.
    pub fn build(&self) -> Vec<u8> {
        assemble(&self.parts)
    }
}

/// Writes `parts` as a file: sections from offset 64, each padded to 64,
/// then the table, then the header with its CRC.
pub fn assemble(parts: &Parts) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let mut table: Vec<SectionEntry> = Vec::new();
    for s in &parts.sections {
        let offset = out.len() as u64;
        out.extend_from_slice(&s.payload);
        table.push(SectionEntry {
            kind: U16::new(s.kind),
            flags: U16::new(s.flags),
            crc32: U32::new(crc(&s.payload)),
            offset: U64::new(offset),
            length: U64::new(s.payload.len() as u64),
            reserved: U64::new(0),
        });
        let end = align64(out.len() as u64).unwrap_or(0) as usize;
        out.resize(end, 0);
    }
    let table_offset = out.len() as u64;
    out.extend_from_slice(table.as_bytes());
    let file_len = out.len() as u64;
    if let Ok(h) = view_mut::<Header>(&mut out, 0) {
        h.magic = MAGIC;
        h.major = U16::new(1);
        h.minor = U16::new(parts.minor);
        h.file_len = U64::new(file_len);
        h.table_offset = U64::new(table_offset);
        h.section_count = U32::new(table.len() as u32);
    }
    fix_header_crc(&mut out);
    out
}

/// Recomputes `header_crc` from the table the header points to (when it lies
/// inside the file).
pub fn fix_header_crc(b: &mut [u8]) {
    let Ok((h, _)) = Header::read_from_prefix(b) else {
        return;
    };
    let start = h.table_offset.get() as usize;
    let end = start.saturating_add(32usize.saturating_mul(h.section_count.get() as usize));
    let Some(table) = b.get(start..end) else {
        return;
    };
    let mut c = crc32fast::Hasher::new();
    c.update(&b[..HEADER_CRC_SPAN]);
    c.update(table);
    let v = c.finalize();
    b[60..64].copy_from_slice(&v.to_le_bytes());
}

fn header(b: &mut [u8]) -> Res<&mut Header> {
    view_mut(b, 0)
}

/// Table entry `i` of an assembled file.
fn entry(b: &mut [u8], i: usize) -> Res<&mut SectionEntry> {
    let t = Header::read_from_prefix(b)
        .map_err(|_| "short file")?
        .0
        .table_offset
        .get() as usize;
    view_mut(b, t + 32 * i)
}

// ---------------------------------------------------------------------------
// Invalid vectors.

/// The metadata payload of `(key, value)` pairs, in the given order.
fn metadata_payload(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in entries {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Collects invalid vectors; names are checked to be unique.
struct Out {
    list: Vec<Invalid>,
    base: Vec<u8>,
}

impl Out {
    fn add(&mut self, name: &str, rule: &'static str, bytes: Vec<u8>) {
        self.list.push(Invalid {
            name: name.to_owned(),
            rule,
            at_verify: false,
            bytes,
        });
    }

    /// Marks the last vector as rejected by verification, not open.
    fn at_verify(&mut self) {
        if let Some(v) = self.list.last_mut() {
            v.at_verify = true;
        }
    }

    /// A vector made by editing the sections and directory of `mixed`.
    fn edit(
        &mut self,
        name: &str,
        rule: &'static str,
        f: impl FnOnce(&mut Edit) -> Res<()>,
    ) -> Res<()> {
        let mut e = Edit::new(&self.base)?;
        f(&mut e)?;
        let b = e.build();
        self.add(name, rule, b);
        Ok(())
    }

    /// A vector made by editing the bytes of `mixed`, then fixing the header CRC.
    fn bytes(
        &mut self,
        name: &str,
        rule: &'static str,
        f: impl FnOnce(&mut Vec<u8>) -> Res<()>,
    ) -> Res<()> {
        let mut b = self.base.clone();
        f(&mut b)?;
        fix_header_crc(&mut b);
        self.add(name, rule, b);
        Ok(())
    }
}

/// Every invalid vector, in a fixed order.
pub fn invalid_vectors() -> Res<Vec<Invalid>> {
    use SectionKind as K;
    let base = v_mixed()?;
    // The edits below name sections by index; check the layout they assume.
    let kinds: Vec<u16> = Edit::new(&base)?
        .parts
        .sections
        .iter()
        .map(|s| s.kind)
        .collect();
    if kinds != [4, 4, 4, 4, 5, 5, 6, 6, 7, 9, 8, 7, 8, 10, 2, 3, 1] {
        return Err(format!("unexpected section layout of `mixed`: {kinds:?}").into());
    }
    let mut o = Out {
        list: Vec::new(),
        base: base.clone(),
    };
    let f32_bits = |v: f32| F32::new(v);

    // --- header
    o.add("r-truncated", "R-TRUNCATED", base[..63].to_vec());
    o.add("r-truncated.empty", "R-TRUNCATED", Vec::new());
    o.bytes("r-magic", "R-MAGIC", |b| {
        b[1] = b'h';
        Ok(())
    })?;
    o.bytes("r-major", "R-MAJOR", |b| {
        header(b)?.major = U16::new(2);
        Ok(())
    })?;
    o.bytes("r-major.zero", "R-MAJOR", |b| {
        header(b)?.major = U16::new(0);
        Ok(())
    })?;
    {
        let mut b = base.clone();
        b[60] ^= 0x01;
        o.add("r-header-crc", "R-HEADER-CRC", b);
        // A table byte changed: the header CRC covers the table too.
        let mut b = base.clone();
        let e = entry(&mut b, 0)?;
        e.crc32 = U32::new(e.crc32.get() ^ 0x0100);
        o.add("r-header-crc.table", "R-HEADER-CRC", b);
    }
    o.bytes("r-reserved", "R-RESERVED", |b| {
        header(b)?.flags = U32::new(1);
        Ok(())
    })?;
    o.bytes("r-reserved.header", "R-RESERVED", |b| {
        header(b)?.reserved[23] = 0x80;
        Ok(())
    })?;
    o.bytes("r-reserved.table-entry", "R-RESERVED", |b| {
        entry(b, 3)?.reserved = U64::new(1 << 40);
        Ok(())
    })?;
    o.edit("r-reserved.dir-header", "R-RESERVED", |e| {
        e.dir_header()?.reserved[0] = 1;
        Ok(())
    })?;
    o.edit("r-reserved.palette", "R-RESERVED", |e| {
        e.palette(1)?.reserved[19] = 1;
        Ok(())
    })?;
    o.edit("r-reserved.basis", "R-RESERVED", |e| {
        e.basis(0)?.reserved[0] = 1;
        Ok(())
    })?;
    o.edit("r-reserved.fisher", "R-RESERVED", |e| {
        e.fisher(1)?.reserved[5] = 1;
        Ok(())
    })?;
    o.edit("r-reserved.tensor", "R-RESERVED", |e| {
        e.tensor(2)?.reserved[27] = 1;
        Ok(())
    })?;

    // --- file length and table position
    o.add("r-file-len", "R-FILE-LEN", base[..base.len() - 32].to_vec());
    {
        let mut b = base.clone();
        b.extend_from_slice(&[0u8; 64]);
        o.add("r-file-len.extended", "R-FILE-LEN", b);
        let mut b = base.clone();
        b.extend_from_slice(&[0u8; 7]);
        let n = b.len() as u64;
        header(&mut b)?.file_len = U64::new(n);
        fix_header_crc(&mut b);
        o.add("r-file-len.extended-header", "R-FILE-LEN", b);
    }
    o.bytes("r-file-len.header", "R-FILE-LEN", |b| {
        let h = header(b)?;
        h.file_len = U64::new(h.file_len.get() + 1);
        Ok(())
    })?;
    o.bytes("r-table-offset", "R-TABLE-OFFSET", |b| {
        // 64 more zero bytes before the table, and the header pointing past them.
        let t = header(b)?.table_offset.get() as usize;
        b.splice(t..t, [0u8; 64]);
        let n = b.len() as u64;
        let h = header(b)?;
        h.table_offset = U64::new(t as u64 + 64);
        h.file_len = U64::new(n);
        Ok(())
    })?;
    o.bytes("r-table-offset.outside-file", "R-TABLE-OFFSET", |b| {
        // file_len is right, the table would start at the end of the file.
        let n = b.len() as u64;
        header(b)?.table_offset = U64::new(n);
        Ok(())
    })?;
    o.bytes("r-table-offset.in-header", "R-TABLE-OFFSET", |b| {
        header(b)?.table_offset = U64::new(0);
        Ok(())
    })?;
    o.bytes("r-table-offset.section-past-table", "R-TABLE-OFFSET", |b| {
        let e = entry(b, 16)?;
        e.length = U64::new(e.length.get() + 65);
        Ok(())
    })?;
    o.bytes("r-limit", "R-LIMIT", |b| {
        header(b)?.section_count = U32::new(u32::MAX);
        Ok(())
    })?;
    o.bytes("r-limit.sections-plus-one", "R-LIMIT", |b| {
        header(b)?.section_count = U32::new(MAX_SECTIONS as u32 + 1);
        Ok(())
    })?;
    {
        // The count is checked before the table is looked for (spec 7, step 1).
        let mut b = base[..base.len() - 32].to_vec();
        header(&mut b)?.section_count = U32::new(u32::MAX);
        o.add("r-limit.short-file", "R-LIMIT", b);
    }
    o.edit("r-limit.tensor-count", "R-LIMIT", |e| {
        e.dir_header()?.tensor_count = U32::new(MAX_TENSORS as u32 + 1);
        Ok(())
    })?;
    o.edit("r-limit.palette-count", "R-LIMIT", |e| {
        e.dir_header()?.palette_count = U32::new(u32::MAX);
        Ok(())
    })?;
    o.edit("r-limit.basis-count", "R-LIMIT", |e| {
        e.dir_header()?.basis_count = U32::new(MAX_PALETTES as u32 + 1);
        Ok(())
    })?;
    o.edit("r-limit.fisher-count", "R-LIMIT", |e| {
        e.dir_header()?.fisher_count = U32::new(MAX_PALETTES as u32 + 1);
        Ok(())
    })?;

    // --- section table
    o.bytes("r-section-kind", "R-SECTION-KIND", |b| {
        entry(b, 13)?.kind = U16::new(0);
        Ok(())
    })?;
    o.bytes("r-section-flags", "R-SECTION-FLAGS", |b| {
        entry(b, 13)?.flags = U16::new(0);
        Ok(())
    })?;
    o.bytes("r-section-flags.reserved-bit", "R-SECTION-FLAGS", |b| {
        entry(b, 2)?.flags = U16::new(SECTION_FLAG_REQUIRED | 0x8000);
        Ok(())
    })?;
    o.edit("r-unknown-required", "R-UNKNOWN-REQUIRED", |e| {
        e.parts.minor = 1;
        e.parts.sections.push(Sec {
            kind: 0x0100,
            flags: SECTION_FLAG_REQUIRED,
            payload: b"must be understood".to_vec(),
        });
        Ok(())
    })?;
    o.edit("r-unknown-required.last-kind", "R-UNKNOWN-REQUIRED", |e| {
        e.parts.sections.push(Sec {
            kind: u16::MAX,
            flags: SECTION_FLAG_REQUIRED,
            payload: Vec::new(),
        });
        Ok(())
    })?;
    o.bytes("r-section-offset", "R-SECTION-OFFSET", |b| {
        let e = entry(b, 1)?;
        e.offset = U64::new(e.offset.get() + 64);
        Ok(())
    })?;
    o.bytes("r-section-offset.overlap", "R-SECTION-OFFSET", |b| {
        // Section 0 running into section 1: reported on section 1's offset.
        let e = entry(b, 0)?;
        e.length = U64::new(e.length.get() + 64);
        Ok(())
    })?;
    o.bytes("r-section-offset.past-table", "R-SECTION-OFFSET", |b| {
        // Section 0 running into section 1 and past the table: reported on
        // section 1's offset, which is checked before the table's.
        let n = b.len() as u64;
        entry(b, 0)?.length = U64::new(n);
        Ok(())
    })?;
    o.bytes(
        "r-section-offset.past-table-reserved",
        "R-SECTION-OFFSET",
        |b| {
            // Reported at once, before entry 1's reserved bytes are looked at.
            let n = b.len() as u64;
            entry(b, 0)?.length = U64::new(n);
            entry(b, 1)?.reserved = U64::new(1);
            Ok(())
        },
    )?;
    o.bytes("r-section-offset.first", "R-SECTION-OFFSET", |b| {
        entry(b, 0)?.offset = U64::new(0);
        Ok(())
    })?;
    o.bytes("r-padding", "R-PADDING", |b| {
        // p2 is 96 bytes long: 32 bytes of padding follow it.
        let e = entry(b, 2)?;
        let end = (e.offset.get() + e.length.get()) as usize;
        b[end + 31] = 0x5A;
        Ok(())
    })?;
    // Padding is read, and so checked, by verification (spec §7).
    o.at_verify();
    {
        // `empty` ends its last section at 96: the table is at 128.
        let mut b = v_empty()?;
        b[100] = 1;
        o.add("r-padding.before-table", "R-PADDING", b);
        o.at_verify();
    }
    o.bytes("r-section-count", "R-SECTION-COUNT", |b| {
        entry(b, 15)?.kind = U16::new(K::Directory.to_raw());
        Ok(())
    })?;
    o.bytes("r-section-count.no-strings", "R-SECTION-COUNT", |b| {
        entry(b, 14)?.kind = U16::new(K::Metadata.to_raw());
        Ok(())
    })?;
    o.bytes("r-section-count.two-metadata", "R-SECTION-COUNT", |b| {
        entry(b, 13)?.kind = U16::new(K::Metadata.to_raw());
        Ok(())
    })?;
    o.edit("r-section-count.no-directory", "R-SECTION-COUNT", |e| {
        let d = e.find(K::Directory, 0)?;
        e.parts.sections.remove(d);
        Ok(())
    })?;
    o.edit("r-section-ref", "R-SECTION-REF", |e| {
        e.tensor(2)?.data = U32::new(14); // STRINGS, not RAW
        Ok(())
    })?;
    o.edit("r-section-ref.out-of-range", "R-SECTION-REF", |e| {
        e.tensor(2)?.data = U32::new(17);
        Ok(())
    })?;
    o.edit("r-section-ref.shared", "R-SECTION-REF", |e| {
        // p1 pointing at p0's section: two fields, one section.
        e.palette(1)?.section = U32::new(0);
        Ok(())
    })?;
    o.edit("r-section-ref.unreferenced", "R-SECTION-REF", |e| {
        e.parts.sections.push(Sec {
            kind: K::Raw.to_raw(),
            flags: SECTION_FLAG_REQUIRED,
            payload: vec![1, 2, 3, 4],
        });
        Ok(())
    })?;
    o.edit("r-section-ref.scale-wrong-kind", "R-SECTION-REF", |e| {
        e.tensor(0)?.scale = U32::new(10); // SLOT_L
        Ok(())
    })?;

    // --- directory
    o.edit("r-dir-size", "R-DIR-SIZE", |e| {
        e.dir_bytes().extend_from_slice(&[0u8; 32]);
        Ok(())
    })?;
    o.edit("r-dir-size.short", "R-DIR-SIZE", |e| {
        e.dir_bytes().truncate(16);
        Ok(())
    })?;
    o.edit("r-dir-size.over-max", "R-DIR-SIZE", |e| {
        // Every count at its limit: 32 + 32 x 3 x 2^20 + 160 x 2^20 > 2^28.
        let h = e.dir_header()?;
        h.tensor_count = U32::new(MAX_TENSORS as u32);
        h.palette_count = U32::new(MAX_PALETTES as u32);
        h.basis_count = U32::new(MAX_PALETTES as u32);
        h.fisher_count = U32::new(MAX_PALETTES as u32);
        Ok(())
    })?;
    o.edit("r-enum", "R-ENUM", |e| {
        e.palette(0)?.elem = 4;
        Ok(())
    })?;
    o.edit("r-enum.basis-elem", "R-ENUM", |e| {
        e.basis(1)?.elem = 0;
        Ok(())
    })?;
    o.edit("r-enum.dtype", "R-ENUM", |e| {
        e.tensor(2)?.dtype = 16;
        Ok(())
    })?;
    o.edit("r-enum.dtype-zero", "R-ENUM", |e| {
        e.tensor(2)?.dtype = 0;
        Ok(())
    })?;
    o.edit("r-enum.role", "R-ENUM", |e| {
        e.tensor(1)?.role = 14;
        Ok(())
    })?;
    o.edit("r-enum.regime", "R-ENUM", |e| {
        e.tensor(0)?.regime = 3;
        Ok(())
    })?;
    o.edit("r-enum.encoding", "R-ENUM", |e| {
        e.tensor(2)?.encoding = 2;
        Ok(())
    })?;
    o.edit("r-enum.scale-elem", "R-ENUM", |e| {
        e.tensor(0)?.scale_elem = 4;
        Ok(())
    })?;
    o.edit("r-palette-fields", "R-PALETTE-FIELDS", |e| {
        e.palette(0)?.k = U16::new(17); // 4-bit: at most 16
        Ok(())
    })?;
    o.edit("r-palette-fields.k-zero", "R-PALETTE-FIELDS", |e| {
        e.palette(2)?.k = U16::new(0);
        Ok(())
    })?;
    o.edit("r-palette-fields.bits", "R-PALETTE-FIELDS", |e| {
        e.palette(1)?.bits = 7;
        Ok(())
    })?;
    o.edit("r-palette-fields.d-zero", "R-PALETTE-FIELDS", |e| {
        e.palette(3)?.d = U32::new(0);
        Ok(())
    })?;
    o.edit("r-palette-fields.d-over-max", "R-PALETTE-FIELDS", |e| {
        e.palette(3)?.d = U32::new(65537);
        Ok(())
    })?;
    o.edit("r-palette-len", "R-PALETTE-LEN", |e| {
        e.payload(2)?.extend_from_slice(&[0, 0]);
        Ok(())
    })?;
    o.edit("r-palette-len.elem", "R-PALETTE-LEN", |e| {
        e.palette(0)?.elem = ElemType::F32.to_raw(); // stored as f16
        Ok(())
    })?;
    o.edit("r-basis-fields", "R-BASIS-FIELDS", |e| {
        e.basis(0)?.rows = U16::new(7);
        Ok(())
    })?;
    o.edit("r-basis-fields.n-cols-zero", "R-BASIS-FIELDS", |e| {
        e.basis(1)?.n_cols = U32::new(0);
        Ok(())
    })?;
    o.edit("r-basis-len", "R-BASIS-LEN", |e| {
        e.payload(5)?.extend_from_slice(&[0, 0]);
        Ok(())
    })?;
    for (variant, gamma) in [
        ("", 0.0f32),
        (".negative", -0.02),
        (".negative-zero", -0.0),
        (".nan", f32::NAN),
        (".infinite", f32::INFINITY),
    ] {
        o.edit(&format!("r-fisher-gamma{variant}"), "R-FISHER-GAMMA", |e| {
            e.fisher(0)?.gamma = f32_bits(gamma);
            Ok(())
        })?;
    }
    o.edit("r-fisher-len", "R-FISHER-LEN", |e| {
        e.payload(7)?.push(0);
        Ok(())
    })?;
    o.edit("r-fisher-dup", "R-FISHER-DUP", |e| {
        e.fisher(1)?.palette = U32::new(0); // p0 and p1 both have k = 5
        Ok(())
    })?;
    o.edit("r-index", "R-INDEX", |e| {
        e.fisher(0)?.palette = U32::new(4);
        Ok(())
    })?;
    o.edit("r-index.stage", "R-INDEX", |e| {
        e.tensor(0)?.stage_palette[1] = U32::new(4);
        Ok(())
    })?;
    o.edit("r-index.basis", "R-INDEX", |e| {
        e.tensor(0)?.basis = U32::new(2);
        Ok(())
    })?;

    // --- tensors: names and shapes (STRINGS is "encwideraw")
    o.edit("r-name-bounds", "R-NAME-BOUNDS", |e| {
        e.tensor(2)?.name_off = U32::new(8); // 8 + 3 > 10
        Ok(())
    })?;
    o.edit("r-name-bounds.empty", "R-NAME-BOUNDS", |e| {
        e.tensor(1)?.name_len = U32::new(0);
        Ok(())
    })?;
    o.edit("r-name-bounds.offset-overflow", "R-NAME-BOUNDS", |e| {
        e.tensor(1)?.name_off = U32::new(u32::MAX);
        Ok(())
    })?;
    o.edit("r-name-utf8", "R-NAME-UTF8", |e| {
        let s = e.find(K::Strings, 0)?;
        e.payload(s)?[7] = 0xFF; // "raw" -> "\xFFaw"
        Ok(())
    })?;
    o.edit("r-name-utf8.surrogate", "R-NAME-UTF8", |e| {
        let s = e.find(K::Strings, 0)?;
        e.payload(s)?[7..10].copy_from_slice(&[0xED, 0xA0, 0x80]);
        Ok(())
    })?;
    o.edit("r-name-utf8.overlong", "R-NAME-UTF8", |e| {
        let s = e.find(K::Strings, 0)?;
        e.payload(s)?[0..2].copy_from_slice(&[0xC1, 0xA5]); // "e" in two bytes
        Ok(())
    })?;
    o.edit("r-name-dup", "R-NAME-DUP", |e| {
        let t = e.tensor(2)?;
        t.name_off = U32::new(0); // "enc"
        Ok(())
    })?;
    o.edit("r-shape", "R-SHAPE", |e| {
        e.tensor(2)?.shape[2] = U64::new(1); // past ndims = 2
        Ok(())
    })?;
    o.edit("r-shape.ndims", "R-SHAPE", |e| {
        e.tensor(2)?.ndims = 9;
        Ok(())
    })?;
    o.edit("r-shape.n-cols-overflow", "R-SHAPE", |e| {
        let t = e.tensor(2)?;
        t.ndims = 3;
        t.shape[1] = U64::new(1 << 32);
        t.shape[2] = U64::new(1 << 32);
        Ok(())
    })?;
    o.edit("r-shape.numel-overflow", "R-SHAPE", |e| {
        let t = e.tensor(2)?;
        t.shape[0] = U64::new(1 << 33);
        t.shape[1] = U64::new(1 << 31);
        Ok(())
    })?;
    o.edit("r-raw-len.overflow", "R-RAW-LEN", |e| {
        // numel = 2^62 fits; numel x 4 bytes does not: the length rule reports it.
        let t = e.tensor(2)?;
        t.ndims = 1;
        t.shape[0] = U64::new(1 << 62);
        t.shape[1] = U64::new(0);
        Ok(())
    })?;

    // --- tensors: fields
    o.edit("r-tensor-fields", "R-TENSOR-FIELDS", |e| {
        e.tensor(2)?.n_stages = 1;
        Ok(())
    })?;
    o.edit("r-tensor-fields.raw-flags", "R-TENSOR-FIELDS", |e| {
        e.tensor(2)?.flags = 4;
        Ok(())
    })?;
    o.edit("r-tensor-fields.raw-scale", "R-TENSOR-FIELDS", |e| {
        e.tensor(2)?.scale = U32::new(9);
        Ok(())
    })?;
    o.edit("r-tensor-fields.raw-stage", "R-TENSOR-FIELDS", |e| {
        e.tensor(2)?.stage_palette[3] = U32::new(0);
        Ok(())
    })?;
    o.edit("r-tensor-fields.raw-slot-scale", "R-TENSOR-FIELDS", |e| {
        e.tensor(2)?.slot_scale = f32_bits(1.0);
        Ok(())
    })?;
    o.edit("r-tensor-fields.raw-quality", "R-TENSOR-FIELDS", |e| {
        e.tensor(2)?.rho_min = f32_bits(0.5);
        Ok(())
    })?;
    o.edit(
        "r-tensor-fields.raw-negative-zero",
        "R-TENSOR-FIELDS",
        |e| {
            // A field that must be 0 has all bits zero: -0.0 is not 0.
            e.tensor(2)?.slot_scale = f32_bits(-0.0);
            Ok(())
        },
    )?;
    o.edit("r-tensor-fields.dtype", "R-TENSOR-FIELDS", |e| {
        e.tensor(0)?.dtype = Dtype::I32.to_raw();
        Ok(())
    })?;
    o.edit("r-tensor-fields.regime", "R-TENSOR-FIELDS", |e| {
        e.tensor(0)?.regime = Regime::Passthrough.to_raw();
        Ok(())
    })?;
    o.edit("r-tensor-fields.flags", "R-TENSOR-FIELDS", |e| {
        e.tensor(0)?.flags |= 0x08;
        Ok(())
    })?;
    o.edit("r-tensor-fields.n-stages-zero", "R-TENSOR-FIELDS", |e| {
        let t = e.tensor(1)?;
        t.n_stages = 0;
        t.stage_palette[0] = U32::new(NONE);
        Ok(())
    })?;
    o.edit("r-tensor-fields.n-stages-five", "R-TENSOR-FIELDS", |e| {
        e.tensor(0)?.n_stages = 5;
        Ok(())
    })?;
    o.edit(
        "r-tensor-fields.stage-past-n-stages",
        "R-TENSOR-FIELDS",
        |e| {
            e.tensor(1)?.stage_palette[1] = U32::new(3);
            Ok(())
        },
    )?;
    o.edit(
        "r-tensor-fields.scale-without-flag",
        "R-TENSOR-FIELDS",
        |e| {
            e.tensor(1)?.scale_elem = ElemType::F16.to_raw();
            Ok(())
        },
    )?;
    o.edit(
        "r-tensor-fields.slot-without-flag",
        "R-TENSOR-FIELDS",
        |e| {
            e.tensor(1)?.flags &= !2;
            Ok(())
        },
    )?;
    o.edit(
        "r-tensor-fields.slot-scale-without-flag",
        "R-TENSOR-FIELDS",
        |e| {
            // `wide` without its SlotL (section 12 removed) but with slot_scale left.
            let t = e.tensor(1)?;
            t.flags &= !2;
            t.basis = U32::new(NONE);
            t.slot_l = U32::new(NONE);
            e.remove_section(12)
        },
    )?;
    o.edit("r-tensor-fields.slot-scale-nan", "R-TENSOR-FIELDS", |e| {
        e.tensor(0)?.slot_scale = f32_bits(f32::NAN);
        Ok(())
    })?;
    o.edit("r-raw-len", "R-RAW-LEN", |e| {
        e.payload(13)?.push(0);
        Ok(())
    })?;
    o.edit("r-palette-fit", "R-PALETTE-FIT", |e| {
        // pW has d = 8 > n_cols = 6; stage 2 keeps 1 code byte per row.
        e.tensor(0)?.stage_palette[2] = U32::new(3);
        Ok(())
    })?;
    o.edit("r-entry-len", "R-ENTRY-LEN", |e| {
        e.payload(8)?.push(0);
        Ok(())
    })?;
    o.edit("r-entry-len.overflow", "R-ENTRY-LEN", |e| {
        // numel = 6 x 2^61 fits; n_rows x stride = 9 x 2^61 does not.
        e.tensor(0)?.shape[0] = U64::new(1 << 61);
        Ok(())
    })?;
    o.edit("r-entry-len.short", "R-ENTRY-LEN", |e| {
        e.payload(11)?.pop();
        Ok(())
    })?;
    o.edit("r-scale-len", "R-SCALE-LEN", |e| {
        e.payload(9)?.extend_from_slice(&[0, 0]);
        Ok(())
    })?;
    o.edit("r-scale-len.elem", "R-SCALE-LEN", |e| {
        e.tensor(0)?.scale_elem = ElemType::F32.to_raw(); // stored as f16
        Ok(())
    })?;
    o.edit("r-basis-fit", "R-BASIS-FIT", |e| {
        e.tensor(0)?.basis = U32::new(1); // n_cols 8, the tensor has 6
        Ok(())
    })?;
    o.edit("r-slot-l-len", "R-SLOT-L-LEN", |e| {
        e.payload(12)?.extend_from_slice(&[0; 8]);
        Ok(())
    })?;
    for (variant, field, v) in [
        ("", 0usize, 1.5f32),
        (".nan", 1, f32::NAN),
        (".below-minus-one", 2, -1.01),
        (".rel-fro-negative", 3, -0.1),
        (".rel-fro-infinite", 3, f32::INFINITY),
    ] {
        o.edit(&format!("r-quality{variant}"), "R-QUALITY", |e| {
            let t = e.tensor(0)?;
            let q = [
                &mut t.rho_median,
                &mut t.rho_p5,
                &mut t.rho_min,
                &mut t.rel_fro,
            ];
            *q.into_iter().nth(field).ok_or("field")? = f32_bits(v);
            Ok(())
        })?;
    }
    o.edit("r-quality.without-flag", "R-QUALITY", |e| {
        e.tensor(1)?.rel_fro = f32_bits(0.1);
        Ok(())
    })?;
    o.edit("r-quality.without-flag-negative-zero", "R-QUALITY", |e| {
        e.tensor(1)?.rho_median = f32_bits(-0.0);
        Ok(())
    })?;

    // --- metadata ("a" = "1", "b" = "2")
    let meta_cases: [(&str, Vec<u8>); 8] = [
        ("", metadata_payload(&[(b"a", b"1"), (b"a", b"2")])),
        (".order", metadata_payload(&[(b"b", b"2"), (b"a", b"1")])),
        (".empty-key", metadata_payload(&[(b"", b"1"), (b"b", b"2")])),
        (
            ".key-utf8",
            metadata_payload(&[(b"a", b"1"), (b"\xFF", b"2")]),
        ),
        (
            ".value-utf8",
            metadata_payload(&[(b"a", b"\xC3"), (b"b", b"2")]),
        ),
        (".value-overrun", {
            let mut p = metadata_payload(&[(b"a", b"1"), (b"b", b"2")]);
            let n = p.len();
            p[n - 5] = 2; // value_len 2, one byte left
            p
        }),
        (".trailing", {
            let mut p = metadata_payload(&[(b"a", b"1"), (b"b", b"2")]);
            p.extend_from_slice(&[1, 0]); // half a key length
            p
        }),
        (".key-too-long", {
            let long = vec![b'k'; 4097];
            metadata_payload(&[(b"a", b"1"), (&long, b"2")])
        }),
    ];
    for (variant, payload) in meta_cases {
        o.edit(&format!("r-metadata{variant}"), "R-METADATA", |e| {
            let m = e.find(K::Metadata, 0)?;
            *e.payload(m)? = payload;
            Ok(())
        })?;
        if variant == ".value-utf8" {
            // Values are read, and so checked, after open (spec §5).
            o.at_verify();
        }
    }

    let mut seen = BTreeSet::new();
    for v in &o.list {
        if !seen.insert(v.name.clone()) {
            return Err(format!("duplicate vector name {}", v.name).into());
        }
    }
    Ok(o.list)
}

// ---------------------------------------------------------------------------
// Companion files.

/// `X.expected`: the error kind, then the rule, then `verify` when open
/// accepts the file and verification reports the rule.
pub fn expected_text(rule: &str, at_verify: bool) -> Res<String> {
    let kind = RULES
        .iter()
        .find(|(r, _)| *r == rule)
        .map(|(_, k)| *k)
        .ok_or_else(|| format!("unknown rule {rule}"))?;
    let when = if at_verify { "verify\n" } else { "" };
    Ok(format!("{kind}\n{rule}\n{when}"))
}

/// `X.json`: what `hhtld inspect --json --verify X.hhtld` prints.
pub fn inspect_text(bytes: &[u8]) -> Res<String> {
    let f = HhtldFile::copy_from_slice(bytes)?;
    Ok(format!(
        "{:#}\n",
        hhtld::inspect::inspect_json(&f.view(), true)
    ))
}

/// `X.rows.json`: every row of every float tensor, decoded by the reader to
/// f32, as 8-digit hex bit patterns; one row per line.
pub fn rows_text(bytes: &[u8]) -> Res<String> {
    let f = HhtldFile::copy_from_slice(bytes)?;
    let h = f.view();
    let mut blocks = Vec::new();
    for t in h.tensors() {
        let float = t.encoding() == hhtld_format::Encoding::Palette
            || matches!(
                t.dtype(),
                Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64
            );
        if !float {
            continue;
        }
        let mut row = vec![0f32; t.n_cols()];
        let mut rows = Vec::new();
        for r in 0..t.n_rows() {
            t.decode_row_into(r, &mut row)?;
            let hex: Vec<String> = row
                .iter()
                .map(|v| format!("\"{:08x}\"", v.to_bits()))
                .collect();
            rows.push(format!("        [{}]", hex.join(", ")));
        }
        let rows = if rows.is_empty() {
            "[]".to_owned()
        } else {
            format!("[\n{}\n      ]", rows.join(",\n"))
        };
        blocks.push(format!(
            "    {{\n      \"name\": {},\n      \"n_rows\": {},\n      \"n_cols\": {},\n      \"rows\": {rows}\n    }}",
            serde_json::Value::from(t.name()),
            t.n_rows(),
            t.n_cols(),
        ));
    }
    let body = if blocks.is_empty() {
        "[]".to_owned()
    } else {
        format!("[\n{}\n  ]", blocks.join(",\n"))
    };
    Ok(format!("{{\n  \"tensors\": {body}\n}}\n"))
}

/// Every file the generator writes, as paths relative to `spec/vectors`.
pub fn all_files() -> Res<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for v in valid_vectors()? {
        let dir = Path::new("valid");
        out.push((
            dir.join(format!("{}.json", v.name)),
            inspect_text(&v.bytes)?.into_bytes(),
        ));
        out.push((
            dir.join(format!("{}.rows.json", v.name)),
            rows_text(&v.bytes)?.into_bytes(),
        ));
        out.push((dir.join(format!("{}.hhtld", v.name)), v.bytes));
    }
    for v in guarded_vectors()? {
        let dir = Path::new("guarded");
        out.push((
            dir.join(format!("{}.expected", v.name)),
            guarded_text(&v.bytes)?.into_bytes(),
        ));
        out.push((dir.join(format!("{}.hhtld", v.name)), v.bytes));
    }
    for v in invalid_vectors()? {
        let dir = Path::new("invalid");
        out.push((
            dir.join(format!("{}.expected", v.name)),
            expected_text(v.rule, v.at_verify)?.into_bytes(),
        ));
        out.push((dir.join(format!("{}.hhtld", v.name)), v.bytes));
    }
    Ok(out)
}

/// `spec/vectors` of this checkout.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/vectors")
}

/// Files under `valid/`, `invalid/` and `guarded/` that are vectors or
/// companions, relative to `spec/vectors`.
pub fn files_on_disk() -> Res<BTreeSet<PathBuf>> {
    let mut set = BTreeSet::new();
    for sub in ["valid", "invalid", "guarded"] {
        let dir = vectors_dir().join(sub);
        if !dir.exists() {
            continue;
        }
        for e in std::fs::read_dir(&dir)? {
            let name = e?.file_name();
            set.insert(Path::new(sub).join(name));
        }
    }
    Ok(set)
}

fn main() -> Res<()> {
    let root = vectors_dir();
    let files = all_files()?;
    let keep: BTreeSet<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    for stale in files_on_disk()?.difference(&keep) {
        std::fs::remove_file(root.join(stale))?;
        println!("removed {}", stale.display());
    }
    for sub in ["valid", "invalid", "guarded"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    for (path, bytes) in &files {
        std::fs::write(root.join(path), bytes)?;
    }
    let n_valid = files
        .iter()
        .filter(|(p, _)| p.starts_with("valid") && p.extension().is_some_and(|e| e == "hhtld"))
        .count();
    let n_invalid = files
        .iter()
        .filter(|(p, _)| p.starts_with("invalid") && p.extension().is_some_and(|e| e == "hhtld"))
        .count();
    println!(
        "wrote {n_valid} valid and {n_invalid} invalid vectors to {}",
        root.display()
    );
    Ok(())
}
