//! The `roundtrip` target: a structured script of Writer calls. Each call
//! either fails with a typed error (leaving the writer unchanged) or is
//! recorded in a model; the finished file must open, verify, and give back
//! every recorded value exactly, and decode bit-exactly like the spec §4
//! reference run on the model.

use std::collections::BTreeMap;
use std::io::Cursor;

use arbitrary::Arbitrary;
use hhtld_format::encode::round_to_elem;
use hhtld_format::{Dtype, ElemType, Encoding, Regime, Role};
use hhtld_reader::HhtldFile;
use hhtld_writer::builder::{
    BasisId, EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, TensorHeader,
    Writer,
};
use hhtld_writer::fisher::fisher_z_table;
use hhtld_writer::report::SizeReport;

use crate::{cycle, foreign_ids, matrix};

use crate::reference::{RefRow, RefStage};
use crate::{assert_same_f32, same_f32};

/// Largest tensor the script builds (elements); bigger shapes are skipped.
const MAX_NUMEL: u64 = 4096;

/// An element type.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Elem {
    /// f32.
    F32,
    /// f16.
    F16,
    /// bf16.
    Bf16,
}

impl From<Elem> for ElemType {
    fn from(e: Elem) -> ElemType {
        match e {
            Elem::F32 => ElemType::F32,
            Elem::F16 => ElemType::F16,
            Elem::Bf16 => ElemType::Bf16,
        }
    }
}

/// One stage of an encoded tensor.
#[derive(Arbitrary, Debug, Clone)]
pub struct StageOp {
    /// Index into the palettes added so far (modulo their number).
    pub palette: u8,
    /// Codes, cycled to the needed count and reduced modulo `k` unless the
    /// tensor is `exact`.
    pub codes: Vec<u8>,
}

/// The SlotL part of an encoded tensor.
#[derive(Arbitrary, Debug, Clone)]
pub struct SlotOp {
    /// Index into the bases added so far (modulo their number).
    pub basis: u8,
    /// Coefficients, cycled to `n_rows x 8`.
    pub coef: Vec<i8>,
    /// Slot scale.
    pub scale: f32,
    /// Make the tensor `[rows, basis n_cols]` so the basis fits.
    pub fit: bool,
}

/// An encoded tensor.
#[derive(Arbitrary, Debug, Clone)]
pub struct EncodedOp {
    /// Name; `None` gives a unique one.
    pub name: Option<String>,
    /// Dtype index (modulo 15).
    pub dtype: u8,
    /// Shape entries (each modulo 9).
    pub shape: Vec<u8>,
    /// Role index.
    pub role: u8,
    /// Regime index.
    pub regime: u8,
    /// Stages.
    pub stages: Vec<StageOp>,
    /// Row scales.
    pub scale: Option<(Elem, Vec<f32>)>,
    /// SlotL.
    pub slot: Option<SlotOp>,
    /// Quality values.
    pub quality: Option<[f32; 4]>,
    /// Pass values as given instead of fitting them to the shape.
    pub exact: bool,
}

/// One Writer call.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// `add_palette`.
    Palette {
        /// Entries (fitted to `1..=2^bits` unless `exact`).
        k: u8,
        /// Width (fitted to `1..=12` unless `exact`).
        d: u8,
        /// 8-bit codes instead of 4-bit.
        wide: bool,
        /// Element type.
        elem: Elem,
        /// Values (cycled to `k x d` and made finite unless `exact`).
        values: Vec<f32>,
        /// Pass everything as given.
        exact: bool,
    },
    /// `add_basis`.
    Basis {
        /// Width (fitted to `1..=24` unless `exact`).
        n_cols: u8,
        /// Element type.
        elem: Elem,
        /// Values.
        values: Vec<f32>,
        /// Pass everything as given.
        exact: bool,
    },
    /// `add_fisher_z` of a palette added so far.
    FisherZ {
        /// Palette index (modulo their number).
        palette: u8,
    },
    /// `add_fisher_z_table`.
    FisherTable {
        /// Palette index (modulo their number).
        palette: u8,
        /// Gamma (made finite and positive unless `exact`).
        gamma: f32,
        /// Values (cycled to `k x k` and made symmetric unless `exact`).
        table: Vec<i8>,
        /// Pass everything as given.
        exact: bool,
    },
    /// `add_raw_tensor`.
    Raw {
        /// Name; `None` gives a unique one.
        name: Option<String>,
        /// Dtype index.
        dtype: u8,
        /// Shape entries (each modulo 9).
        shape: Vec<u8>,
        /// Role index.
        role: u8,
        /// Regime index.
        regime: u8,
        /// Bytes (cycled to `numel x size` unless `exact`).
        bytes: Vec<u8>,
        /// Pass the bytes as given.
        exact: bool,
    },
    /// `add_encoded_tensor`.
    Encoded(Box<EncodedOp>),
    /// `set_metadata`.
    Metadata {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
}

