//! Property tests: random files go through the builder and come back
//! exactly (after element rounding), checked with the independent spec
//! parser of `builder_util.rs` and the format crate's validator; random cap
//! violations give their typed error and never spoil the file.

#[path = "builder_util.rs"]
mod util;

use std::io::Cursor;

use half::{bf16, f16};
use hhtld_format::{Dtype, ElemType, Regime, Role};
use hhtld_writer::builder::{
    EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, TensorHeader, Writer,
};
use hhtld_writer::error::WriteError;
use hhtld_writer::fisher::fisher_z_table;
use hhtld_writer::report::SizeReport;
use proptest::prelude::*;
use util::*;

#[path = "../../examples/support/mod.rs"]
mod support;

/// splitmix64: the whole plan is a function of one proptest-chosen seed,
/// so a failure prints a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        support::splitmix64(&mut self.0)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn value(&mut self) -> f32 {
        match self.next() % 10 {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits(self.next() as u32 & 0x807F_FFFF), // subnormal or zero
            3 => (self.next() % 1000) as f32 * 1e-3,
            _ => ((self.next() % 2_000_001) as f32 - 1_000_000.0) * 1e-4,
        }
    }
    fn elem(&mut self) -> ElemType {
        ElemType::ALL[self.range(0, 2)]
    }
}

fn round(v: f32, e: ElemType) -> f32 {
    match e {
        ElemType::F32 => v,
        ElemType::F16 => f16::from_f32(v).to_f32(),
        ElemType::Bf16 => bf16::from_f32(v).to_f32(),
    }
}

#[derive(Debug, Clone)]
struct PPlan {
    k: usize,
    d: usize,
    bits: u8,
    elem: ElemType,
    values: Vec<f32>,
    fisher: bool,
}

#[derive(Debug, Clone)]
struct EPlan {
    name: String,
    dtype: Dtype,
    shape: Vec<u64>,
    regime: Regime,
    stages: Vec<(usize, Vec<u8>)>,
    scale: Option<(ElemType, Vec<f32>)>,
    /// (basis index, coefficients, slot scale)
    slot: Option<(usize, Vec<[i8; 8]>, f32)>,
    quality: Option<Quality>,
}

#[derive(Debug, Clone)]
struct RPlan {
    name: String,
    dtype: Dtype,
    shape: Vec<u64>,
    regime: Regime,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Plan {
    palettes: Vec<PPlan>,
    bases: Vec<(usize, ElemType, Vec<f32>)>,
    encoded: Vec<EPlan>,
    raw: Vec<RPlan>,
    metadata: Vec<(String, String)>,
}

fn matrix(shape: &[u64]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [c] => (1, *c as usize),
        [r, rest @ ..] => (*r as usize, rest.iter().product::<u64>() as usize),
    }
}

fn random_shape(rng: &mut Rng, min_cols: usize) -> Vec<u64> {
    match rng.range(0, 3) {
        0 if min_cols <= 1 => vec![],
        1 => vec![rng.range(min_cols, 20) as u64],
        2 => vec![rng.range(0, 6) as u64, rng.range(min_cols, 20) as u64],
        _ => {
            let c = rng.range(min_cols.max(1), 12) as u64;
            vec![rng.range(0, 4) as u64, 1, c]
        }
    }
}

