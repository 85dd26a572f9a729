//! Tests of group encoding on small synthetic data.

use half::{bf16, f16};

use super::kmeans::SplitMix64;
use super::*;

fn rand_matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..rows * cols)
        .map(|_| {
            // Sum of uniforms: roughly Gaussian, like weights.
            let s: f64 = (0..4).map(|_| rng.next_f64() - 0.5).sum();
            s as f32 * 0.1
        })
        .collect()
}

/// Rows built from `distinct` bf16-exact sub-vectors of width `d`.
fn from_atoms(rows: usize, cols: usize, d: usize, distinct: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let atoms: Vec<f32> = (0..distinct * d)
        .map(|_| bf16::from_f32(rng.next_f64() as f32 * 2.0 - 1.0).to_f32())
        .collect();
    let mut out = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        for j in 0..cols.div_ceil(d) {
            let a = rng.below(distinct);
            let take = d.min(cols - j * d);
            out.extend_from_slice(&atoms[a * d..a * d + take]);
        }
    }
    out
}

fn decode_all(g: &EncodedGroup) -> Vec<Vec<f32>> {
    let dec = g.decoder();
    (0..g.tensors.len())
        .map(|t| dec.decode_matrix(t).unwrap())
        .collect()
}

/// Writes `g` through the builder, the one serializer, and returns the file.
fn write_group(g: &EncodedGroup) -> Vec<u8> {
    use crate::builder::{TensorHeader, Writer};
    use hhtld_format::{Dtype, Regime, Role};
    let mut w = Writer::new(std::io::Cursor::new(Vec::new())).unwrap();
    let ids = w.add_group_objects(g, false).unwrap();
    for (i, m) in g.tensors.iter().enumerate() {
        let header = TensorHeader {
            name: &format!("t{i}"),
            dtype: Dtype::F32,
            shape: &[m.n_rows as u64, g.n_cols as u64],
            role: Role::MlpUp,
            regime: Regime::Argmax,
        };
        w.add_group_member(g, &ids, i, header, None).unwrap();
    }
    w.finish_into_inner().unwrap().0.into_inner()
}

/// Decodes tensor `t` from the *bytes the builder writes* for `g`, by a
/// direct transcription of the spec's pseudo-code: independent of the
/// kernel and of the encoder.
fn decode_from_bytes(g: &EncodedGroup, t: usize) -> Vec<f32> {
    let m = &g.tensors[t];
    let n = g.n_cols;
    let file = write_group(g);
    let layout = hhtld_format::parse(&file).unwrap();
    let rec = &layout.tensors[t];
    let entry = &file[rec.data.clone()];
    let stride = g.row_stride();
    assert_eq!(entry.len(), m.n_rows * stride);
    let elem_at = |bytes: &[u8], elem: ElemType, i: usize| -> f32 {
        match elem {
            ElemType::F32 => f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()),
            ElemType::F16 => f16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
            ElemType::Bf16 => bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
        }
    };
    let pals: Vec<&[u8]> = layout
        .palettes
        .iter()
        .map(|p| &file[p.range.clone()])
        .collect();
    for (p, b) in g.palettes.iter().zip(&pals) {
        assert_eq!(b.len(), p.section_len());
    }
    let scales = rec.scale.as_ref().map(|s| &file[s.range.clone()]);
    let slots = rec.slot.as_ref().map(|s| &file[s.range.clone()]);
    let basis = layout.bases.first().map(|b| &file[b.range.clone()]);
    let mut out = vec![0f32; m.n_rows * n];
    for r in 0..m.n_rows {
        for c in 0..n {
            let mut acc = 0.0f32;
            let mut off = r * stride;
            for (p, pb) in g.palettes.iter().zip(&pals) {
                let ns = n.div_ceil(p.d);
                let j = c / p.d;
                let code = if p.bits == 8 {
                    entry[off + j]
                } else {
                    (entry[off + j / 2] >> ((j % 2) * 4)) & 0xF
                };
                acc += elem_at(pb, p.elem, code as usize * p.d + c % p.d);
                off += if p.bits == 8 { ns } else { ns.div_ceil(2) };
            }
            if let Some(s) = &scales {
                acc *= elem_at(s, SCALE_ELEM, r);
            }
            if let (Some(sl), Some(b), Some(sd)) = (&slots, &basis, &m.slot) {
                let mut tt = 0.0f32;
                for i in 0..8 {
                    tt += (sl[r * 8 + i] as i8) as f32 * elem_at(b, g.spec.elem, i * n + c);
                }
                acc += sd.slot_scale * tt;
            }
            out[r * n + c] = acc;
        }
    }
    out
}

