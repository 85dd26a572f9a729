//! Every cap the builder enforces, one test each: the call fails with its
//! typed error naming the cap and the offending value, and a file finished
//! afterwards is still valid.

use std::io::Cursor;

use hhtld_format::limits::{
    MAX_DIRECTORY_BYTES, MAX_METADATA_BYTES, MAX_NAME_LEN, MAX_PALETTES, MAX_PALETTE_D,
    MAX_SECTIONS, MAX_TENSORS,
};
use hhtld_format::{Dtype, ElemType, Regime, Role};
use hhtld_writer::builder::{
    BasisId, EncodedTensor, PaletteId, PaletteSpec, Quality, RawTensor, SlotL, Stage, Writer,
    WriterLimits,
};
use hhtld_writer::error::WriteError;

type Mem = Writer<Cursor<Vec<u8>>>;

fn mem() -> Mem {
    Writer::new(Cursor::new(Vec::new())).unwrap()
}

fn limited(l: WriterLimits) -> Mem {
    Writer::with_limits(Cursor::new(Vec::new()), l).unwrap()
}

/// Finishes and runs the validator: a rejected call never spoils the file.
fn still_valid(w: Mem) {
    let (c, _) = w.finish_into_inner().unwrap();
    hhtld_format::parse(c.get_ref()).expect("file valid after a rejected call");
}

fn pal(k: usize, d: usize, bits: u8) -> PaletteSpec<'static> {
    let v: &'static [f32] = Vec::leak((0..k * d).map(|i| i as f32 * 0.5).collect());
    PaletteSpec {
        k,
        d,
        bits,
        elem: ElemType::F32,
        values: v,
    }
}

fn raw<'a>(name: &'a str, dtype: Dtype, shape: &'a [u64], bytes: &'a [u8]) -> RawTensor<'a> {
    RawTensor {
        name,
        dtype,
        shape,
        role: Role::Other,
        regime: Regime::Passthrough,
        bytes,
    }
}

fn enc<'a>(name: &'a str, shape: &'a [u64], stages: &'a [Stage<'a>]) -> EncodedTensor<'a> {
    EncodedTensor {
        name,
        dtype: Dtype::F32,
        shape,
        role: Role::Other,
        regime: Regime::Argmax,
        stages,
        scale: None,
        slot_l: None,
        quality: None,
    }
}

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

// ---- tensors ------------------------------------------------------------------

#[test]
fn encoded_dtype_must_be_float() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    for dtype in [Dtype::I32, Dtype::U8, Dtype::Bool, Dtype::F8E4M3] {
        let mut t = enc("t", &[2], &st);
        t.dtype = dtype;
        let e = w.add_encoded_tensor(t).unwrap_err();
        assert!(
            matches!(e, WriteError::NotEncodable { dtype: d, .. } if d == dtype),
            "{e}"
        );
    }
    still_valid(w);
}

#[test]
fn encoded_regime_must_not_be_passthrough() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    let mut t = enc("t", &[2], &st);
    t.regime = Regime::Passthrough;
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(matches!(e, WriteError::PassthroughEncoded { .. }), "{e}");
    still_valid(w);
}