fn plan(seed: u64) -> Plan {
    let mut rng = Rng(seed);
    let palettes: Vec<PPlan> = (0..rng.range(0, 4))
        .map(|_| {
            let bits = if rng.chance(50) { 4 } else { 8 };
            let k = if rng.chance(20) {
                1 << bits
            } else {
                rng.range(1, 1 << bits)
            };
            let d = rng.range(1, 6);
            let values = (0..k * d).map(|_| rng.value()).collect();
            PPlan {
                k,
                d,
                bits,
                elem: rng.elem(),
                values,
                fisher: rng.chance(50),
            }
        })
        .collect();
    let mut bases: Vec<(usize, ElemType, Vec<f32>)> = Vec::new();
    let mut encoded = Vec::new();
    for i in 0..rng.range(0, 4) {
        if palettes.is_empty() {
            break;
        }
        let min_d = palettes.iter().map(|p| p.d).min().unwrap();
        let shape = random_shape(&mut rng, min_d);
        let (n_rows, n_cols) = matrix(&shape);
        let fitting: Vec<usize> = (0..palettes.len())
            .filter(|&p| palettes[p].d <= n_cols)
            .collect();
        let stages = (0..rng.range(1, 4))
            .map(|_| {
                let p = fitting[rng.range(0, fitting.len() - 1)];
                let n_sub = n_cols.div_ceil(palettes[p].d);
                let codes = (0..n_rows * n_sub)
                    .map(|_| rng.range(0, palettes[p].k - 1) as u8)
                    .collect();
                (p, codes)
            })
            .collect();
        let scale = rng.chance(50).then(|| {
            let e = rng.elem();
            (e, (0..n_rows).map(|_| rng.value()).collect())
        });
        let slot = rng.chance(40).then(|| {
            let b = match bases.iter().position(|b| b.0 == n_cols) {
                Some(b) if rng.chance(50) => b,
                _ => {
                    let e = rng.elem();
                    bases.push((n_cols, e, (0..8 * n_cols).map(|_| rng.value()).collect()));
                    bases.len() - 1
                }
            };
            let coef = (0..n_rows)
                .map(|_| std::array::from_fn(|_| rng.next() as i8))
                .collect();
            (b, coef, rng.value())
        });
        let quality = rng.chance(50).then(|| Quality {
            rho_median: rng.range(0, 200) as f32 / 100.0 - 1.0,
            rho_p5: rng.range(0, 200) as f32 / 100.0 - 1.0,
            rho_min: -1.0,
            rel_fro: rng.range(0, 500) as f32 / 100.0,
        });
        encoded.push(EPlan {
            name: format!("enc.{i}.ü"),
            dtype: [Dtype::F16, Dtype::Bf16, Dtype::F32, Dtype::F64][rng.range(0, 3)],
            shape,
            regime: if rng.chance(50) {
                Regime::Index
            } else {
                Regime::Argmax
            },
            stages,
            scale,
            slot,
            quality,
        });
    }
    let raw = (0..rng.range(0, 3))
        .map(|i| {
            let dtype = Dtype::ALL[rng.range(0, Dtype::ALL.len() - 1)];
            let shape = random_shape(&mut rng, 0);
            let (r, c) = matrix(&shape);
            let bytes = (0..r * c * dtype.size())
                .map(|_| rng.next() as u8)
                .collect();
            RPlan {
                name: format!("raw{i}"),
                dtype,
                shape,
                regime: Regime::ALL[rng.range(0, 2)],
                bytes,
            }
        })
        .collect();
    let metadata = (0..rng.range(0, 3))
        .map(|i| (format!("key{}", rng.range(0, 5)), "v".repeat(i * 7)))
        .collect();
    Plan {
        palettes,
        bases,
        encoded,
        raw,
        metadata,
    }
}

type Mem = Writer<Cursor<Vec<u8>>>;

