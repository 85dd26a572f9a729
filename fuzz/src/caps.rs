//! The `encode_caps` target: arbitrary (often inconsistent) arguments to
//! the codec and to every Writer entry point. Each call must end in a typed
//! error or success; what the codec returns must be storable as is; and a
//! finished file must open and verify.

use std::io::Cursor;

use arbitrary::Arbitrary;
use hhtld_format::decode::n_sub;
use hhtld_format::encode::round_to_elem;
use hhtld_format::limits::{MAX_PALETTE_K, MAX_STAGES, SLOT_L_DIMS};
use hhtld_format::{Dtype, ElemType, Regime, Role};
use hhtld_reader::HhtldFile;
use hhtld_writer::builder::{
    BasisId, EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, TensorHeader,
    Writer, WriterLimits,
};
use hhtld_writer::codec::{encode_group, CodecSpec, KmeansParams, Matrix, StageShape};
use hhtld_writer::report::SizeReport;

use crate::{cycle, foreign_ids, matrix};

use crate::assert_same_f32;
use crate::roundtrip::Elem;

/// Most matrix elements one input encodes, so each run stays fast.
const MAX_ELEMS: usize = 3000;
/// Largest payload the writer ops build by cycling.
const MAX_FILL: u64 = 4096;

/// One stage shape for stages after the first.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ShapeIn {
    /// Entry width (0 = whole row).
    pub d: u8,
    /// Code width (any value; only 4 and 8 are valid).
    pub bits: u8,
    /// Entries wanted.
    pub k: u16,
}

/// A codec spec with every field free.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct SpecIn {
    /// Stage 0's shape.
    pub first: ShapeIn,
    /// Residual stages.
    pub stages: u8,
    /// Row scales.
    pub row_scale: bool,
    /// SlotL.
    pub slot_l: bool,
    /// Element type.
    pub elem: Elem,
    /// Shape of the later stages.
    pub later: Option<ShapeIn>,
    /// k-means sample size.
    pub sample: u16,
    /// Lloyd iterations.
    pub iters: u8,
    /// Refinement passes.
    pub refine: u8,
    /// Joint refinement rounds.
    pub joint: u8,
    /// Seed.
    pub seed: u64,
}

/// Code widths: mostly valid, sometimes not.
fn bits_of(b: u8) -> u8 {
    match b % 4 {
        0 => 4,
        1 => 8,
        _ => b,
    }
}

impl SpecIn {
    /// The spec, with widths and counts mostly near the valid range and
    /// k-means kept to a few iterations.
    pub fn spec(&self) -> CodecSpec {
        let shape = |s: ShapeIn| StageShape {
            d: usize::from(s.d % 40),
            bits: bits_of(s.bits),
            k: usize::from(s.k) % (MAX_PALETTE_K + 20),
        };
        let first = shape(self.first);
        CodecSpec {
            d: first.d,
            bits: first.bits,
            k: first.k,
            stages: usize::from(self.stages) % (MAX_STAGES + 2),
            row_scale: self.row_scale,
            slot_l: self.slot_l,
            elem: self.elem.into(),
            later: self.later.map(shape),
            kmeans: KmeansParams {
                sample: usize::from(self.sample) % 600,
                iters: usize::from(self.iters % 4),
                refine: usize::from(self.refine % 2),
                joint: usize::from(self.joint % 2),
                seed: self.seed,
                // Small budgets reach the row-sampled fit.
                fit_values: usize::from(self.sample) * 64,
            },
        }
    }
}

/// A matrix for the codec.
#[derive(Arbitrary, Debug, Clone)]
pub struct MatIn {
    /// Rows (modulo 24).
    pub n_rows: u8,
    /// Columns (modulo 40; 0 is an error).
    pub n_cols: u8,
    /// Values, cycled to `n_rows x n_cols` unless `exact`.
    pub data: Vec<f32>,
    /// Pass `data` as given (length and non-finite values).
    pub exact: bool,
}