#[test]
fn raw_length_must_match_shape() {
    let mut w = mem();
    let e = w
        .add_raw_tensor(raw("r", Dtype::F32, &[2, 3], &[0; 23]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Length {
                expected: 24,
                got: 23,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn raw_keeps_any_regime() {
    let mut w = mem();
    let mut t = raw("r", Dtype::F32, &[1], &[0; 4]);
    t.regime = Regime::Argmax;
    w.add_raw_tensor(t).unwrap();
    still_valid(w);
}

#[test]
fn duplicate_name() {
    let mut w = mem();
    w.add_raw_tensor(raw("x", Dtype::U8, &[1], &[0])).unwrap();
    let e = w
        .add_raw_tensor(raw("x", Dtype::U8, &[1], &[0]))
        .unwrap_err();
    assert!(
        matches!(&e, WriteError::DuplicateName { name } if name == "x"),
        "{e}"
    );
    let p = w.add_palette(pal(1, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0],
    }];
    let e = w.add_encoded_tensor(enc("x", &[1], &st)).unwrap_err();
    assert!(matches!(e, WriteError::DuplicateName { .. }), "{e}");
    still_valid(w);
}

#[test]
fn empty_name() {
    let mut w = mem();
    let e = w
        .add_raw_tensor(raw("", Dtype::U8, &[1], &[0]))
        .unwrap_err();
    assert!(matches!(e, WriteError::EmptyName { index: 0 }), "{e}");
    still_valid(w);
}

#[test]
fn name_over_max_name_len() {
    let mut w = mem();
    let long = "n".repeat(MAX_NAME_LEN + 1);
    let e = w
        .add_raw_tensor(raw(&long, Dtype::U8, &[1], &[0]))
        .unwrap_err();
    assert!(
        matches!(e, WriteError::NameTooLong { len, max, .. } if len == MAX_NAME_LEN + 1 && max == MAX_NAME_LEN),
        "{e}"
    );
    // Exactly MAX_NAME_LEN bytes (multi-byte UTF-8) is fine.
    let ok = "é".repeat(MAX_NAME_LEN / 2);
    w.add_raw_tensor(raw(&ok, Dtype::U8, &[1], &[0])).unwrap();
    still_valid(w);
}

#[test]
fn over_max_dims() {
    let mut w = mem();
    let shape = [1u64; 9];
    let e = w
        .add_raw_tensor(raw("r", Dtype::U8, &shape, &[0]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::TooManyDims {
                ndims: 9,
                max: 8,
                ..
            }
        ),
        "{e}"
    );
    w.add_raw_tensor(raw("r", Dtype::U8, &shape[..8], &[0]))
        .unwrap();
    still_valid(w);
}

#[test]
fn numel_overflow() {
    let mut w = mem();
    let e = w
        .add_raw_tensor(raw("r", Dtype::U8, &[1 << 32, 1 << 32, 2], &[]))
        .unwrap_err();
    assert!(matches!(e, WriteError::NumelOverflow { .. }), "{e}");
    // numel fits but numel * size does not.
    let e = w
        .add_raw_tensor(raw("r", Dtype::U64, &[1 << 62], &[]))
        .unwrap_err();
    assert!(matches!(e, WriteError::NumelOverflow { .. }), "{e}");
    let p = w.add_palette(pal(1, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0],
    }];
    let e = w
        .add_encoded_tensor(enc("e", &[u64::MAX, 2], &st))
        .unwrap_err();
    assert!(matches!(e, WriteError::NumelOverflow { .. }), "{e}");
    still_valid(w);
}

#[test]
fn scale_length_and_finiteness() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1, 1, 0],
    }];
    let mut t = enc("t", &[2, 2], &st);
    t.scale = Some((ElemType::F32, &[1.0]));
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Length {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    t.scale = Some((ElemType::F32, &[1.0, f32::NAN]));
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(matches!(e, WriteError::NonFinite { index: 1, .. }), "{e}");
    t.scale = Some((ElemType::F16, &[1.0, 1e6]));
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::NonFinite {
                index: 1,
                elem: ElemType::F16,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn slot_l_rows_mismatch() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let b = w.add_basis(2, ElemType::F32, &[0.5; 16]).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1, 1, 0, 0, 0],
    }];
    let mut t = enc("t", &[3, 2], &st);
    t.slot_l = Some(SlotL {
        basis: b,
        coef: &[[1; 8]; 2],
        scale: 1.0,
    });
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Length {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn slot_l_basis_n_cols_mismatch() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let b = w.add_basis(3, ElemType::F32, &[0.5; 24]).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    let mut t = enc("t", &[1, 2], &st);
    t.slot_l = Some(SlotL {
        basis: b,
        coef: &[[1; 8]],
        scale: 1.0,
    });
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::BasisMismatch {
                basis_n_cols: 3,
                n_cols: 2,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn slot_scale_non_finite() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let b = w.add_basis(2, ElemType::F32, &[0.5; 16]).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    for bad in [f32::NAN, f32::INFINITY] {
        let mut t = enc("t", &[1, 2], &st);
        t.slot_l = Some(SlotL {
            basis: b,
            coef: &[[1; 8]],
            scale: bad,
        });
        let e = w.add_encoded_tensor(t).unwrap_err();
        assert!(
            matches!(&e, WriteError::NonFinite { what, .. } if what.contains("slot_scale")),
            "{e}"
        );
    }
    still_valid(w);
}

#[test]
fn basis_fields() {
    let mut w = mem();
    let e = w.add_basis(0, ElemType::F32, &[]).unwrap_err();
    assert!(matches!(e, WriteError::BasisNCols { n_cols: 0, .. }), "{e}");
    let e = w.add_basis(2, ElemType::F32, &[0.0; 15]).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Length {
                expected: 16,
                got: 15,
                ..
            }
        ),
        "{e}"
    );
    let mut v = vec![0.0f32; 16];
    v[9] = 1e10;
    let e = w.add_basis(2, ElemType::F16, &v).unwrap_err();
    assert!(matches!(e, WriteError::NonFinite { index: 9, .. }), "{e}");
    still_valid(w);
}

