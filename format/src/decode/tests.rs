use super::*;

/// One stage of a row: `codes` of a palette of entry width `d`.
fn stage<'a>(palette: ElemSlice<'a>, d: usize, bits: u8, codes: &'a [u8]) -> StageRow<'a> {
    StageRow {
        palette,
        d,
        bits,
        codes,
    }
}

/// Straight transcription of the spec's pseudo-code, for comparison.
fn reference(
    stages: &[StageRow<'_>],
    scale: Option<f32>,
    slot: Option<&SlotRow<'_>>,
    n: usize,
) -> Vec<f32> {
    (0..n)
        .map(|c| {
            let mut acc = 0.0f32;
            for st in stages {
                let code = unpack_code(st.codes, st.bits, c / st.d).unwrap() as usize;
                acc += st.palette.get_f32(code * st.d + c % st.d).unwrap();
            }
            if let Some(s) = scale {
                acc *= s;
            }
            if let Some(sl) = slot {
                let mut t = 0.0f32;
                for i in 0..8 {
                    t += sl.coef[i] as f32 * sl.basis.get_f32(i * n + c).unwrap();
                }
                acc += sl.slot_scale * t;
            }
            acc
        })
        .collect()
}

fn pattern(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0
        })
        .collect()
}

#[test]
fn every_width_and_packing_matches_the_spec_transcription() {
    for &bits in &[4u8, 8] {
        for d in [1usize, 2, 3, 4, 5, 8, 16, 17] {
            for n in [d, d + 1, 2 * d + 1, 3 * d, 4 * d + 3] {
                let entries = 1usize << bits;
                let p0 = pattern(entries * d, 1);
                let p1: Vec<bf16> = pattern(entries * d, 7)
                    .iter()
                    .map(|&v| bf16::from_f32(v))
                    .collect();
                let cb = code_bytes(n, d, bits).unwrap();
                let c0: Vec<u8> = (0..cb).map(|i| (i * 37 + 11) as u8).collect();
                let c1: Vec<u8> = (0..cb).map(|i| (i * 91 + 5) as u8).collect();
                let stages = [
                    stage(ElemSlice::F32(&p0), d, bits, &c0),
                    stage(ElemSlice::Bf16(&p1), d, bits, &c1),
                ];
                let basis: Vec<f16> = pattern(8 * n, 3)
                    .iter()
                    .map(|&v| f16::from_f32(v))
                    .collect();
                let coef = [3i8, -7, 127, -128, 0, 1, -1, 64];
                let slot = SlotRow {
                    coef: &coef,
                    basis: ElemSlice::F16(&basis),
                    slot_scale: 0.01,
                };
                let mut out = vec![f32::NAN; n];
                decode_row(&stages, Some(0.75), Some(&slot), &mut out).unwrap();
                let want = reference(&stages, Some(0.75), Some(&slot), n);
                assert_eq!(out, want, "bits {bits} d {d} n {n}");
            }
        }
    }
}

#[test]
fn mismatched_lengths_are_errors_not_panics() {
    let pal = vec![0f32; 256 * 4];
    let codes = [0u8; 2];
    let mut out = [0f32; 8];
    let ok = stage(ElemSlice::F32(&pal), 4, 8, &codes);
    assert!(decode_row(&[ok], None, None, &mut out).is_ok());
    let short = StageRow {
        palette: ElemSlice::F32(&pal[..1000]),
        ..ok
    };
    assert!(matches!(
        decode_row(&[short], None, None, &mut out),
        Err(KernelError::PaletteLen { .. })
    ));
    let few = StageRow {
        codes: &codes[..1],
        ..ok
    };
    assert!(matches!(
        decode_row(&[few], None, None, &mut out),
        Err(KernelError::CodesLen { .. })
    ));
    let wide = StageRow { d: 9, ..ok };
    assert!(matches!(
        decode_row(&[wide], None, None, &mut out),
        Err(KernelError::Width { .. })
    ));
    let b = StageRow { bits: 5, ..ok };
    assert!(matches!(
        decode_row(&[b], None, None, &mut out),
        Err(KernelError::Bits { .. })
    ));
    let basis = [0f32; 7];
    let slot = SlotRow {
        coef: &[0; 8],
        basis: ElemSlice::F32(&basis),
        slot_scale: 1.0,
    };
    assert!(matches!(
        decode_row(&[ok], None, Some(&slot), &mut out),
        Err(KernelError::BasisLen { .. })
    ));
}