#[test]
fn few_distinct_sub_vectors_reconstruct_exactly() {
    for (cols, d) in [(16usize, 4usize), (10, 4), (7, 8 - 1), (9, 2), (5, 1)] {
        let a = from_atoms(40, cols, d, 12, 1);
        let b = from_atoms(25, cols, d, 12, 1);
        let spec = CodecSpec::vq(d, 1);
        let g = encode_group(
            &[
                Matrix::new(&a, 40, cols).unwrap(),
                Matrix::new(&b, 25, cols).unwrap(),
            ],
            &spec,
        )
        .unwrap();
        let dec = decode_all(&g);
        assert_eq!(dec[0], a, "cols {cols} d {d}");
        assert_eq!(dec[1], b, "cols {cols} d {d}");
        assert_eq!(decode_from_bytes(&g, 0), a);
    }
}

#[test]
fn row_palette_is_exact_for_few_distinct_rows_and_shrinks_k() {
    let cols = 12;
    let a = from_atoms(30, cols, cols, 5, 2);
    let g = encode_group(
        &[Matrix::new(&a, 30, cols).unwrap()],
        &CodecSpec::row_palette(),
    )
    .unwrap();
    assert_eq!(g.palettes[0].d, cols);
    assert_eq!(g.palettes[0].k, 5);
    assert_eq!(g.tensors[0].codes[0].len(), 30);
    assert_eq!(g.row_stride(), 1);
    assert_eq!(decode_all(&g)[0], a);
}

#[test]
fn encoding_is_deterministic_and_independent_of_thread_count() {
    // 40 000 sub-vectors: several fixed-size chunks in every parallel
    // reduction, and a sample smaller than the data.
    let (rows, cols) = (2000, 40);
    let a = rand_matrix(rows, cols, 3);
    let spec = CodecSpec {
        later: Some(StageShape {
            d: 8,
            bits: 4,
            k: 16,
        }),
        kmeans: KmeansParams {
            sample: 30_000,
            iters: 8,
            joint: 1,
            ..KmeansParams::default()
        },
        ..CodecSpec::vq(2, 2).with_row_scale(true).with_slot_l(true)
    };
    let m = Matrix::new(&a, rows, cols).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| encode_group(&[m], &spec).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(3));
    assert_eq!(one, encode_group(&[m], &spec).unwrap());
    let other_seed = CodecSpec {
        kmeans: KmeansParams {
            seed: 99,
            ..spec.kmeans
        },
        ..spec
    };
    assert_ne!(
        one.palettes,
        encode_group(&[m], &other_seed).unwrap().palettes
    );
}