#[test]
fn quality_out_of_range() {
    let good = Quality {
        rho_median: 0.9,
        rho_p5: 0.8,
        rho_min: -1.0,
        rel_fro: 0.0,
    };
    type Case = (&'static str, fn(&mut Quality));
    let cases: [Case; 7] = [
        ("rho_median", |q| q.rho_median = 1.01),
        ("rho_p5", |q| q.rho_p5 = -1.5),
        ("rho_min", |q| q.rho_min = f32::NAN),
        ("rel_fro", |q| q.rel_fro = -0.01),
        ("rel_fro", |q| q.rel_fro = f32::INFINITY),
        ("rho_median", |q| q.rho_median = f32::NEG_INFINITY),
        ("rho_p5", |q| q.rho_p5 = 2.0),
    ];
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    for (field, set) in cases {
        let mut q = good;
        set(&mut q);
        let mut t = enc("t", &[2], &st);
        t.quality = Some(q);
        let e = w.add_encoded_tensor(t).unwrap_err();
        assert!(
            matches!(e, WriteError::Quality { field: f, .. } if f == field),
            "{field}: {e}"
        );
    }
    let mut t = enc("t", &[2], &st);
    t.quality = Some(good);
    w.add_encoded_tensor(t).unwrap();
    still_valid(w);
}

// ---- FisherZ -------------------------------------------------------------------

#[test]
fn fisher_duplicate() {
    let mut w = mem();
    let p = w.add_palette(pal(3, 2, 4)).unwrap();
    w.add_fisher_z(p).unwrap();
    let e = w.add_fisher_z(p).unwrap_err();
    assert!(
        matches!(e, WriteError::FisherDuplicate { palette: 0 }),
        "{e}"
    );
    let e = w.add_fisher_z_table(p, 1.0, &[0; 9]).unwrap_err();
    assert!(
        matches!(e, WriteError::FisherDuplicate { palette: 0 }),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn fisher_explicit_table_checks() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 2, 4)).unwrap();
    for g in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let e = w.add_fisher_z_table(p, g, &[0; 4]).unwrap_err();
        assert!(matches!(e, WriteError::FisherGamma { .. }), "{e}");
    }
    let e = w.add_fisher_z_table(p, 1.0, &[0; 5]).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Length {
                expected: 4,
                got: 5,
                ..
            }
        ),
        "{e}"
    );
    let e = w.add_fisher_z_table(p, 1.0, &[0, 3, 4, 0]).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::FisherTable {
                i: 0,
                j: 1,
                reason: "not symmetric",
                ..
            }
        ),
        "{e}"
    );
    let e = w.add_fisher_z_table(p, 1.0, &[0, 0, 0, -128]).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::FisherTable {
                i: 1,
                j: 1,
                value: -128,
                ..
            }
        ),
        "{e}"
    );
    w.add_fisher_z_table(p, 1.0, &[127, -127, -127, 127])
        .unwrap();
    still_valid(w);
}

// ---- metadata ------------------------------------------------------------------

#[test]
fn metadata_key_and_value_caps() {
    let mut w = mem();
    let e = w.set_metadata("", "v").unwrap_err();
    assert!(matches!(e, WriteError::Metadata { .. }), "{e}");
    let e = w
        .set_metadata(&"k".repeat(MAX_NAME_LEN + 1), "v")
        .unwrap_err();
    assert!(matches!(e, WriteError::NameTooLong { .. }), "{e}");
    let big = "v".repeat(MAX_METADATA_BYTES + 1);
    let e = w.set_metadata("k", &big).unwrap_err();
    assert!(
        matches!(&e, WriteError::Metadata { reason, .. } if reason.contains("MAX_METADATA_BYTES")),
        "{e}"
    );
    w.set_metadata("k", "").unwrap();
    still_valid(w);
}

// ---- counts ---------------------------------------------------------------------

#[test]
fn default_limits_are_the_format_limits_and_cannot_be_raised() {
    let d = WriterLimits::default();
    assert_eq!(d.max_tensors, MAX_TENSORS);
    assert_eq!(d.max_palettes, MAX_PALETTES);
    assert_eq!(d.max_sections, MAX_SECTIONS);
    assert_eq!(d.max_directory_bytes, MAX_DIRECTORY_BYTES);
    let w = limited(WriterLimits {
        max_tensors: usize::MAX,
        max_palettes: usize::MAX,
        max_sections: usize::MAX,
        max_directory_bytes: u64::MAX,
    });
    assert_eq!(w.limits(), d);
}