/// Issues the plan's calls; objects are interleaved the same way each time.
fn write_plan(w: &mut Mem, p: &Plan) -> Result<Vec<PaletteId>, WriteError> {
    let mut ids = Vec::new();
    for pp in &p.palettes {
        let id = w.add_palette(PaletteSpec {
            k: pp.k,
            d: pp.d,
            bits: pp.bits,
            elem: pp.elem,
            values: &pp.values,
        })?;
        if pp.fisher {
            w.add_fisher_z(id)?;
        }
        ids.push(id);
    }
    let bases = p
        .bases
        .iter()
        .map(|(n, e, v)| w.add_basis(*n, *e, v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut raw = p.raw.iter();
    for e in &p.encoded {
        let stages: Vec<Stage> = e
            .stages
            .iter()
            .map(|(pi, codes)| Stage::new(ids[*pi], codes))
            .collect();
        w.add_encoded_tensor(
            EncodedTensor {
                scale: e.scale.as_ref().map(|(el, v)| (*el, v.as_slice())),
                slot_l: e.slot.as_ref().map(|(b, c, s)| SlotL {
                    basis: bases[*b],
                    coef: c,
                    scale: *s,
                }),
                ..EncodedTensor::new(&e.name, e.dtype, &e.shape, Role::MlpUp, e.regime, &stages)
            }
            .with_quality(e.quality),
        )?;
        if let Some(r) = raw.next() {
            add_raw(w, r)?;
        }
    }
    for r in raw {
        add_raw(w, r)?;
    }
    for (k, v) in &p.metadata {
        w.set_metadata(k, v)?;
    }
    Ok(ids)
}

fn add_raw(w: &mut Mem, r: &RPlan) -> Result<(), WriteError> {
    w.add_raw_tensor(RawTensor {
        header: TensorHeader {
            name: &r.name,
            dtype: r.dtype,
            shape: &r.shape,
            role: Role::Other,
            regime: r.regime,
        },
        bytes: &r.bytes,
    })
}

fn build(p: &Plan) -> (Vec<u8>, SizeReport) {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    write_plan(&mut w, p).unwrap();
    let (c, r) = w.finish_into_inner().unwrap();
    (c.into_inner(), r)
}

/// Row `r` of tensor `e` decoded from the plan's own values (rounded to
/// their element types), by the spec §4 formula.
fn plan_decode_row(p: &Plan, e: &EPlan, r: usize) -> Vec<f32> {
    let (_, n_cols) = matrix(&e.shape);
    (0..n_cols)
        .map(|c| {
            let mut acc = 0.0f32;
            for (pi, codes) in &e.stages {
                let pal = &p.palettes[*pi];
                let n_sub = n_cols.div_ceil(pal.d);
                let code = codes[r * n_sub + c / pal.d] as usize;
                acc += round(pal.values[code * pal.d + c % pal.d], pal.elem);
            }
            if let Some((el, s)) = &e.scale {
                acc *= round(s[r], *el);
            }
            if let Some((b, coef, s)) = &e.slot {
                let (_, el, bv) = &p.bases[*b];
                let mut t = 0.0f32;
                for (i, &q) in coef[r].iter().enumerate() {
                    t += f32::from(q) * round(bv[i * n_cols + c], *el);
                }
                acc += s * t;
            }
            acc
        })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn check_round_trip(p: &Plan) {
    let (f, report) = build(p);
    let parsed = spec_parse(&f);
    if let Err(e) = hhtld_format::parse(&f) {
        panic!("validator rejects a written file: {e}");
    }
    report.check().unwrap();
    assert_eq!(report.file_len, f.len() as u64);
    let layout = hhtld_format::parse(&f).unwrap();
    assert_eq!(
        hhtld_writer::report::SizeReport::from_layout(&layout, &f),
        report
    );
    assert_eq!(report.tensors.len(), p.encoded.len() + p.raw.len());

    assert_eq!(parsed.palettes.len(), p.palettes.len());
    let mut fi = 0;
    for (pp, fp) in p.palettes.iter().zip(&parsed.palettes) {
        assert_eq!(
            (fp.k, fp.d, fp.bits, fp.elem),
            (pp.k, pp.d, pp.bits, pp.elem.to_raw())
        );
        let stored = elems(parsed.bytes_of(&f, fp.section), fp.elem);
        let rounded: Vec<f32> = pp.values.iter().map(|&v| round(v, pp.elem)).collect();
        assert!(same_bits(&stored[..pp.k * pp.d], &rounded));
        assert!(stored[pp.k * pp.d..].iter().all(|v| v.to_bits() == 0));
        if pp.fisher {
            let fr = &parsed.fishers[fi];
            fi += 1;
            let (g, t) = fisher_z_table(&rounded, pp.k, pp.d).unwrap();
            assert_eq!(fr.gamma.to_bits(), g.to_bits());
            let got: Vec<i8> = parsed
                .bytes_of(&f, fr.section)
                .iter()
                .map(|&x| x as i8)
                .collect();
            assert_eq!(got, t);
        }
    }
    assert_eq!(fi, parsed.fishers.len());
    for ((n, el, v), fb) in p.bases.iter().zip(&parsed.bases) {
        assert_eq!((fb.n_cols, fb.elem), (*n, el.to_raw()));
        let rounded: Vec<f32> = v.iter().map(|&x| round(x, *el)).collect();
        assert!(same_bits(
            &elems(parsed.bytes_of(&f, fb.section), fb.elem),
            &rounded
        ));
    }
    for e in &p.encoded {
        let t = parsed.tensor(&e.name);
        assert_eq!(t.shape, e.shape);
        assert_eq!(
            (t.dtype, t.regime, t.encoding),
            (e.dtype.to_raw(), e.regime.to_raw(), 1)
        );
        let codes = read_codes(&f, &parsed, t);
        for (s, (pi, want)) in e.stages.iter().enumerate() {
            assert_eq!(t.stages[s], *pi as u32);
            assert_eq!(&codes[s], want, "codes of {} stage {s}", e.name);
        }
        if let Some((el, v)) = &e.scale {
            assert_eq!(t.scale_elem, el.to_raw());
            let rounded: Vec<f32> = v.iter().map(|&x| round(x, *el)).collect();
            assert!(same_bits(
                &elems(parsed.bytes_of(&f, t.scale), t.scale_elem),
                &rounded
            ));
        } else {
            assert_eq!(t.flags & 1, 0);
        }
        if let Some((b, coef, s)) = &e.slot {
            assert_eq!(t.basis, *b as u32);
            assert_eq!(t.slot_scale.to_bits(), s.to_bits());
            let flat: Vec<u8> = coef.iter().flatten().map(|&x| x as u8).collect();
            assert_eq!(parsed.bytes_of(&f, t.slot_l), flat.as_slice());
        } else {
            assert_eq!(t.flags & 2, 0);
        }
        match &e.quality {
            Some(q) => assert_eq!(t.quality, [q.rho_median, q.rho_p5, q.rho_min, q.rel_fro]),
            None => assert_eq!(t.flags & 4, 0),
        }
        let (n_rows, _) = matrix(&e.shape);
        for r in 0..n_rows {
            let from_file = naive_decode_row(&f, &parsed, t, r);
            let from_plan = plan_decode_row(p, e, r);
            assert!(same_bits(&from_file, &from_plan), "{} row {r}", e.name);
        }
    }
    for r in &p.raw {
        let t = parsed.tensor(&r.name);
        assert_eq!(
            (t.dtype, t.encoding, t.regime),
            (r.dtype.to_raw(), 0, r.regime.to_raw())
        );
        assert_eq!(t.shape, r.shape);
        assert_eq!(parsed.bytes_of(&f, t.data), r.bytes.as_slice());
    }
    let mut meta: Vec<(String, String)> = Vec::new();
    for (k, v) in &p.metadata {
        match meta.iter_mut().find(|(mk, _)| mk == k) {
            Some(e) => e.1 = v.clone(),
            None => meta.push((k.clone(), v.clone())),
        }
    }
    meta.sort();
    assert_eq!(parsed.metadata, meta);

    check_with_reader(p, &f);

    // Determinism.
    assert_eq!(build(p).0, f);
}

fn elem_vec(s: hhtld_format::decode::ElemSlice<'_>) -> Vec<f32> {
    (0..s.len()).map(|i| s.get_f32(i).unwrap()).collect()
}

/// The same plan read back through the reader crate: every palette entry,
/// FisherZ value, basis value, code, scale, SlotL coefficient, raw byte and
/// metadata entry, and `decode_row_into` equal to the spec formula.
fn check_with_reader(p: &Plan, f: &[u8]) {
    let file = hhtld_reader::HhtldFile::from_vec(f.to_vec()).expect("reader opens the file");
    let h = file.view();
    h.verify().expect("section CRCs");
    assert_eq!(h.palette_count(), p.palettes.len());
    for (i, pp) in p.palettes.iter().enumerate() {
        let pv = h.palette(i).unwrap();
        assert_eq!(
            (pv.k(), pv.d(), pv.bits(), pv.elem()),
            (pp.k, pp.d, pp.bits, pp.elem)
        );
        let stored = elem_vec(pv.entries());
        assert_eq!(stored.len(), (1 << pp.bits) * pp.d);
        for (j, v) in stored.iter().enumerate() {
            let want = pp.values.get(j).map_or(0.0, |&x| round(x, pp.elem));
            assert_eq!(v.to_bits(), want.to_bits(), "palette {i} element {j}");
        }
        match h.fisher_for_palette(i) {
            Some(fz) => {
                assert!(pp.fisher);
                let rounded: Vec<f32> = pp.values.iter().map(|&x| round(x, pp.elem)).collect();
                let (g, t) = fisher_z_table(&rounded, pp.k, pp.d).unwrap();
                assert_eq!(fz.gamma().to_bits(), g.to_bits());
                assert_eq!(fz.table(), t.as_slice());
            }
            None => assert!(!pp.fisher),
        }
    }
    assert_eq!(h.basis_count(), p.bases.len());
    for (b, (n, el, v)) in p.bases.iter().enumerate() {
        let bv = h.basis(b).unwrap();
        assert_eq!((bv.n_cols(), bv.elem(), bv.rows()), (*n, *el, 8));
        let want: Vec<f32> = v.iter().map(|&x| round(x, *el)).collect();
        assert!(same_bits(&elem_vec(bv.data()), &want));
    }
    assert_eq!(h.tensor_count(), p.encoded.len() + p.raw.len());
    for e in &p.encoded {
        let tv = h.tensor_by_name(&e.name).unwrap();
        assert_eq!(tv.shape(), e.shape.as_slice());
        assert_eq!(
            (tv.dtype(), tv.regime(), tv.role()),
            (e.dtype, e.regime, Role::MlpUp)
        );
        assert_eq!(tv.encoding(), hhtld_format::Encoding::Palette);
        let (n_rows, n_cols) = matrix(&e.shape);
        assert_eq!((tv.n_rows(), tv.n_cols()), (n_rows, n_cols));
        let q = tv.quality();
        assert_eq!(q.is_some(), e.quality.is_some());
        if let (Some(q), Some(w)) = (q, e.quality) {
            assert_eq!(
                [q.rho_median, q.rho_p5, q.rho_min, q.rel_fro],
                [w.rho_median, w.rho_p5, w.rho_min, w.rel_fro]
            );
        }
        let mut out = vec![f32::NAN; n_cols];
        let mut all = Vec::new();
        for r in 0..n_rows {
            let row = tv.row(r).unwrap();
            for (s, (pi, codes)) in e.stages.iter().enumerate() {
                let n_sub = n_cols.div_ceil(p.palettes[*pi].d);
                for j in 0..n_sub {
                    assert_eq!(row.code(s, j), Some(codes[r * n_sub + j]));
                }
            }
            assert_eq!(
                row.scale().map(f32::to_bits),
                e.scale.as_ref().map(|(el, v)| round(v[r], *el).to_bits())
            );
            assert_eq!(row.slot_l().copied(), e.slot.as_ref().map(|(_, c, _)| c[r]));
            tv.decode_row_into(r, &mut out).unwrap();
            let want = plan_decode_row(p, e, r);
            assert!(
                same_bits(&out, &want),
                "{} row {r}: {out:?} vs {want:?}",
                e.name
            );
            all.extend(want);
        }
        assert!(
            same_bits(&tv.decode().unwrap(), &all),
            "{} whole decode",
            e.name
        );
    }
    for r in &p.raw {
        let tv = h.tensor_by_name(&r.name).unwrap();
        assert_eq!((tv.dtype(), tv.regime()), (r.dtype, r.regime));
        assert_eq!(tv.raw_bytes(), Some(r.bytes.as_slice()));
    }
    let mut meta: Vec<(&str, &str)> = h.metadata().map(Result::unwrap).collect();
    let mut want: Vec<(&str, &str)> = Vec::new();
    for (k, v) in &p.metadata {
        want.retain(|(wk, _)| wk != k);
        want.push((k, v));
    }
    want.sort();
    meta.sort();
    assert_eq!(meta, want);
}

/// One cap violation injected into a valid plan.
#[derive(Debug, Clone, Copy)]
enum Violation {
    CodeAtK,
    CodeCount,
    DTooWide,
    NanPalette,
    OverflowingScale,
    SlotRows,
    DuplicateName,
    RawLen,
    TooManyStages,
    BadBits,
    KTooBig,
}

const VIOLATIONS: [Violation; 11] = [
    Violation::CodeAtK,
    Violation::CodeCount,
    Violation::DTooWide,
    Violation::NanPalette,
    Violation::OverflowingScale,
    Violation::SlotRows,
    Violation::DuplicateName,
    Violation::RawLen,
    Violation::TooManyStages,
    Violation::BadBits,
    Violation::KTooBig,
];

/// One bad call on a writer that already holds a plan; returns its error.
fn violate(w: &mut Mem, p: &Plan, v: Violation, rng: &mut Rng) -> WriteError {
    let own = w
        .add_palette(PaletteSpec {
            k: 3,
            d: 2,
            bits: 4,
            elem: ElemType::F16,
            values: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        })
        .unwrap();
    let rows = rng.range(1, 5);
    let cols = rng.range(2, 9);
    let n_sub = cols.div_ceil(2);
    let mut codes: Vec<u8> = (0..rows * n_sub).map(|_| rng.range(0, 2) as u8).collect();
    let mut shape = vec![rows as u64, cols as u64];
    let mut stages_n = 1;
    let mut slot = None;
    let mut scale = None;
    let basis = w
        .add_basis(cols, ElemType::F32, &vec![0.5; 8 * cols])
        .unwrap();
    let coef = vec![[0i8; 8]; rows + 1];
    let bad_scale = vec![1e5f32; rows];
    match v {
        Violation::CodeAtK => {
            let i = rng.range(0, codes.len() - 1);
            codes[i] = 3;
        }
        Violation::CodeCount => codes.push(0),
        Violation::DTooWide => shape = vec![rows as u64, 1],
        Violation::NanPalette => {
            let mut vals = vec![0.5f32; 4];
            vals[rng.range(0, 3)] = f32::NAN;
            let elem = rng.elem();
            return w
                .add_palette(PaletteSpec {
                    k: 2,
                    d: 2,
                    bits: 8,
                    elem,
                    values: &vals,
                })
                .unwrap_err();
        }
        Violation::OverflowingScale => scale = Some((ElemType::F16, bad_scale.as_slice())),
        Violation::SlotRows => {
            slot = Some(SlotL {
                basis,
                coef: &coef,
                scale: 1.0,
            })
        }
        Violation::DuplicateName => {
            let name = match p.raw.first().map(|r| r.name.as_str()) {
                Some(n) => n,
                None => {
                    add_raw(
                        w,
                        &RPlan {
                            name: "dup".into(),
                            dtype: Dtype::U8,
                            shape: vec![],
                            regime: Regime::Passthrough,
                            bytes: vec![0],
                        },
                    )
                    .unwrap();
                    "dup"
                }
            };
            return w
                .add_raw_tensor(RawTensor::passthrough(name, Dtype::U8, &[], &[0]))
                .unwrap_err();
        }
        Violation::RawLen => {
            let dtype = Dtype::ALL[rng.range(0, Dtype::ALL.len() - 1)];
            let bytes = vec![0u8; rows * cols * dtype.size() + 1];
            return w
                .add_raw_tensor(RawTensor::passthrough("bad", dtype, &shape, &bytes))
                .unwrap_err();
        }
        Violation::TooManyStages => stages_n = 5,
        Violation::BadBits => {
            let bits = [0u8, 1, 2, 3, 5, 6, 7, 9, 255][rng.range(0, 8)];
            return w
                .add_palette(PaletteSpec {
                    k: 1,
                    d: 1,
                    bits,
                    elem: ElemType::F32,
                    values: &[0.0],
                })
                .unwrap_err();
        }
        Violation::KTooBig => {
            let bits = if rng.chance(50) { 4 } else { 8 };
            let k = (1usize << bits) + rng.range(1, 100);
            let vals = vec![0.0f32; k];
            return w
                .add_palette(PaletteSpec {
                    k,
                    d: 1,
                    bits,
                    elem: ElemType::F32,
                    values: &vals,
                })
                .unwrap_err();
        }
    }
    let stages = vec![Stage::new(own, &codes); stages_n];
    w.add_encoded_tensor(EncodedTensor {
        scale,
        slot_l: slot,
        ..EncodedTensor::new(
            "bad",
            Dtype::F32,
            &shape,
            Role::Other,
            Regime::Argmax,
            &stages,
        )
    })
    .unwrap_err()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_files_round_trip(seed in any::<u64>()) {
        check_round_trip(&plan(seed));
    }

    #[test]
    fn random_cap_violations_give_their_error(seed in any::<u64>(), which in 0usize..VIOLATIONS.len()) {
        let p = plan(seed);
        let mut rng = Rng(seed ^ 0xABCD);
        let v = VIOLATIONS[which];
        let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
        write_plan(&mut w, &p).unwrap();
        let e = violate(&mut w, &p, v, &mut rng);
        // The writer stays usable; its file is valid and lacks the bad object.
        let (c, rep) = w.finish_into_inner().unwrap();
        let f = c.into_inner();
        prop_assert!(hhtld_format::parse(&f).is_ok());
        let parsed = spec_parse(&f);
        prop_assert!(parsed.tensors.iter().all(|t| t.name != "bad"));
        prop_assert_eq!(parsed.tensors.len(), p.encoded.len() + p.raw.len()
            + usize::from(matches!(v, Violation::DuplicateName) && p.raw.is_empty()));
        prop_assert!(rep.check().is_ok());
        let ok = match v {
            Violation::CodeAtK => matches!(e, WriteError::CodeOutOfRange { code: 3, k: 3, .. }),
            Violation::CodeCount => matches!(e, WriteError::CodeCount { .. }),
            Violation::DTooWide => matches!(e, WriteError::DoesNotFit { d: 2, n_cols: 1, .. }),
            Violation::NanPalette => matches!(e, WriteError::NonFinite { .. }),
            Violation::OverflowingScale => matches!(e, WriteError::NonFinite { elem: ElemType::F16, .. }),
            Violation::SlotRows => matches!(e, WriteError::Length { .. }),
            Violation::DuplicateName => matches!(e, WriteError::DuplicateName { .. }),
            Violation::RawLen => matches!(e, WriteError::Length { .. }),
            Violation::TooManyStages => matches!(e, WriteError::StageCount { stages: 5, .. }),
            Violation::BadBits => matches!(e, WriteError::CodeBits { .. }),
            Violation::KTooBig => matches!(e, WriteError::PaletteK { .. }),
        };
        prop_assert!(ok, "{:?} gave {}", v, e);
    }
}

/// The generator is not vacuous: over 64 seeds every feature shows up.
#[test]
fn plans_cover_every_feature() {
    let mut seen = [0usize; 10];
    for seed in 0..64 {
        let p = plan(seed);
        seen[0] += p.palettes.iter().filter(|x| x.bits == 4).count();
        seen[1] += p
            .palettes
            .iter()
            .filter(|x| x.bits == 8 && x.k > 16)
            .count();
        seen[2] += p.palettes.iter().filter(|x| x.fisher).count();
        for e in &p.encoded {
            let (rows, cols) = matrix(&e.shape);
            seen[3] += usize::from(e.stages.len() > 1);
            seen[4] += usize::from(e.scale.is_some());
            seen[5] += usize::from(e.slot.is_some());
            seen[6] += usize::from(rows == 0);
            seen[7] += usize::from(e.stages.iter().any(|(pi, _)| {
                p.palettes[*pi].bits == 4 && cols.div_ceil(p.palettes[*pi].d) % 2 == 1
            }));
        }
        seen[8] += p.raw.len();
        seen[9] += p.metadata.len();
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
}