/// Palette values with signed zeros, which only an exact kernel keeps
/// as the spec's `0.0 + ...` sums say.
fn with_zeros(len: usize, seed: u32) -> Vec<f32> {
    let mut v = pattern(len, seed);
    for (i, x) in v.iter_mut().enumerate() {
        match i % 7 {
            0 => *x = -0.0,
            3 => *x = 0.0,
            _ => {}
        }
    }
    v
}

fn typed(v: &[f32], elem: crate::ElemType) -> (Vec<f32>, Vec<f16>, Vec<bf16>) {
    match elem {
        crate::ElemType::F32 => (v.to_vec(), vec![], vec![]),
        crate::ElemType::F16 => (
            vec![],
            v.iter().map(|&x| f16::from_f32(x)).collect(),
            vec![],
        ),
        crate::ElemType::Bf16 => (
            vec![],
            vec![],
            v.iter().map(|&x| bf16::from_f32(x)).collect(),
        ),
    }
}

fn slice_of<'a>(t: &'a (Vec<f32>, Vec<f16>, Vec<bf16>), elem: crate::ElemType) -> ElemSlice<'a> {
    match elem {
        crate::ElemType::F32 => ElemSlice::F32(&t.0),
        crate::ElemType::F16 => ElemSlice::F16(&t.1),
        crate::ElemType::Bf16 => ElemSlice::Bf16(&t.2),
    }
}