/// A Writer call with free arguments.
#[derive(Arbitrary, Debug, Clone)]
pub enum WriterOp {
    /// `add_palette`.
    Palette {
        /// Entries.
        k: u16,
        /// Width.
        d: u32,
        /// Code width.
        bits: u8,
        /// Element type.
        elem: Elem,
        /// Values.
        values: Vec<f32>,
        /// Cycle `values` to `k x d` when that is small.
        fill: bool,
    },
    /// `add_basis`.
    Basis {
        /// Width.
        n_cols: u32,
        /// Element type.
        elem: Elem,
        /// Values.
        values: Vec<f32>,
        /// Cycle `values` to `8 x n_cols` when that is small.
        fill: bool,
    },
    /// `add_fisher_z`.
    Fisher {
        /// Palette (modulo those added; a foreign id when `foreign`).
        palette: u8,
        /// Use another writer's id.
        foreign: bool,
    },
    /// `add_fisher_z_table`.
    FisherTable {
        /// Palette.
        palette: u8,
        /// Use another writer's id.
        foreign: bool,
        /// Gamma.
        gamma: f32,
        /// Table.
        table: Vec<i8>,
    },
    /// `add_raw_tensor`.
    Raw {
        /// Name.
        name: String,
        /// Dtype index.
        dtype: u8,
        /// Shape.
        shape: Vec<u64>,
        /// Role index.
        role: u8,
        /// Regime index.
        regime: u8,
        /// Bytes.
        bytes: Vec<u8>,
        /// Cycle `bytes` to the needed length when that is small.
        fill: bool,
    },
    /// `add_encoded_tensor`.
    Encoded(Box<EncodedIn>),
    /// `set_metadata`.
    Metadata {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// `order_tensors_like`.
    Order {
        /// Names.
        names: Vec<String>,
    },
}

/// `add_encoded_tensor` with free arguments.
#[derive(Arbitrary, Debug, Clone)]
pub struct EncodedIn {
    /// Name.
    pub name: String,
    /// Dtype index.
    pub dtype: u8,
    /// Shape.
    pub shape: Vec<u64>,
    /// Role index.
    pub role: u8,
    /// Regime index.
    pub regime: u8,
    /// `(palette, foreign, codes)` per stage.
    pub stages: Vec<(u8, bool, Vec<u8>)>,
    /// Scales.
    pub scale: Option<(Elem, Vec<f32>)>,
    /// `(basis, foreign, coefficients, slot scale)`.
    pub slot: Option<(u8, bool, Vec<i8>, f32)>,
    /// Quality values as given.
    pub quality: Option<[f32; 4]>,
    /// Cycle codes, scales and coefficients to the needed counts.
    pub fill: bool,
}

/// Lower writer caps.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct LimitsIn {
    /// Tensors.
    pub tensors: u8,
    /// Palettes (and bases, and tables).
    pub palettes: u8,
    /// Sections.
    pub sections: u8,
    /// Directory bytes.
    pub directory: u16,
}

/// The fuzzer's input.
#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    /// Codec spec.
    pub spec: SpecIn,
    /// Matrices of one group.
    pub mats: Vec<MatIn>,
    /// Give every matrix the first one's width.
    pub same_cols: bool,
    /// Writer calls.
    pub ops: Vec<WriterOp>,
    /// Caps for the writer of `ops`.
    pub limits: Option<LimitsIn>,
}