#[test]
fn kernel_decode_matches_the_bytes_for_every_option() {
    let a = rand_matrix(50, 21, 4);
    let b = rand_matrix(20, 21, 5);
    let specs = [
        CodecSpec::vq(4, 2),
        CodecSpec::vq(4, 3).with_row_scale(true),
        CodecSpec::scalar4(2),
        CodecSpec {
            d: 3,
            bits: 4,
            k: 11,
            elem: ElemType::F16,
            ..CodecSpec::vq(3, 2)
        },
        CodecSpec {
            elem: ElemType::F32,
            ..CodecSpec::row_palette()
                .with_slot_l(true)
                .with_row_scale(true)
        },
        CodecSpec::vq(8, 1).with_slot_l(true),
        // The compact profile's codec (row scales, joint refinement) with a
        // narrower first stage, three stages and a width-5 later shape.
        CodecSpec {
            d: 2,
            stages: 3,
            later: Some(StageShape {
                d: 5,
                bits: 4,
                k: 16,
            }),
            ..CodecSpec::compact()
        },
        CodecSpec {
            later: Some(StageShape {
                d: 0,
                bits: 8,
                k: 7,
            }),
            ..CodecSpec::vq(4, 2)
        },
    ];
    for spec in specs {
        let g = encode_group(
            &[
                Matrix::new(&a, 50, 21).unwrap(),
                Matrix::new(&b, 20, 21).unwrap(),
            ],
            &spec,
        )
        .unwrap();
        let dec = decode_all(&g);
        for (t, dt) in dec.iter().enumerate() {
            assert_eq!(*dt, decode_from_bytes(&g, t), "{spec:?}");
            let mut row = vec![0f32; 21];
            reconstruct(&g, t, 3, &mut row).unwrap();
            assert_eq!(row, dt[3 * 21..4 * 21]);
        }
        for (s, p) in g.palettes.iter().enumerate() {
            let shape = spec.stage_shape(s);
            assert_eq!(
                (p.d, p.bits),
                (if shape.d == 0 { 21 } else { shape.d }, shape.bits)
            );
            assert!(p.k <= shape.k && p.values.len() == p.k * p.d);
            assert!(p
                .values
                .iter()
                .all(|&v| hhtld_format::encode::round_to_elem(v, spec.elem) == v));
        }
    }
}

#[test]
fn residual_stages_reduce_the_error() {
    let a = rand_matrix(200, 32, 6);
    let m = Matrix::new(&a, 200, 32).unwrap();
    let mut last = f32::INFINITY;
    for stages in 1..=3 {
        let g = encode_group(&[m], &CodecSpec::vq(4, stages)).unwrap();
        let q = row_quality(&m, &decode_all(&g)[0]).unwrap();
        assert!(q.rel_fro < last, "stages {stages}: {} !< {last}", q.rel_fro);
        last = q.rel_fro;
    }
    assert!(last < 0.2, "{last}");
}

#[test]
fn joint_refinement_does_not_lose_to_greedy_stages() {
    let a = rand_matrix(300, 24, 14);
    let m = Matrix::new(&a, 300, 24).unwrap();
    let greedy = CodecSpec {
        k: 32,
        elem: ElemType::F32,
        ..CodecSpec::vq(4, 2)
    };
    let joint = CodecSpec {
        kmeans: KmeansParams {
            joint: 3,
            ..greedy.kmeans
        },
        ..greedy
    };
    let qg = row_quality(&m, &decode_all(&encode_group(&[m], &greedy).unwrap())[0]).unwrap();
    let qj = row_quality(&m, &decode_all(&encode_group(&[m], &joint).unwrap())[0]).unwrap();
    assert!(qj.rel_fro < qg.rel_fro, "{} !< {}", qj.rel_fro, qg.rel_fro);
}

#[test]
fn row_scales_handle_magnitudes_and_zero_rows() {
    // Rows are one pattern times very different magnitudes, plus a zero row.
    let pattern: Vec<f32> = (0..8)
        .map(|i| [1.0, -2.0, 0.5, 3.0][i % 4] * (1 + i) as f32)
        .collect();
    let mags = [1e-3f32, 1.0, 50.0, 0.0, 7.0];
    let a: Vec<f32> = mags
        .iter()
        .flat_map(|&s| pattern.iter().map(move |&v| v * s))
        .collect();
    let m = Matrix::new(&a, mags.len(), 8).unwrap();
    let g = encode_group(&[m], &CodecSpec::vq(4, 1).with_row_scale(true)).unwrap();
    let dec = &decode_all(&g)[0];
    assert!(dec[3 * 8..4 * 8].iter().all(|&v| v == 0.0));
    let q = row_quality(&m, dec).unwrap();
    assert!(q.rho_min > 0.999, "{:?}", q.rhos);
    let s = g.tensors[0].scales.as_ref().unwrap();
    assert!(s.iter().all(|&v| f16::from_f32(v).to_f32() == v));
    assert_eq!(s[3], 0.0);
}