#[test]
fn one_pass_shapes_match_the_spec_transcription_bit_for_bit() {
    use crate::ElemType;
    // One or two 8-bit stages of one width and element type take the
    // one-pass path (widths 1, 2, 4, 8, 16); the others the staged one.
    for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
        for n_stages in [1usize, 2] {
            for d in [1usize, 2, 3, 4, 8, 16, 17] {
                for n in [d, d + 1, 3 * d, 4 * d + 3] {
                    let pals: Vec<_> = (0..n_stages)
                        .map(|s| typed(&with_zeros(256 * d, s as u32 + 1), elem))
                        .collect();
                    let cb = code_bytes(n, d, 8).unwrap();
                    let codes: Vec<Vec<u8>> = (0..n_stages)
                        .map(|s| (0..cb).map(|i| (i * (37 + 54 * s) + 11) as u8).collect())
                        .collect();
                    let stages: Vec<StageRow<'_>> = pals
                        .iter()
                        .zip(&codes)
                        .map(|(p, c)| stage(slice_of(p, elem), d, 8, c))
                        .collect();
                    let basis: Vec<f32> = pattern(8 * n, 5);
                    let coef = [1i8, -2, 3, -4, 5, -6, 7, -8];
                    let slot = SlotRow {
                        coef: &coef,
                        basis: ElemSlice::F32(&basis),
                        slot_scale: 0.5,
                    };
                    for scale in [None, Some(0.75f32), Some(-1.5)] {
                        for sl in [None, Some(&slot)] {
                            let mut out = vec![f32::NAN; n];
                            decode_row(&stages, scale, sl, &mut out).unwrap();
                            let want = reference(&stages, scale, sl, n);
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&out),
                                bits(&want),
                                "{elem:?} stages {n_stages} d {d} n {n} scale {scale:?} slot {}",
                                sl.is_some()
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn prepared_rows_match_decode_row_bit_for_bit() {
    use crate::ElemType;
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut checked = 0;
    for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
        for shapes in [
            &[(1usize, 8u8)][..],
            &[(2, 8)],
            &[(4, 8), (4, 8)],
            &[(8, 8), (8, 8)],
            &[(16, 8)],
            &[(4, 8), (48, 4)],
            &[(1, 4)],
            &[(3, 8), (3, 8)],
            &[(4, 8), (4, 4), (2, 8)],
            &[(20, 8)],
            // Mixed widths, as the fidelity and compact profiles write them.
            &[(2, 8), (4, 8)],
            &[(2, 8), (8, 8)],
            &[(3, 8), (8, 8)],
            &[(4, 8), (8, 8)],
            &[(1, 8), (4, 8)],
            &[(2, 8), (16, 8)],
            &[(3, 8)],
            &[(8, 8), (4, 8)],
        ] {
            for n in [16usize, 20, 48, 49, 52, 67, 100] {
                if shapes.iter().any(|&(d, _)| d > n) {
                    continue;
                }
                let pals: Vec<_> = shapes
                    .iter()
                    .enumerate()
                    .map(|(s, &(d, b))| typed(&with_zeros((1 << b) * d, s as u32 + 1), elem))
                    .collect();
                let mut specs = Vec::new();
                let mut offset = 0;
                for (p, &(d, b)) in pals.iter().zip(shapes) {
                    specs.push(StageSpec {
                        palette: slice_of(p, elem),
                        d,
                        bits: b,
                        code_offset: offset,
                    });
                    offset += code_bytes(n, d, b).unwrap();
                }
                let prepared = Prepared::new(&specs, n).unwrap();
                // Every 8-bit shape of one or two stages the profiles write
                // takes a one-pass loop; the others the staged one.
                let eight = shapes.iter().all(|&(d, b)| b == 8 && d <= 16);
                let listed = matches!(
                    shapes,
                    [(1 | 2 | 3 | 4 | 8 | 16, 8)]
                        | [(4, 8), (4, 8)]
                        | [(8, 8), (8, 8)]
                        | [(3, 8), (3, 8)]
                        | [(2, 8), (4 | 8 | 16, 8)]
                        | [(3 | 4, 8), (8, 8)]
                        | [(1, 8), (4, 8)]
                );
                assert_eq!(prepared.is_one_pass(), eight && listed, "{shapes:?}");
                let basis: Vec<f32> = pattern(8 * n, 5);
                let slot = SlotRow {
                    coef: &[1, -2, 3, -4, 5, -6, 7, -8],
                    basis: ElemSlice::F32(&basis),
                    slot_scale: 0.5,
                };
                for seed in 0..3usize {
                    let row: Vec<u8> = (0..offset)
                        .map(|i| (i * (37 + 54 * seed) + 11 + seed) as u8)
                        .collect();
                    let stages: Vec<StageRow<'_>> = specs
                        .iter()
                        .map(|s| StageRow {
                            palette: s.palette,
                            d: s.d,
                            bits: s.bits,
                            codes: &row[s.code_offset
                                ..s.code_offset + code_bytes(n, s.d, s.bits).unwrap()],
                        })
                        .collect();
                    for scale in [None, Some(0.75f32), Some(-1.5)] {
                        for sl in [None, Some(&slot)] {
                            let mut want = vec![f32::NAN; n];
                            decode_row(&stages, scale, sl, &mut want).unwrap();
                            let mut got = vec![f32::NAN; n];
                            prepared.decode_row(&row, scale, sl, &mut got).unwrap();
                            assert_eq!(
                                bits_of(&got),
                                bits_of(&want),
                                "{elem:?} {shapes:?} n {n} scale {scale:?}"
                            );
                            checked += 1;
                        }
                    }
                    // Short code bytes and a wrong row width are errors.
                    let mut out = vec![0f32; n];
                    assert!(matches!(
                        prepared.decode_row(&row[..offset - 1], None, None, &mut out),
                        Err(KernelError::CodesLen { .. })
                    ));
                    let mut wrong = vec![0f32; n + 1];
                    assert!(prepared.decode_row(&row, None, None, &mut wrong).is_err());
                }
            }
        }
    }
    assert!(checked > 1000);
    // Shapes are checked once, up front.
    let pal = vec![0f32; 100];
    let bad = StageSpec {
        palette: ElemSlice::F32(&pal),
        d: 4,
        bits: 8,
        code_offset: 0,
    };
    assert!(matches!(
        Prepared::new(&[bad], 8),
        Err(KernelError::PaletteLen { .. })
    ));
}

#[test]
fn nan_palette_values_decode_as_nan() {
    // Writers never store NaN, but a file can hold one; the widening
    // without `half`'s quieting still yields NaN.
    let mut pal = vec![bf16::from_f32(1.0); 256 * 4];
    pal[4] = bf16::from_bits(0x7F81); // signalling NaN
    let codes = [1u8, 0];
    let st = stage(ElemSlice::Bf16(&pal), 4, 8, &codes);
    let mut out = [0f32; 8];
    decode_row(&[st], None, None, &mut out).unwrap();
    assert!(out[0].is_nan());
    assert_eq!(&out[1..], &[1.0; 7]);
}

#[test]
fn codes_past_k_read_padding_never_outside_the_palette() {
    // k = 3 of 16 stored; code 15 must read the zero padding entry.
    let mut pal = vec![0f32; 16];
    pal[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
    let codes = [0xF2u8];
    let mut out = [9f32; 2];
    let st = stage(ElemSlice::F32(&pal), 1, 4, &codes);
    decode_row(&[st], None, None, &mut out).unwrap();
    assert_eq!(out, [3.0, 0.0]);
}

#[test]
fn decode_rows_matches_decode_row_row_by_row() {
    use crate::ElemType;
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (n, n_rows, first) = (52usize, 7usize, 3usize);
    // One-pass shapes and a staged one (4-bit), f32 palettes.
    for shapes in [&[(2usize, 8u8), (4, 8)][..], &[(4, 8), (4, 8)], &[(4, 4)]] {
        let pals: Vec<Vec<f32>> = shapes
            .iter()
            .enumerate()
            .map(|(s, &(d, b))| with_zeros((1 << b) * d, s as u32 + 3))
            .collect();
        let mut specs = Vec::new();
        let mut stride = 0;
        for (p, &(d, b)) in pals.iter().zip(shapes) {
            specs.push(StageSpec {
                palette: ElemSlice::F32(p),
                d,
                bits: b,
                code_offset: stride,
            });
            stride += code_bytes(n, d, b).unwrap();
        }
        let prepared = Prepared::new(&specs, n).unwrap();
        let codes: Vec<u8> = (0..stride * n_rows).map(|i| (i * 73 + 19) as u8).collect();
        let scale_vals = [0.5f32, -1.25, 3.0, 0.125, -0.0, 2.5, 1.0, 7.0, 0.75, 9.0];
        for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
            let bytes: Vec<u8> = scale_vals
                .iter()
                .flat_map(|&v| match elem {
                    ElemType::F32 => v.to_le_bytes().to_vec(),
                    ElemType::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
                    ElemType::Bf16 => bf16::from_f32(v).to_le_bytes().to_vec(),
                })
                .collect();
            for scales in [
                None,
                Some(RowScales {
                    bytes: &bytes,
                    elem,
                }),
            ] {
                let mut got = vec![f32::NAN; n * n_rows];
                prepared
                    .decode_rows(&codes, stride, scales, first, &mut got)
                    .unwrap();
                for (i, row) in got.chunks_exact(n).enumerate() {
                    let scale = scales.map(|_| match elem {
                        ElemType::F32 => scale_vals[first + i],
                        ElemType::F16 => f16::from_f32(scale_vals[first + i]).to_f32(),
                        ElemType::Bf16 => bf16::from_f32(scale_vals[first + i]).to_f32(),
                    });
                    let mut want = vec![f32::NAN; n];
                    prepared
                        .decode_row(&codes[i * stride..][..stride], scale, None, &mut want)
                        .unwrap();
                    assert_eq!(bits_of(row), bits_of(&want), "{shapes:?} {elem:?} row {i}");
                }
                // bf16 output: each f32 result rounded once, in the same pass.
                let mut got16 = vec![bf16::NAN; n * n_rows];
                prepared
                    .decode_rows(&codes, stride, scales, first, &mut got16)
                    .unwrap();
                for (k, (&g, &f)) in got16.iter().zip(&got).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        bf16::from_f32(f).to_bits(),
                        "{shapes:?} {elem:?} bf16 output {k}"
                    );
                }
            }
        }
        // Too few code bytes: a typed error naming the row, not a panic.
        let mut out = vec![0f32; n * n_rows];
        let short = &codes[..stride * n_rows - 1];
        assert!(matches!(
            prepared.decode_rows(short, stride, None, first, &mut out),
            Err((r, KernelError::CodesLen { .. })) if r == first + n_rows - 1
        ));
    }
}

#[test]
fn bf16_rounding_matches_half_on_edge_values() {
    let mut xs = vec![
        0.0f32,
        -0.0,
        1.0,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7F80_0001),
        f32::from_bits(0xFF80_0001),
        f32::MIN_POSITIVE,
        f32::from_bits(1),
    ];
    // Ties, just-below and just-above ties, at both parities.
    for base in [0x3F80_0000u32, 0x3F81_0000, 0x7F7F_0000, 0x0001_0000] {
        for low in [0x7FFFu32, 0x8000, 0x8001, 0xFFFF, 0] {
            xs.push(f32::from_bits(base | low));
            xs.push(-f32::from_bits(base | low));
        }
    }
    let mut seed = 1u32;
    for _ in 0..100_000 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        xs.push(f32::from_bits(seed));
    }
    for x in xs {
        assert_eq!(
            bf16_bits(x),
            bf16::from_f32(x).to_bits(),
            "{x:e} ({:#010x})",
            x.to_bits()
        );
    }
}