/// The fuzzer's input.
#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    /// Writer calls, in order.
    pub ops: Vec<Op>,
    /// Tensor indices for `order_tensors_like`, if called.
    pub reorder: Option<Vec<u8>>,
}

struct ExpPalette {
    id: PaletteId,
    k: usize,
    d: usize,
    bits: u8,
    elem: ElemType,
    /// Stored values, `2^bits x d` (zero padding included), as f32.
    padded: Vec<f32>,
    fisher: Option<(f32, Vec<i8>)>,
}

struct ExpBasis {
    id: BasisId,
    n_cols: usize,
    elem: ElemType,
    stored: Vec<f32>,
}

struct ExpEncoded {
    stages: Vec<(usize, Vec<u8>)>,
    scale: Option<(ElemType, Vec<f32>)>,
    slot: Option<(usize, Vec<[i8; 8]>, f32)>,
    quality: Option<Quality>,
}

struct ExpTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<u64>,
    role: Role,
    regime: Regime,
    body: ExpBody,
}

/// What an expected tensor stores.
enum ExpBody {
    Raw(Vec<u8>),
    Encoded(ExpEncoded),
}

impl ExpTensor {
    fn new(
        name: String,
        dtype: Dtype,
        shape: Vec<u64>,
        role: Role,
        regime: Regime,
        body: ExpBody,
    ) -> Self {
        ExpTensor {
            name,
            dtype,
            shape,
            role,
            regime,
            body,
        }
    }
}

/// Values a writer accepts for `elem`: finite, and finite after rounding.
fn tame(v: f32, elem: ElemType) -> f32 {
    if !v.is_finite() {
        return 0.0;
    }
    let max = match elem {
        ElemType::F32 => f32::MAX,
        ElemType::F16 => 65000.0,
        ElemType::Bf16 => 3.0e38,
    };
    v.clamp(-max, max)
}

fn ramp(i: usize) -> f32 {
    (i % 7) as f32 * 0.375 - 1.25
}

fn shape_of(dims: &[u8]) -> Vec<u64> {
    dims.iter().map(|&d| u64::from(d % 9)).collect()
}

/// Tensors counted before an op, to check that a failed op changed nothing.
fn counts(w: &Writer<Cursor<Vec<u8>>>) -> (usize, usize) {
    (w.tensor_count(), w.palette_count())
}