#[test]
fn max_tensors() {
    let mut w = limited(WriterLimits {
        max_tensors: 3,
        ..Default::default()
    });
    for i in 0..3 {
        w.add_raw_tensor(raw(&format!("t{i}"), Dtype::U8, &[0], &[]))
            .unwrap();
    }
    let e = w
        .add_raw_tensor(raw("t3", Dtype::U8, &[0], &[]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_TENSORS",
                max: 3,
                value: 4
            }
        ),
        "{e}"
    );
    assert_eq!(w.tensor_count(), 3);
    still_valid(w);
}

#[test]
fn max_palettes_bases_and_fisher_tables() {
    let mut w = limited(WriterLimits {
        max_palettes: 2,
        ..Default::default()
    });
    let a = w.add_palette(pal(1, 1, 4)).unwrap();
    let b = w.add_palette(pal(1, 1, 4)).unwrap();
    let e = w.add_palette(pal(1, 1, 4)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_PALETTES (palettes)",
                max: 2,
                value: 3
            }
        ),
        "{e}"
    );
    w.add_basis(1, ElemType::F32, &[0.0; 8]).unwrap();
    w.add_basis(1, ElemType::F32, &[0.0; 8]).unwrap();
    let e = w.add_basis(1, ElemType::F32, &[0.0; 8]).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_PALETTES (bases)",
                ..
            }
        ),
        "{e}"
    );
    w.add_fisher_z(a).unwrap();
    w.add_fisher_z(b).unwrap();
    assert_eq!(w.palette_count(), 2);
    still_valid(w);
}

#[test]
fn max_sections() {
    // 3 sections are kept for STRINGS, METADATA and DIRECTORY.
    let mut w = limited(WriterLimits {
        max_sections: 6,
        ..Default::default()
    });
    let p = w.add_palette(pal(2, 1, 4)).unwrap();
    let b = w.add_basis(2, ElemType::F32, &[0.0; 16]).unwrap();
    // An encoded tensor with scale and SlotL needs 3 sections: one too many.
    let st = [Stage {
        palette: p,
        codes: &[0, 1],
    }];
    let mut t = enc("t", &[1, 2], &st);
    t.scale = Some((ElemType::F32, &[1.0]));
    t.slot_l = Some(SlotL {
        basis: b,
        coef: &[[0; 8]],
        scale: 1.0,
    });
    let e = w.add_encoded_tensor(t).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_SECTIONS",
                max: 6,
                value: 8
            }
        ),
        "{e}"
    );
    // One section still fits.
    w.add_raw_tensor(raw("r", Dtype::U8, &[1], &[1])).unwrap();
    let e = w
        .add_raw_tensor(raw("s", Dtype::U8, &[1], &[1]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_SECTIONS",
                ..
            }
        ),
        "{e}"
    );
    w.set_metadata("k", "v").unwrap();
    still_valid(w);
}

#[test]
fn max_directory_bytes() {
    // 32 + 32 (one palette) + 2 x 160 = 384 bytes.
    let mut w = limited(WriterLimits {
        max_directory_bytes: 384,
        ..Default::default()
    });
    w.add_palette(pal(1, 1, 4)).unwrap();
    w.add_raw_tensor(raw("a", Dtype::U8, &[0], &[])).unwrap();
    w.add_raw_tensor(raw("b", Dtype::U8, &[0], &[])).unwrap();
    let e = w
        .add_raw_tensor(raw("c", Dtype::U8, &[0], &[]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_DIRECTORY_BYTES",
                max: 384,
                value: 544
            }
        ),
        "{e}"
    );
    let e = w.add_palette(pal(1, 1, 4)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::Limit {
                cap: "MAX_DIRECTORY_BYTES",
                value: 416,
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}

#[test]
fn zero_row_tensor_with_huge_rows() {
    let mut w = mem();
    let p = w.add_palette(pal(2, 1, 8)).unwrap();
    // n_rows = 0, n_cols = 2^62: no codes, no bytes; one stage is a valid file.
    let shape = [0u64, 1 << 62];
    let one = [Stage {
        palette: p,
        codes: &[],
    }];
    w.add_encoded_tensor(enc("ok", &shape, &one)).unwrap();
    // Four 8-bit stages of d = 1: the row stride 4 x 2^62 overflows u64.
    let four = [Stage {
        palette: p,
        codes: &[],
    }; 4];
    let e = w.add_encoded_tensor(enc("big", &shape, &four)).unwrap_err();
    assert!(
        matches!(
            e,
            WriteError::SizeOverflow {
                what: "ENTRY row stride",
                ..
            }
        ),
        "{e}"
    );
    still_valid(w);
}
