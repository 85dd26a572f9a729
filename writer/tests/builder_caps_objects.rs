//! Every cap the builder enforces on tensors, names, scales, SlotL, bases
//! and counts, one test each (palettes, codes and stages are in
//! `builder_caps.rs`): the call fails with its typed error naming the cap
//! and the offending value, and a file finished afterwards is still valid.

mod caps_util;

use caps_util::*;

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
        t.header.dtype = dtype;
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
    t.header.regime = Regime::Passthrough;
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
    t.header.regime = Regime::Argmax;
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