/// Runs the script and checks the file it produces.
pub fn run(input: &Input) {
    let mut w = Writer::new(Cursor::new(Vec::new())).expect("writer on a Vec");
    let (foreign_p, foreign_b) = foreign_ids(1, 1);

    let mut pals: Vec<ExpPalette> = Vec::new();
    let mut bases: Vec<ExpBasis> = Vec::new();
    let mut tensors: Vec<ExpTensor> = Vec::new();
    let mut meta: BTreeMap<String, String> = BTreeMap::new();

    for (op_index, op) in input.ops.iter().enumerate().take(32) {
        let before = counts(&w);
        let ok = match op {
            Op::Palette {
                k,
                d,
                wide,
                elem,
                values,
                exact,
            } => {
                let bits = if *wide { 8 } else { 4 };
                let elem = ElemType::from(*elem);
                let (k, d, values) = if *exact {
                    (usize::from(*k), usize::from(*d), values.clone())
                } else {
                    let k = 1 + usize::from(*k) % (1 << bits);
                    let d = 1 + usize::from(*d) % 12;
                    let v = cycle(values, k * d, ramp);
                    (k, d, v.into_iter().map(|x| tame(x, elem)).collect())
                };
                let res = w.add_palette(PaletteSpec {
                    k,
                    d,
                    bits,
                    elem,
                    values: &values,
                });
                if let Ok(id) = res {
                    let mut padded: Vec<f32> =
                        values.iter().map(|&v| round_to_elem(v, elem)).collect();
                    padded.resize((1 << bits) * d, 0.0);
                    assert_eq!(id.index() as usize, pals.len());
                    pals.push(ExpPalette {
                        id,
                        k,
                        d,
                        bits,
                        elem,
                        padded,
                        fisher: None,
                    });
                }
                res.map(drop)
            }
            Op::Basis {
                n_cols,
                elem,
                values,
                exact,
            } => {
                let elem = ElemType::from(*elem);
                let (n, values) = if *exact {
                    (usize::from(*n_cols), values.clone())
                } else {
                    let n = 1 + usize::from(*n_cols) % 24;
                    let v = cycle(values, 8 * n, ramp);
                    (n, v.into_iter().map(|x| tame(x, elem)).collect())
                };
                let res = w.add_basis(n, elem, &values);
                if let Ok(id) = res {
                    assert_eq!(id.index() as usize, bases.len());
                    bases.push(ExpBasis {
                        id,
                        n_cols: n,
                        elem,
                        stored: values.iter().map(|&v| round_to_elem(v, elem)).collect(),
                    });
                }
                res.map(drop)
            }
            Op::FisherZ { palette } => {
                if pals.is_empty() {
                    continue;
                }
                let i = usize::from(*palette) % pals.len();
                let p = &mut pals[i];
                let res = w.add_fisher_z(p.id);
                if res.is_ok() {
                    assert!(p.fisher.is_none(), "a second FisherZ table was accepted");
                    let table = fisher_z_table(&p.padded[..p.k * p.d], p.k, p.d)
                        .expect("the writer computed this table");
                    p.fisher = Some(table);
                }
                res
            }
            Op::FisherTable {
                palette,
                gamma,
                table,
                exact,
            } => {
                if pals.is_empty() {
                    continue;
                }
                let i = usize::from(*palette) % pals.len();
                let p = &mut pals[i];
                let (gamma, table) = if *exact {
                    (*gamma, table.clone())
                } else {
                    let k = p.k;
                    let mut t = cycle(table, k * k, |i| (i % 255) as i8);
                    for a in 0..k {
                        for b in 0..a {
                            t[a * k + b] = t[b * k + a];
                        }
                    }
                    for v in &mut t {
                        *v = (*v).max(-127);
                    }
                    let g = if gamma.is_finite() && gamma.abs() > 0.0 {
                        gamma.abs()
                    } else {
                        0.01
                    };
                    (g, t)
                };
                let res = w.add_fisher_z_table(p.id, gamma, &table);
                if res.is_ok() {
                    assert!(p.fisher.is_none(), "a second FisherZ table was accepted");
                    p.fisher = Some((gamma, table));
                }
                res
            }
            Op::Raw {
                name,
                dtype,
                shape,
                role,
                regime,
                bytes,
                exact,
            } => {
                let dtype = Dtype::ALL[usize::from(*dtype) % Dtype::ALL.len()];
                let shape = shape_of(shape);
                let n = matrix(&shape).and_then(|(r, c)| (r * c).checked_mul(dtype.size() as u64));
                let bytes = match n {
                    Some(n) if !*exact && n <= MAX_NUMEL * 8 => {
                        cycle(bytes, n as usize, |i| i as u8)
                    }
                    _ => bytes.clone(),
                };
                let name = match name {
                    Some(n) if *exact => n.clone(),
                    Some(n) => format!("{n}#{op_index}"),
                    None => format!("raw.{op_index}"),
                };
                let role = Role::ALL[usize::from(*role) % Role::ALL.len()];
                let regime = Regime::ALL[usize::from(*regime) % Regime::ALL.len()];
                let res = w.add_raw_tensor(RawTensor {
                    header: TensorHeader {
                        name: &name,
                        dtype,
                        shape: &shape,
                        role,
                        regime,
                    },
                    bytes: &bytes,
                });
                if res.is_ok() {
                    let body = ExpBody::Raw(bytes);
                    tensors.push(ExpTensor::new(name, dtype, shape, role, regime, body));
                }
                res
            }
            Op::Encoded(e) => {
                let Some(res) = add_encoded(
                    &mut w,
                    e,
                    op_index,
                    &pals,
                    &bases,
                    foreign_p,
                    foreign_b,
                    &mut tensors,
                ) else {
                    continue;
                };
                res
            }
            Op::Metadata { key, value } => {
                let res = w.set_metadata(key, value);
                if res.is_ok() {
                    meta.insert(key.clone(), value.clone());
                }
                res
            }
        };
        if crate::tracing() {
            let what = format!("{op:?}");
            eprintln!(
                "roundtrip op {op_index} {:.60}: {:?}",
                what,
                ok.as_ref().map_err(ToString::to_string)
            );
        }
        match ok {
            Ok(()) => {}
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert_eq!(counts(&w), before, "a failed call changed the writer: {e}");
            }
        }
    }

    if let Some(order) = &input.reorder {
        if !tensors.is_empty() {
            let mut picked: Vec<usize> = Vec::new();
            for &i in order {
                let i = usize::from(i) % tensors.len();
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
            let names: Vec<&str> = picked.iter().map(|&i| tensors[i].name.as_str()).collect();
            w.order_tensors_like(names.iter().copied())
                .expect("reorder by known names");
            let mut rest: Vec<Option<ExpTensor>> = tensors.drain(..).map(Some).collect();
            let mut ordered: Vec<ExpTensor> =
                picked.iter().filter_map(|&i| rest[i].take()).collect();
            ordered.extend(rest.into_iter().flatten());
            tensors = ordered;
        }
    }

    let (out, report) = w
        .finish_into_inner()
        .expect("finish into memory after checked adds");
    let bytes = out.into_inner();
    assert_eq!(report.file_len, bytes.len() as u64);
    report.check().expect("writer report adds up");
    if let Err(e) = hhtld_reader::Hhtld::from_bytes(&bytes) {
        panic!("the writer produced a file from_bytes rejects: {e}");
    }
    let file = HhtldFile::copy_from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the writer produced a file the reader rejects: {e}"));
    let h = file.view();
    h.verify().expect("fresh file verifies");
    assert_eq!(
        SizeReport::from_layout(h.layout(), h.bytes()),
        report,
        "inspect's size report differs from the writer's"
    );
    crate::check::report(&h);

    // Palettes, FisherZ tables, bases.
    assert_eq!(h.palette_count(), pals.len());
    for (i, p) in pals.iter().enumerate() {
        let v = h.palette(i).expect("palette");
        assert_eq!(
            (v.k(), v.d(), v.bits(), v.elem()),
            (p.k, p.d, p.bits, p.elem)
        );
        let stored: Vec<f32> = (0..1usize << p.bits)
            .flat_map(|e| v.entry_f32_vec(e).expect("stored entry"))
            .collect();
        assert_same_f32(&format!("palette {i}"), &stored, &p.padded);
        let f = h
            .fisher_for_palette(i)
            .map(|f| (f.gamma(), f.table().to_vec()));
        match (&f, &p.fisher) {
            (None, None) => {}
            (Some((g, t)), Some((eg, et))) => {
                assert!(
                    same_f32(*g, *eg) && t == et,
                    "palette {i}: FisherZ table differs"
                );
            }
            _ => panic!("palette {i}: FisherZ presence differs"),
        }
    }
    assert_eq!(h.basis_count(), bases.len());
    for (i, b) in bases.iter().enumerate() {
        let v = h.basis(i).expect("basis");
        assert_eq!((v.n_cols(), v.elem()), (b.n_cols, b.elem));
        let got: Vec<f32> = (0..8 * b.n_cols)
            .map(|j| v.data().get_f32(j).expect("basis value"))
            .collect();
        assert_same_f32(&format!("basis {i}"), &got, &b.stored);
    }

    // Metadata.
    let got: Vec<(String, String)> = h
        .metadata()
        .map(|r| r.expect("written metadata is UTF-8"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let want: Vec<(String, String)> = meta.into_iter().collect();
    assert_eq!(got, want, "metadata");

    // Tensors.
    assert_eq!(h.tensor_count(), tensors.len());
    for (i, e) in tensors.iter().enumerate() {
        let t = h.tensor(i).expect("tensor");
        assert_eq!(t.name(), e.name);
        assert_eq!(t.shape(), e.shape.as_slice(), "{}", e.name);
        assert_eq!(
            (t.dtype(), t.role(), t.regime()),
            (e.dtype, e.role, e.regime),
            "{}",
            e.name
        );
        match &e.body {
            ExpBody::Raw(raw) => {
                assert_eq!(t.encoding(), Encoding::Raw);
                assert_eq!(t.raw_bytes(), Some(raw.as_slice()), "{}: raw bytes", e.name);
            }
            ExpBody::Encoded(enc) => {
                assert_eq!(t.encoding(), Encoding::Palette);
                check_encoded(&t, enc, &pals, &bases);
            }
        }
    }
    crate::check::views(&h);
}

#[allow(clippy::too_many_arguments)]
fn add_encoded(
    w: &mut Writer<Cursor<Vec<u8>>>,
    e: &EncodedOp,
    op_index: usize,
    pals: &[ExpPalette],
    bases: &[ExpBasis],
    foreign_p: PaletteId,
    foreign_b: BasisId,
    tensors: &mut Vec<ExpTensor>,
) -> Option<Result<(), hhtld_writer::error::WriteError>> {
    // Unless `exact`, pick what an encoded tensor may be: a float dtype, a
    // regime other than PASSTHROUGH, a fresh name, columns >= 1.
    let (dtype, regime) = if e.exact {
        (
            Dtype::ALL[usize::from(e.dtype) % Dtype::ALL.len()],
            Regime::ALL[usize::from(e.regime) % Regime::ALL.len()],
        )
    } else {
        let floats = [Dtype::F32, Dtype::F16, Dtype::Bf16, Dtype::F64];
        let regimes = [Regime::Index, Regime::Argmax];
        (
            floats[usize::from(e.dtype) % floats.len()],
            regimes[usize::from(e.regime) % regimes.len()],
        )
    };
    let role = Role::ALL[usize::from(e.role) % Role::ALL.len()];
    let basis = e
        .slot
        .as_ref()
        .and_then(|s| (!bases.is_empty()).then(|| usize::from(s.basis) % bases.len()));
    let shape = match (&e.slot, basis) {
        (Some(s), Some(b)) if s.fit => vec![
            e.shape.first().map_or(2, |&r| u64::from(r % 9)),
            bases[b].n_cols as u64,
        ],
        _ if e.exact => shape_of(&e.shape),
        _ => e
            .shape
            .iter()
            .enumerate()
            .map(|(i, &x)| u64::from(if i == 0 { x % 9 } else { 1 + x % 8 }))
            .collect(),
    };
    let (n_rows, n_cols) = matrix(&shape)?;
    if n_rows * n_cols > MAX_NUMEL {
        return None;
    }
    let (n_rows, n_cols) = (n_rows as usize, n_cols as usize);
    let name = match &e.name {
        Some(n) if e.exact => n.clone(),
        Some(n) => format!("{n}#{op_index}"),
        None => format!("enc.{op_index}"),
    };

    let mut stage_ids = Vec::new();
    let mut stage_codes: Vec<(usize, Vec<u8>)> = Vec::new();
    for st in e.stages.iter().take(6) {
        let (id, pi) = if pals.is_empty() {
            (foreign_p, usize::MAX)
        } else {
            let pi = usize::from(st.palette) % pals.len();
            (pals[pi].id, pi)
        };
        let codes = if e.exact || pi == usize::MAX {
            st.codes.clone()
        } else {
            let p = &pals[pi];
            let ns = n_cols.div_ceil(p.d);
            cycle(&st.codes, n_rows * ns, |i| i as u8)
                .into_iter()
                .map(|c| (usize::from(c) % p.k) as u8)
                .collect()
        };
        stage_ids.push(id);
        stage_codes.push((pi, codes));
    }
    let scale = e.scale.as_ref().map(|(el, v)| {
        let el = ElemType::from(*el);
        let v = if e.exact {
            v.clone()
        } else {
            cycle(v, n_rows, |i| 1.0 + i as f32)
                .into_iter()
                .map(|x| tame(x, el))
                .collect()
        };
        (el, v)
    });
    let slot = e.slot.as_ref().map(|s| {
        let coef: Vec<[i8; 8]> = cycle(&s.coef, n_rows * 8, |i| i as i8)
            .chunks_exact(8)
            .map(|c| c.try_into().expect("8 coefficients"))
            .collect();
        let sc = if e.exact {
            s.scale
        } else {
            tame(s.scale, ElemType::F32)
        };
        let id = basis.map_or(foreign_b, |b| bases[b].id);
        (id, basis.unwrap_or(usize::MAX), coef, sc)
    });
    let quality = e.quality.map(|q| {
        let q = if e.exact {
            q
        } else {
            let fix = |v: f32| {
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            };
            [fix(q[0]), fix(q[1]), fix(q[2]), fix(q[3]).abs()]
        };
        Quality {
            rho_median: q[0],
            rho_p5: q[1],
            rho_min: q[2],
            rel_fro: q[3],
        }
    });
    let stages: Vec<Stage> = stage_ids
        .iter()
        .zip(&stage_codes)
        .map(|(&palette, (_, codes))| Stage::new(palette, codes))
        .collect();
    let res = w.add_encoded_tensor(
        EncodedTensor {
            scale: scale.as_ref().map(|(el, v)| (*el, v.as_slice())),
            slot_l: slot.as_ref().map(|(id, _, coef, sc)| SlotL {
                basis: *id,
                coef,
                scale: *sc,
            }),
            ..EncodedTensor::new(&name, dtype, &shape, role, regime, &stages)
        }
        .with_quality(quality),
    );
    if res.is_ok() {
        assert!(
            stage_codes.iter().all(|(pi, _)| *pi != usize::MAX),
            "a foreign palette id was accepted"
        );
        let body = ExpBody::Encoded(ExpEncoded {
            stages: stage_codes,
            scale: scale.map(|(el, v)| (el, v.iter().map(|&x| round_to_elem(x, el)).collect())),
            slot: slot.map(|(_, b, coef, sc)| {
                assert_ne!(b, usize::MAX, "a foreign basis id was accepted");
                (b, coef, sc)
            }),
            quality,
        });
        tensors.push(ExpTensor::new(name, dtype, shape, role, regime, body));
    }
    Some(res)
}

fn check_encoded(
    t: &hhtld_reader::TensorView<'_>,
    e: &ExpEncoded,
    pals: &[ExpPalette],
    bases: &[ExpBasis],
) {
    let name = t.name();
    let (n_rows, n_cols) = (t.n_rows(), t.n_cols());
    let st = t.stages();
    assert_eq!(st.len(), e.stages.len(), "{name}: stages");
    for (s, (pi, _)) in e.stages.iter().enumerate() {
        assert_eq!(st[s].palette as usize, *pi, "{name}: stage {s} palette");
    }
    let rec = t.record();
    assert_eq!(
        rec.scale.as_ref().map(|s| s.elem),
        e.scale.as_ref().map(|s| s.0),
        "{name}: scale elem"
    );
    match (&rec.slot, &e.slot) {
        (None, None) => {}
        (Some(s), Some((b, _, sc))) => {
            assert_eq!(s.basis as usize, *b, "{name}: basis");
            assert!(same_f32(s.slot_scale, *sc), "{name}: slot scale");
        }
        _ => panic!("{name}: SlotL presence differs"),
    }
    let q = t.quality();
    assert_eq!(q.is_some(), e.quality.is_some(), "{name}: quality presence");
    if let (Some(q), Some(w)) = (q, e.quality) {
        for (g, x) in [
            (q.rho_median, w.rho_median),
            (q.rho_p5, w.rho_p5),
            (q.rho_min, w.rho_min),
            (q.rel_fro, w.rel_fro),
        ] {
            assert!(same_f32(g, x), "{name}: quality {g} != {x}");
        }
    }
    let mut out = vec![0f32; n_cols];
    for r in 0..n_rows {
        let row = t.row(r).expect("row");
        for (s, (pi, codes)) in e.stages.iter().enumerate() {
            let ns = n_cols.div_ceil(pals[*pi].d);
            for j in 0..ns {
                assert_eq!(
                    row.code(s, j),
                    Some(codes[r * ns + j]),
                    "{name}: row {r} stage {s} code {j}"
                );
            }
        }
        let scale = e.scale.as_ref().map(|(_, v)| v[r]);
        match (row.scale(), scale) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!(same_f32(a, b), "{name}: row {r} scale {a} != {b}"),
            (a, b) => panic!("{name}: row {r} scale {a:?} vs {b:?}"),
        }
        assert_eq!(
            row.slot_l().copied(),
            e.slot.as_ref().map(|(_, c, _)| c[r]),
            "{name}: row {r} SlotL"
        );
        t.decode_row_into(r, &mut out).expect("decode row");
        let stages = e
            .stages
            .iter()
            .map(|(pi, codes)| {
                let p = &pals[*pi];
                let ns = n_cols.div_ceil(p.d);
                RefStage {
                    palette: &p.padded,
                    d: p.d,
                    codes: codes[r * ns..(r + 1) * ns]
                        .iter()
                        .map(|&c| usize::from(c))
                        .collect(),
                }
            })
            .collect();
        let want = RefRow {
            stages,
            scale,
            slot: e
                .slot
                .as_ref()
                .map(|(b, c, sc)| (c[r], bases[*b].stored.as_slice(), *sc)),
        }
        .decode(n_cols);
        assert_same_f32(&format!("{name} row {r} vs the model"), &out, &want);
    }
}