#[test]
fn slot_l_captures_a_low_rank_residual() {
    // A row palette cannot hold 200 random rows; when they are a rank-4
    // signal, SlotL recovers most of what the palette misses.
    let (rows, cols) = (200, 32);
    let mut rng = SplitMix64::new(8);
    let dirs: Vec<f32> = (0..4 * cols).map(|_| rng.next_f64() as f32 - 0.5).collect();
    let a: Vec<f32> = (0..rows)
        .flat_map(|_| {
            let w: Vec<f32> = (0..4).map(|_| rng.next_f64() as f32 - 0.5).collect();
            (0..cols)
                .map(|c| (0..4).map(|i| w[i] * dirs[i * cols + c]).sum::<f32>())
                .collect::<Vec<_>>()
        })
        .collect();
    let m = Matrix::new(&a, rows, cols).unwrap();
    let spec = CodecSpec {
        k: 8,
        ..CodecSpec::row_palette()
    };
    let plain = encode_group(&[m], &spec).unwrap();
    let slot = encode_group(&[m], &spec.with_slot_l(true)).unwrap();
    let qp = row_quality(&m, &decode_all(&plain)[0]).unwrap();
    let qs = row_quality(&m, &decode_all(&slot)[0]).unwrap();
    assert!(
        qs.rel_fro < 0.05 && qp.rel_fro > 0.2,
        "{} {}",
        qs.rel_fro,
        qp.rel_fro
    );
    let sd = slot.tensors[0].slot.as_ref().unwrap();
    assert!(sd.coef.iter().flatten().any(|&c| c.unsigned_abs() == 127));
    assert!(sd.coef.iter().flatten().all(|&c| c != -128));
    assert_eq!(slot.basis.as_ref().unwrap().len(), 8 * cols);
    let size = slot.stored_size(0).unwrap();
    assert_eq!(size.slot, rows * 8);
    assert_eq!(size.basis, (8 * cols * 2) as f64);
}

#[test]
fn one_row_one_column_and_empty_tensors() {
    let one_col: Vec<f32> = (0..20).map(|i| (i % 5) as f32).collect();
    let g = encode_group(
        &[Matrix::new(&one_col, 20, 1).unwrap()],
        &CodecSpec::row_palette(),
    )
    .unwrap();
    assert_eq!(decode_all(&g)[0], one_col);
    let one_row = rand_matrix(1, 10, 9);
    let g = encode_group(
        &[Matrix::new(&one_row, 1, 10).unwrap()],
        &CodecSpec::vq(4, 2),
    )
    .unwrap();
    // One row of three sub-vectors: each is its own entry, so exact up to bf16.
    let dec = &decode_all(&g)[0];
    for (x, y) in one_row.iter().zip(dec) {
        assert!((x - y).abs() <= x.abs() * 2e-3 + 1e-6, "{x} {y}");
    }
    let none: [f32; 0] = [];
    let g = encode_group(
        &[
            Matrix::new(&none, 0, 6).unwrap(),
            Matrix::new(&one_row[..6], 1, 6).unwrap(),
        ],
        &CodecSpec::vq(3, 2).with_row_scale(true).with_slot_l(true),
    )
    .unwrap();
    assert_eq!(g.tensors[0].n_rows, 0);
    let file = write_group(&g);
    assert!(hhtld_format::parse(&file).unwrap().tensors[0]
        .data
        .is_empty());
    assert!(decode_all(&g)[0].is_empty());
    let only_empty =
        encode_group(&[Matrix::new(&none, 0, 6).unwrap()], &CodecSpec::vq(3, 2)).unwrap();
    assert!(only_empty
        .palettes
        .iter()
        .all(|p| p.k == 1 && p.values == vec![0.0; 3]));
    assert_eq!(
        encode_group(&[], &CodecSpec::vq(4, 1)),
        Err(CodecError::EmptyGroup)
    );
}

