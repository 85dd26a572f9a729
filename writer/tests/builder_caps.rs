//! Every cap the builder enforces on palettes, codes and stages, one test
//! each: the call fails with its typed error naming the cap and the
//! offending value, and a file finished afterwards is still valid. Tensor,
//! name, scale, SlotL, basis and count caps are in `builder_caps_objects.rs`.

mod caps_util;

use caps_util::*;

// ---- palettes -------------------------------------------------------------

#[test]
fn palette_k_zero() {
    let mut w = mem();
    let e = w.add_palette(pal(0, 1, 4)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::PaletteK {
                k: 0,
                bits: 4,
                max: 16,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn palette_k_over_2_pow_bits() {
    let mut w = mem();
    let e = w.add_palette(pal(17, 1, 4)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::PaletteK {
                k: 17,
                bits: 4,
                max: 16,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("MAX_PALETTE_K"));
    still_valid(w);
}

#[test]
fn palette_k_over_max_palette_k() {
    let mut w = mem();
    let e = w.add_palette(pal(300, 1, 8)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::PaletteK {
                k: 300,
                max: 256,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn palette_bits_not_in_code_bits() {
    let mut w = mem();
    for bits in [0u8, 1, 2, 3, 5, 7, 9, 16] {
        let e = w.add_palette(pal(2, 1, bits)).unwrap_err();
        assert!(
            matches!(e, WriteError::CodeBits { bits: b, .. } if b == bits),
            "{e}"
        );
    }
    still_valid(w);
}

#[test]
fn palette_d_zero() {
    let mut w = mem();
    let e = w.add_palette(pal(2, 0, 4)).unwrap_err();
    assert!(matches!(e, WriteError::PaletteD { d: 0, .. }), "{e}");
    still_valid(w);
}

#[test]
fn palette_d_over_max_palette_d() {
    let mut w = mem();
    let spec = PaletteSpec {
        k: 1,
        d: MAX_PALETTE_D + 1,
        bits: 4,
        elem: ElemType::F32,
        values: &[],
    };
    let e = w.add_palette(spec).unwrap_err();
    assert!(
        matches!(e, WriteError::PaletteD { d, max, .. } if d == MAX_PALETTE_D + 1 && max == MAX_PALETTE_D),
        "{e}"
    );
    // d == MAX_PALETTE_D itself is fine.
    let v = vec![1.0f32; MAX_PALETTE_D];
    w.add_palette(PaletteSpec {
        k: 1,
        d: MAX_PALETTE_D,
        bits: 4,
        elem: ElemType::Bf16,
        values: &v,
    })
    .unwrap();
    still_valid(w);
}

#[test]
fn palette_values_length() {
    let mut w = mem();
    let e = w
        .add_palette(PaletteSpec {
            k: 3,
            d: 2,
            bits: 4,
            elem: ElemType::F32,
            values: &[0.0; 5],
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Length {
                expected: 6,
                got: 5,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn palette_non_finite() {
    let mut w = mem();
    for (bad, elem) in [
        (f32::NAN, ElemType::F32),
        (f32::INFINITY, ElemType::Bf16),
        (f32::NEG_INFINITY, ElemType::F16),
    ] {
        let e = w
            .add_palette(PaletteSpec {
                k: 2,
                d: 1,
                bits: 4,
                elem,
                values: &[1.0, bad],
            })
            .unwrap_err();
        assert!(matches!(e, WriteError::NonFinite { index: 1, .. }), "{e}");
    }
    still_valid(w);
}

#[test]
fn palette_value_overflowing_its_elem() {
    let mut w = mem();
    // 70000 is finite in f32 but above f16's max (65504): rounds to inf.
    let e = w
        .add_palette(PaletteSpec {
            k: 2,
            d: 1,
            bits: 4,
            elem: ElemType::F16,
            values: &[0.0, 70000.0],
        })
        .unwrap_err();
    assert!(
        matches!(e, WriteError::NonFinite { index: 1, value, elem: ElemType::F16, .. } if value == 70000.0),
        "{e}"
    );
    // f32::MAX rounds up to inf in bf16.
    let e = w
        .add_palette(PaletteSpec {
            k: 1,
            d: 1,
            bits: 4,
            elem: ElemType::Bf16,
            values: &[f32::MAX],
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::NonFinite {
                elem: ElemType::Bf16,
                ..
            }
        ),
        "{e}"
    );
    // ...but is fine as f32, and 65504 is fine as f16.
    w.add_palette(PaletteSpec {
        k: 1,
        d: 1,
        bits: 4,
        elem: ElemType::F32,
        values: &[f32::MAX],
    })
    .unwrap();
    w.add_palette(PaletteSpec {
        k: 1,
        d: 1,
        bits: 4,
        elem: ElemType::F16,
        values: &[65504.0],
    })
    .unwrap();
    still_valid(w);
}

// ---- codes and stages -------------------------------------------------------

#[test]
fn code_at_or_over_k() {
    let mut w = mem();
    let p = w.add_palette(pal(5, 2, 4)).unwrap();
    // 3 rows x 4 cols, d = 2 -> n_sub = 2. Bad code 5 at row 2, position 1.
    let codes = [0, 1, 2, 3, 4, 5];
    let st = [Stage {
        palette: p,
        codes: &codes,
    }];
    let e = w.add_encoded_tensor(enc("t", &[3, 4], &st)).unwrap_err();
    match &e {
        WriteError::CodeOutOfRange {
            name,
            stage,
            row,
            position,
            code,
            k,
        } => {
            assert_eq!(
                (name.as_str(), *stage, *row, *position, *code, *k),
                ("t", 0, 2, 1, 5, 5)
            );
        }
        _ => panic!("{e}"),
    }
    still_valid(w);
}

#[test]
fn code_past_k_of_a_partly_filled_palette() {
    // Codes are u8 (k <= 256 is a format cap), but a code past a palette's
    // own k (here 200) is still rejected with its place.
    let mut w = mem();
    let p = w.add_palette(pal(200, 1, 8)).unwrap();
    let codes = [10u8, 250];
    let st = [Stage {
        palette: p,
        codes: &codes,
    }];
    let e = w.add_encoded_tensor(enc("t", &[2], &st)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::CodeOutOfRange {
                code: 250,
                k: 200,
                position: 1,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn code_count_mismatch() {
    let mut w = mem();
    let p = w.add_palette(pal(4, 3, 4)).unwrap();
    // 2 x 7, d = 3 -> n_sub = 3, expected 6 codes.
    let codes = [0u8; 7];
    let st = [Stage {
        palette: p,
        codes: &codes,
    }];
    let e = w.add_encoded_tensor(enc("t", &[2, 7], &st)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::CodeCount {
                n_rows: 2,
                n_sub: 3,
                expected: 6,
                got: 7,
                stage: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("code width mismatch"));
    still_valid(w);
}

#[test]
fn d_does_not_fit_n_cols() {
    let mut w = mem();
    let p4 = w.add_palette(pal(2, 4, 4)).unwrap();
    let p1 = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [
        Stage {
            palette: p1,
            codes: &[0; 3],
        },
        Stage {
            palette: p4,
            codes: &[0],
        },
    ];
    let e = w.add_encoded_tensor(enc("t", &[1, 3], &st)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::DoesNotFit {
                stage: 1,
                d: 4,
                n_cols: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("does not fit"));
    still_valid(w);
}

#[test]
fn zero_stages() {
    let mut w = mem();
    let e = w.add_encoded_tensor(enc("t", &[2, 2], &[])).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::StageCount {
                stages: 0,
                max: 4,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn over_max_stages() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let codes = [0u8, 1];
    let st = vec![
        Stage {
            palette: p,
            codes: &codes
        };
        5
    ];
    let e = w.add_encoded_tensor(enc("t", &[2], &st)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::StageCount {
                stages: 5,
                max: 4,
                ..
            }
        ),
        "{e}"
    );
    // Four stages are fine.
    w.add_encoded_tensor(enc("t", &[2], &st[..4])).unwrap();
    still_valid(w);
}

#[test]
fn unknown_palette_id() {
    let mut other = mem();
    let foreign = other.add_palette(pal(2, 1, 4)).unwrap();
    let mut w = mem();
    // Same index 0 exists in `w` too: the id is still rejected.
    let _own = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [Stage {
        palette: foreign,
        codes: &[0, 1],
    }];
    let e = w.add_encoded_tensor(enc("t", &[2], &st)).unwrap_err();
    assert!(matches!(e, WriteError::UnknownPalette { index: 0 }), "{e}");
    let e = w.add_fisher_z(foreign).unwrap_err();
    assert!(matches!(e, WriteError::UnknownPalette { .. }), "{e}");
    // Ids carry the directory index of their record.
    let mut third = mem();
    third.add_palette(pal(1, 1, 4)).unwrap();
    let p1: PaletteId = third.add_palette(pal(1, 1, 4)).unwrap();
    assert_eq!(p1.index(), 1);
    still_valid(w);
}

#[test]
fn unknown_basis_id() {
    let mut other = mem();
    let foreign: BasisId = other.add_basis(2, ElemType::F32, &[0.0; 16]).unwrap();
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    let mut t = enc("t", &[1, 2], &st);
    t.slot_l = Some(SlotL {
        basis: foreign,
        coef: &[[0; 8]],
        scale: 1.0,
    });
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(matches!(e, WriteError::UnknownBasis { index: 0 }), "{e}");
    still_valid(w);
}