/// Runs the codec on the matrices; a successful group is written, read
/// back and decoded like the codec's own decoder.
fn codec(input: &Input) {
    let spec = input.spec.spec();
    let first_cols = input.mats.first().map_or(0, |m| usize::from(m.n_cols % 40));
    let mut datas: Vec<(Vec<f32>, usize, usize)> = Vec::new();
    let mut total = 0;
    for m in input.mats.iter().take(3) {
        let rows = usize::from(m.n_rows % 24);
        let cols = if input.same_cols {
            first_cols
        } else {
            usize::from(m.n_cols % 40)
        };
        let data = if m.exact {
            m.data.clone()
        } else {
            cycle(&m.data, rows * cols, |i| ((i * 37) % 11) as f32 - 5.0)
                .into_iter()
                .map(|v| {
                    if v.is_finite() {
                        v.clamp(-1e6, 1e6)
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        total += data.len().max(rows * cols);
        datas.push((data, rows, cols));
    }
    if total > MAX_ELEMS {
        return;
    }
    let mats: Vec<Matrix> = datas
        .iter()
        .map(|(d, r, c)| Matrix {
            data: d,
            n_rows: *r,
            n_cols: *c,
        })
        .collect();
    let res = encode_group(&mats, &spec);
    if crate::tracing() {
        eprintln!(
            "encode_group: {:?}",
            res.as_ref()
                .map(|g| g.palettes.len())
                .map_err(ToString::to_string)
        );
    }
    let g = match res {
        Ok(g) => g,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };

    // The group's shape is what the spec asked for.
    let n = g.n_cols;
    assert_eq!(g.palettes.len(), spec.stages);
    assert_eq!(g.tensors.len(), mats.len());
    for (s, p) in g.palettes.iter().enumerate() {
        let want = spec.stage_shape(s);
        assert_eq!(p.bits, want.bits, "stage {s} bits");
        assert!(
            p.k >= 1 && p.k <= want.k && p.k <= 1 << p.bits,
            "stage {s}: k = {}",
            p.k
        );
        assert!(p.d >= 1 && p.d <= n, "stage {s}: d = {}", p.d);
        assert_eq!(p.values.len(), p.k * p.d);
        for &v in &p.values {
            assert!(v.is_finite() && round_to_elem(v, p.elem).to_bits() == v.to_bits());
        }
    }
    if spec.slot_l {
        assert_eq!(g.basis.as_ref().map(Vec::len), Some(SLOT_L_DIMS * n));
    }
    for (m, (_, rows, _)) in g.tensors.iter().zip(&datas) {
        assert_eq!((m.n_rows, m.n_cols), (*rows, n));
        for (codes, p) in m.codes.iter().zip(&g.palettes) {
            assert_eq!(codes.len(), m.n_rows * n_sub(n, p.d));
            assert!(codes.iter().all(|&c| usize::from(c) < p.k), "code past k");
        }
        assert_eq!(
            m.scales.as_ref().map(Vec::len),
            spec.row_scale.then_some(m.n_rows)
        );
        assert_eq!(
            m.slot.as_ref().map(|s| s.coef.len()),
            spec.slot_l.then_some(m.n_rows)
        );
    }

    // Everything the codec returns is storable as is.
    let mut w = Writer::new(Cursor::new(Vec::new())).expect("writer");
    let ids = w
        .add_group_objects(&g, false)
        .unwrap_or_else(|e| panic!("codec palettes or basis rejected by the writer: {e}"));
    for (i, m) in g.tensors.iter().enumerate() {
        let header = TensorHeader {
            name: &format!("t{i}"),
            dtype: Dtype::F32,
            shape: &[m.n_rows as u64, n as u64],
            role: Role::MlpUp,
            regime: Regime::Argmax,
        };
        w.add_group_member(&g, &ids, i, header, None)
            .unwrap_or_else(|e| panic!("codec tensor {i} rejected by the writer: {e}"));
    }
    let (out, _) = w.finish_into_inner().expect("finish");
    let bytes = out.into_inner();
    let file = HhtldFile::from_vec(bytes).expect("codec file opens");
    let h = file.view();
    h.verify().expect("codec file verifies");
    let dec = g.decoder();
    for i in 0..g.tensors.len() {
        let t = h.tensor(i).expect("tensor");
        let got = t.decode().expect("decode");
        let want = dec.decode_matrix(i).expect("codec decode");
        assert_same_f32(&format!("tensor {i}: reader vs codec decoder"), &got, &want);
    }
}

/// Runs the writer ops against a writer with optional low caps.
fn writer_ops(input: &Input) {
    let limits = input.limits.map(|l| WriterLimits {
        max_tensors: usize::from(l.tensors),
        max_palettes: usize::from(l.palettes),
        max_sections: usize::from(l.sections),
        max_directory_bytes: u64::from(l.directory),
    });
    let mut w = match limits {
        Some(l) => Writer::with_limits(Cursor::new(Vec::new()), l),
        None => Writer::new(Cursor::new(Vec::new())),
    }
    .expect("writer on a Vec");
    let (foreign_p, foreign_b) = foreign_ids(2, 2);
    let mut pals: Vec<(PaletteId, usize, usize)> = Vec::new();
    let mut bases: Vec<(BasisId, usize)> = Vec::new();
    let mut tensors = 0usize;

    let pick_p = |pals: &[(PaletteId, usize, usize)], i: u8, foreign: bool| {
        if foreign || pals.is_empty() {
            (foreign_p, 2, 1)
        } else {
            pals[usize::from(i) % pals.len()]
        }
    };
    for op in input.ops.iter().take(48) {
        let before = (w.tensor_count(), w.palette_count());
        let res = match op {
            WriterOp::Palette {
                k,
                d,
                bits,
                elem,
                values,
                fill,
            } => {
                let (k, d) = (usize::from(*k), *d as usize);
                let n = k.saturating_mul(d);
                let values = if *fill && n as u64 <= MAX_FILL {
                    cycle(values, n, |i| i as f32)
                } else {
                    values.clone()
                };
                let r = w.add_palette(PaletteSpec {
                    k,
                    d,
                    bits: *bits,
                    elem: (*elem).into(),
                    values: &values,
                });
                if let Ok(id) = r {
                    pals.push((id, k, d));
                }
                r.map(drop)
            }
            WriterOp::Basis {
                n_cols,
                elem,
                values,
                fill,
            } => {
                let n = *n_cols as usize;
                let values = if *fill && (n as u64) * 8 <= MAX_FILL {
                    cycle(values, 8 * n, |i| i as f32)
                } else {
                    values.clone()
                };
                let r = w.add_basis(n, (*elem).into(), &values);
                if let Ok(id) = r {
                    bases.push((id, n));
                }
                r.map(drop)
            }
            WriterOp::Fisher { palette, foreign } => {
                let (id, ..) = pick_p(&pals, *palette, *foreign);
                w.add_fisher_z(id)
            }
            WriterOp::FisherTable {
                palette,
                foreign,
                gamma,
                table,
            } => {
                let (id, ..) = pick_p(&pals, *palette, *foreign);
                w.add_fisher_z_table(id, *gamma, table)
            }
            WriterOp::Raw {
                name,
                dtype,
                shape,
                role,
                regime,
                bytes,
                fill,
            } => {
                let dtype = Dtype::ALL[usize::from(*dtype) % Dtype::ALL.len()];
                let need = numel(shape).and_then(|n| n.checked_mul(dtype.size() as u64));
                let bytes = match need {
                    Some(n) if *fill && n <= MAX_FILL => cycle(bytes, n as usize, |i| i as u8),
                    _ => bytes.clone(),
                };
                let r = w.add_raw_tensor(RawTensor {
                    header: TensorHeader {
                        name,
                        dtype,
                        shape,
                        role: Role::ALL[usize::from(*role) % Role::ALL.len()],
                        regime: Regime::ALL[usize::from(*regime) % Regime::ALL.len()],
                    },
                    bytes: &bytes,
                });
                tensors += usize::from(r.is_ok());
                r
            }
            WriterOp::Encoded(e) => {
                let (rows, cols) = matrix(&e.shape).unwrap_or((0, 0));
                let mut codes = Vec::new();
                let mut ids = Vec::new();
                for (p, foreign, c) in e.stages.iter().take(6) {
                    let (id, k, d) = pick_p(&pals, *p, *foreign);
                    let need = rows.checked_mul(cols.div_ceil(d.max(1) as u64));
                    codes.push(match need {
                        Some(n) if e.fill && n <= MAX_FILL => cycle(c, n as usize, |i| i as u8)
                            .into_iter()
                            .map(|x| (usize::from(x) % k.max(1)) as u8)
                            .collect(),
                        _ => c.clone(),
                    });
                    ids.push(id);
                }
                let stages: Vec<Stage> = ids
                    .iter()
                    .zip(&codes)
                    .map(|(&palette, c)| Stage::new(palette, c))
                    .collect();
                let fill_rows = e.fill && rows <= MAX_FILL;
                let scale = e.scale.as_ref().map(|(el, v)| {
                    let v = if fill_rows {
                        cycle(v, rows as usize, |_| 1.0)
                    } else {
                        v.clone()
                    };
                    (ElemType::from(*el), v)
                });
                let slot = e.slot.as_ref().map(|(b, foreign, c, sc)| {
                    let id = if *foreign || bases.is_empty() {
                        foreign_b
                    } else {
                        bases[usize::from(*b) % bases.len()].0
                    };
                    let n = if fill_rows {
                        rows as usize * 8
                    } else {
                        c.len() / 8 * 8
                    };
                    let coef: Vec<[i8; 8]> = cycle(c, n, |i| i as i8)
                        .chunks_exact(8)
                        .map(|x| x.try_into().expect("8"))
                        .collect();
                    (id, coef, *sc)
                });
                let r = w.add_encoded_tensor(
                    EncodedTensor {
                        scale: scale.as_ref().map(|(el, v)| (*el, v.as_slice())),
                        slot_l: slot.as_ref().map(|(id, coef, sc)| SlotL {
                            basis: *id,
                            coef,
                            scale: *sc,
                        }),
                        ..EncodedTensor::new(
                            &e.name,
                            Dtype::ALL[usize::from(e.dtype) % Dtype::ALL.len()],
                            &e.shape,
                            Role::ALL[usize::from(e.role) % Role::ALL.len()],
                            Regime::ALL[usize::from(e.regime) % Regime::ALL.len()],
                            &stages,
                        )
                    }
                    .with_quality(e.quality.map(|q| Quality {
                        rho_median: q[0],
                        rho_p5: q[1],
                        rho_min: q[2],
                        rel_fro: q[3],
                    })),
                );
                tensors += usize::from(r.is_ok());
                r
            }
            WriterOp::Metadata { key, value } => w.set_metadata(key, value),
            WriterOp::Order { names } => w.order_tensors_like(names.iter().map(String::as_str)),
        };
        if crate::tracing() {
            let what = format!("{op:?}");
            eprintln!(
                "writer op {what:.60}: {:?}",
                res.as_ref().map_err(ToString::to_string)
            );
        }
        if let Err(e) = res {
            assert!(!e.to_string().is_empty());
            assert_eq!(
                (w.tensor_count(), w.palette_count()),
                before,
                "a failed call changed the writer: {e}"
            );
        }
    }
    assert_eq!(w.tensor_count(), tensors);
    assert_eq!(w.palette_count(), pals.len());
    let (out, report) = w.finish_into_inner().expect("finish after checked adds");
    let file = HhtldFile::from_vec(out.into_inner())
        .unwrap_or_else(|e| panic!("the writer produced a file the reader rejects: {e}"));
    let h = file.view();
    h.verify().expect("fresh file verifies");
    assert_eq!(
        (h.tensor_count(), h.palette_count(), h.basis_count()),
        (tensors, pals.len(), bases.len())
    );
    assert_eq!(SizeReport::from_layout(h.layout(), h.bytes()), report);
    crate::check::report(&h);
    crate::check::views(&h);
}

fn numel(shape: &[u64]) -> Option<u64> {
    matrix(shape).map(|(r, c)| r * c)
}

/// Runs both parts.
pub fn run(input: &Input) {
    codec(input);
    writer_ops(input);
}