#[test]
fn bad_specs_and_inputs_are_typed_errors() {
    let a = rand_matrix(4, 8, 10);
    let m = Matrix::new(&a, 4, 8).unwrap();
    let enc = |spec: CodecSpec| encode_group(&[m], &spec);
    assert!(matches!(
        enc(CodecSpec {
            k: 17,
            ..CodecSpec::scalar4(1)
        }),
        Err(CodecError::K { k: 17, .. })
    ));
    assert!(matches!(
        enc(CodecSpec {
            k: 257,
            ..CodecSpec::vq(4, 1)
        }),
        Err(CodecError::K { .. })
    ));
    assert!(matches!(
        enc(CodecSpec {
            k: 0,
            ..CodecSpec::vq(4, 1)
        }),
        Err(CodecError::K { .. })
    ));
    assert!(matches!(
        enc(CodecSpec {
            bits: 6,
            ..CodecSpec::vq(4, 1)
        }),
        Err(CodecError::Bits { bits: 6 })
    ));
    assert!(matches!(
        enc(CodecSpec::vq(9, 1)),
        Err(CodecError::Width {
            d: 9,
            n_cols: 8,
            ..
        })
    ));
    assert!(matches!(
        enc(CodecSpec::vq(4, 0)),
        Err(CodecError::Stages { stages: 0, .. })
    ));
    assert!(matches!(
        enc(CodecSpec::vq(4, 5)),
        Err(CodecError::Stages { stages: 5, .. })
    ));
    let b = rand_matrix(2, 6, 11);
    assert!(matches!(
        encode_group(
            &[
                m,
                Matrix {
                    data: &b,
                    n_rows: 2,
                    n_cols: 6
                }
            ],
            &CodecSpec::vq(2, 1)
        ),
        Err(CodecError::GroupWidth {
            tensor: 1,
            expected: 8,
            got: 6
        })
    ));
    assert!(matches!(
        encode_group(
            &[Matrix {
                data: &a,
                n_rows: 3,
                n_cols: 8
            }],
            &CodecSpec::vq(2, 1)
        ),
        Err(CodecError::DataLen { tensor: 0, .. })
    ));
    assert!(Matrix::new(&a, usize::MAX, 2).is_err());
    let mut bad = a.clone();
    bad[2 * 8 + 5] = f32::NAN;
    assert!(matches!(
        encode_group(&[m, Matrix::new(&bad, 4, 8).unwrap()], &CodecSpec::vq(2, 1)),
        Err(CodecError::NonFinite {
            tensor: 1,
            row: 2,
            col: 5,
            ..
        })
    ));
    let huge: Vec<f32> = a.iter().map(|v| v * 1e7).collect();
    assert!(matches!(
        encode_group(
            &[Matrix::new(&huge, 4, 8).unwrap()],
            &CodecSpec {
                elem: ElemType::F16,
                ..CodecSpec::vq(2, 1)
            }
        ),
        Err(CodecError::ElemOverflow { stage: 0, .. })
    ));
    let zero_w: [f32; 0] = [];
    assert!(matches!(
        encode_group(&[Matrix::new(&zero_w, 3, 0).unwrap()], &CodecSpec::vq(1, 1)),
        Err(CodecError::ZeroWidth { tensor: 0 })
    ));
    let g = enc(CodecSpec::vq(4, 1)).unwrap();
    assert!(matches!(
        reconstruct(&g, 1, 0, &mut [0.0; 8]),
        Err(CodecError::TensorIndex { .. })
    ));
    assert!(matches!(
        reconstruct(&g, 0, 4, &mut [0.0; 8]),
        Err(CodecError::RowIndex { .. })
    ));
    assert!(matches!(
        reconstruct(&g, 0, 0, &mut [0.0; 7]),
        Err(CodecError::BufferLen { .. })
    ));
}

#[test]
fn sizes_count_every_section() {
    let a = rand_matrix(64, 384 / 8, 12);
    let b = rand_matrix(32, 384 / 8, 13);
    let spec = CodecSpec::vq(4, 2).with_row_scale(true);
    let g = encode_group(
        &[
            Matrix::new(&a, 64, 48).unwrap(),
            Matrix::new(&b, 32, 48).unwrap(),
        ],
        &spec,
    )
    .unwrap();
    let s = g.stored_size(1).unwrap();
    assert_eq!(g.row_stride(), 2 * 12);
    assert_eq!(s.codes, 32 * 24);
    assert_eq!(s.scales, 32 * 2);
    assert_eq!(s.palettes, (2 * 256 * 4 * 2) as f64 / 2.0);
    assert_eq!(s.bf16, 2 * 32 * 48);
    assert!((s.ratio() - s.bf16 as f64 / s.total()).abs() < 1e-12);
    let file = write_group(&g);
    assert_eq!(
        hhtld_format::parse(&file).unwrap().tensors[1].data.len(),
        s.codes
    );
}

/// `spec` with a small k-means sample so the many encodes below stay fast.
fn quick(spec: CodecSpec) -> CodecSpec {
    CodecSpec {
        kmeans: KmeansParams {
            sample: 512,
            iters: 6,
            ..spec.kmeans
        },
        ..spec
    }
}

#[test]
fn power_of_two_scaling_changes_no_code() {
    // Every profile's codecs (and the row palette with SlotL): a tensor
    // times 2^k, for every k in -100..=100, gets the same codes, row scales
    // and SlotL coefficients, and palettes, basis and slot scale scaled by
    // exactly 2^k.
    let (rows, cols) = (40, 48);
    let base = rand_matrix(rows, cols, 21);
    let specs = [
        quick(CodecSpec::fidelity()),
        quick(CodecSpec::compact()),
        quick(CodecSpec::vq(1, 1).with_row_scale(true)),
        quick(CodecSpec::vq(4, 2)),
        quick(CodecSpec {
            k: 16,
            ..CodecSpec::row_palette().with_slot_l(true)
        }),
    ];
    for spec in specs {
        let m = Matrix::new(&base, rows, cols).unwrap();
        let g0 = encode_group(&[m], &spec).unwrap();
        for k in -100i32..=100 {
            let f = 2f32.powi(k);
            let data: Vec<f32> = base.iter().map(|&v| v * f).collect();
            let g = encode_group(&[Matrix::new(&data, rows, cols).unwrap()], &spec).unwrap();
            let what = format!("{spec:?} times 2^{k}");
            assert_eq!(g.tensors[0].codes, g0.tensors[0].codes, "{what}");
            assert_eq!(g.tensors[0].scales, g0.tensors[0].scales, "{what}");
            for (p, p0) in g.palettes.iter().zip(&g0.palettes) {
                let want: Vec<f32> = p0.values.iter().map(|&v| v * f).collect();
                assert_eq!(p.values, want, "{what}");
            }
            assert_eq!(g.basis, g0.basis, "{what}");
            if let (Some(s), Some(s0)) = (&g.tensors[0].slot, &g0.tensors[0].slot) {
                assert_eq!(s.coef, s0.coef, "{what}");
                assert_eq!(s.slot_scale, s0.slot_scale * f, "{what}");
            }
        }
    }
}

#[test]
fn extreme_magnitudes_encode_as_well_as_unit_scale() {
    // Weights near 1e30 used to overflow a squared distance and fall to
    // rho 0.06; near 1e-30 they underflowed. Not powers of two, so the
    // values round differently, but the quality must match unit scale.
    let (rows, cols) = (64, 96);
    let base = rand_matrix(rows, cols, 5);
    for spec in [CodecSpec::fidelity(), CodecSpec::compact()] {
        let spec = quick(spec);
        let m0 = Matrix::new(&base, rows, cols).unwrap();
        let q0 = row_quality(&m0, &decode_all(&encode_group(&[m0], &spec).unwrap())[0]).unwrap();
        for scale in [1e30f32, 3.3e30, 1e-30, 7e-31] {
            let data: Vec<f32> = base.iter().map(|&v| v * scale).collect();
            let m = Matrix::new(&data, rows, cols).unwrap();
            let g = encode_group(&[m], &spec).unwrap();
            let dec = &decode_all(&g)[0];
            assert!(dec.iter().all(|v| v.is_finite()));
            let q = row_quality(&m, dec).unwrap();
            assert!(
                // p5 within 0.01: values scaled by a non-power of two round
                // differently, which can move a k-means fit (and which
                // largest-norm points its sample keeps) to a nearby optimum.
                (q.rho_median - q0.rho_median).abs() < 2e-3 && q.rho_p5 > q0.rho_p5 - 1e-2,
                "scale {scale:e}: {} / {} against {} / {} at unit scale",
                q.rho_median,
                q.rho_p5,
                q0.rho_median,
                q0.rho_p5
            );
        }
    }
}

#[test]
fn chunks_encode_and_measure_like_the_whole_tensor() {
    // The pipeline encodes a tensor a run of rows at a time: the codes,
    // scales and quality must be those of encoding it in one piece.
    let (rows, cols) = (90, 96);
    let data = rand_matrix(rows, cols, 8);
    let m = Matrix::new(&data, rows, cols).unwrap();
    for spec in [quick(CodecSpec::fidelity()), quick(CodecSpec::compact())] {
        let fit = fit_group(&[m], &spec).unwrap();
        let whole = fit.encode(&m).unwrap();
        let q_whole = row_quality_by(&m, |r, o| fit.decode_row(&whole, r, o)).unwrap();
        let mut codes = vec![Vec::new(); whole.codes.len()];
        let mut scales = Vec::new();
        let mut acc = QualityAcc::default();
        for r0 in (0..rows).step_by(17) {
            let r1 = (r0 + 17).min(rows);
            let part = Matrix::new(&data[r0 * cols..r1 * cols], r1 - r0, cols).unwrap();
            let e = fit.encode(&part).unwrap();
            acc.push(&part, |r, o| fit.decode_row(&e, r, o)).unwrap();
            for (all, c) in codes.iter_mut().zip(&e.codes) {
                all.extend_from_slice(c);
            }
            scales.extend_from_slice(e.scales.as_ref().unwrap());
        }
        assert_eq!(codes, whole.codes);
        assert_eq!(Some(scales), whole.scales);
        assert_eq!(acc.finish(), q_whole);
    }
}

#[test]
fn a_large_group_fits_a_bounded_row_sample() {
    // 300 rows of 64 with room for 1024 rows: all rows. With a budget of
    // 64 values per fit, the sample is 1024 rows of a 5000-row group,
    // increasing and deterministic, and encoding still covers every row.
    let p = KmeansParams::default();
    let fid = CodecSpec::fidelity();
    assert_eq!(sample_rows(300, 64, &fid), None);
    let small = KmeansParams {
        fit_values: 64,
        sample: 16,
        ..p
    };
    let spec = CodecSpec {
        kmeans: small,
        ..quick(fid)
    };
    let pick = sample_rows(5000, 64, &spec).unwrap();
    assert_eq!(pick.len(), 1024);
    assert!(pick.windows(2).all(|w| w[0] < w[1]) && pick[1023] < 5000);
    assert_eq!(Some(pick), sample_rows(5000, 64, &spec));
    // A row palette trains on enough whole rows for its k-means sample.
    let rows = CodecSpec::row_palette();
    assert_eq!(sample_rows(30522, 384, &rows), None);
    let pick = sample_rows(200_000, 4096, &rows).unwrap();
    assert_eq!(pick.len(), 16 * p.fit_values / 4096);
    let data = rand_matrix(5000, 8, 3);
    let spec = CodecSpec {
        kmeans: KmeansParams {
            sample: 512,
            ..small
        },
        ..spec
    };
    let m = Matrix::new(&data, 5000, 8).unwrap();
    let g = encode_group(&[m], &spec).unwrap();
    assert_eq!(g.tensors[0].codes[0].len(), 5000 * 2);
    let q = row_quality(&m, &decode_all(&g)[0]).unwrap();
    assert!(q.rho_median > 0.99, "{q:?}");
}

mod calibrated;
