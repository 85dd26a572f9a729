//! The `open` and `decode` targets: arbitrary bytes through open, the
//! inspect report, and every view of the reader.

use half::{bf16, f16};
use hhtld_format::decode::n_sub;
use hhtld_format::{Dtype, ElemType, Encoding};
use hhtld_reader::{ElemSlice, Hhtld, HhtldFile, ReaderError, TensorView};
use hhtld_writer::report::SizeReport;

use crate::reference::{elems_to_f32, FileTables};
use crate::{assert_same_f32, same_f32};

/// Most elements (decoded values, palette entries, codes) the view checks
/// touch per input, so a valid header that claims a huge tensor cannot
/// time out a run. Tensors past the budget get only the cheap checks.
pub const WORK_BUDGET: usize = 1 << 22;

/// Opens `data` both ways the reader offers; they must agree. On success
/// renders the inspect report and returns the owned file.
pub fn open(data: &[u8]) -> Option<HhtldFile> {
    let direct = Hhtld::from_bytes(data);
    let owned = HhtldFile::copy_from_slice(data);
    match (&direct, &owned) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => {
            let (fa, fb) = (a.format_error(), b.format_error());
            assert!(fa.is_some(), "open failed without a format error: {a}");
            // Compared as text: errors may hold NaN values.
            assert_eq!(
                format!("{fa:?}"),
                format!("{fb:?}"),
                "from_bytes and copy_from_slice disagree"
            );
            let f = fa.expect("checked above");
            assert!(f.rule().starts_with("R-"), "rule id {}", f.rule());
            assert_ne!(f.kind(), "Unknown", "error without a kind: {f}");
            assert!(!a.to_string().is_empty());
        }
        (a, b) => panic!(
            "from_bytes and copy_from_slice disagree: {:?} vs {:?}",
            a.as_ref().err(),
            b.as_ref().err()
        ),
    }
    if crate::tracing() {
        match &direct {
            Ok(h) => eprintln!("open: ok, {} tensors", h.tensor_count()),
            Err(e) => eprintln!("open: {}", e.format_error().map_or("io", |f| f.rule())),
        }
    }
    let file = owned.ok()?;
    let h = file.view();
    assert_eq!(h.bytes(), data, "the owned copy differs from the input");
    report(&h);
    Some(file)
}

/// What `hhtld inspect --verify --json` and the size report compute for a
/// valid file; both must succeed and add up.
pub fn report(h: &Hhtld<'_>) {
    let layout = h.layout();
    let size = SizeReport::from_layout(layout, h.bytes());
    if let Err(e) = size.check() {
        panic!("size report of a valid file does not add up: {e}");
    }
    assert_eq!(size.file_len, h.bytes().len() as u64);
    assert_eq!(size.tensors.len(), h.tensor_count());
    let _ = size.to_json().to_string();

    let j = hhtld::inspect::inspect_json(h, true);
    assert_eq!(
        j["tensors"].as_array().map(Vec::len),
        Some(h.tensor_count())
    );
    assert_eq!(
        j["sections"].as_array().map(Vec::len),
        Some(h.sections().len())
    );
    assert_eq!(
        j["palettes"].as_array().map(Vec::len),
        Some(h.palette_count())
    );
    assert_eq!(
        j["metadata"].as_object().map(|m| m.len()),
        Some(h.metadata().len()),
        "metadata keys are unique, so the JSON object keeps them all"
    );
    let text = hhtld::inspect::render_text(&j, hhtld::inspect::Show::ALL);
    assert!(text.starts_with("hhtld "), "inspect text: {text:.80}");
}

/// The Rust type of each dtype, as `raw_slice` documents; checks the slice
/// length and that a type of another size is refused.
fn check_raw_slices(t: &TensorView<'_>) {
    let n = t.numel();
    let len = match t.dtype() {
        Dtype::Bool | Dtype::U8 | Dtype::F8E4M3 | Dtype::F8E5M2 => {
            t.raw_slice::<u8>().map(<[_]>::len)
        }
        Dtype::I8 => t.raw_slice::<i8>().map(<[_]>::len),
        Dtype::I16 => t.raw_slice::<i16>().map(<[_]>::len),
        Dtype::U16 => t.raw_slice::<u16>().map(<[_]>::len),
        Dtype::F16 => t.raw_slice::<f16>().map(<[_]>::len),
        Dtype::Bf16 => t.raw_slice::<bf16>().map(<[_]>::len),
        Dtype::I32 => t.raw_slice::<i32>().map(<[_]>::len),
        Dtype::U32 => t.raw_slice::<u32>().map(<[_]>::len),
        Dtype::F32 => t.raw_slice::<f32>().map(<[_]>::len),
        Dtype::I64 => t.raw_slice::<i64>().map(<[_]>::len),
        Dtype::U64 => t.raw_slice::<u64>().map(<[_]>::len),
        Dtype::F64 => t.raw_slice::<f64>().map(<[_]>::len),
    };
    match len {
        Ok(l) => assert_eq!(l, n, "{}: raw slice length", t.name()),
        Err(e) => panic!(
            "{}: typed raw view of a 64-aligned file failed: {e}",
            t.name()
        ),
    }
    let wrong = if t.dtype().size() == 1 {
        t.raw_slice::<u16>().map(<[_]>::len)
    } else {
        t.raw_slice::<u8>().map(<[_]>::len)
    };
    assert!(
        matches!(wrong, Err(ReaderError::WrongType { .. })),
        "{}: raw_slice of the wrong size gave {wrong:?}",
        t.name()
    );
}

/// RAW float bytes converted to f32 independently of the reader.
fn raw_to_f32(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => elems_to_f32(b, ElemType::F32),
        Dtype::F16 => elems_to_f32(b, ElemType::F16),
        Dtype::Bf16 => elems_to_f32(b, ElemType::Bf16),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        _ => return None,
    })
}

fn check_raw_tensor(t: &TensorView<'_>, heavy: bool) {
    let bytes = t.raw_bytes().expect("RAW tensor has raw bytes");
    assert_eq!(
        bytes.len(),
        t.numel() * t.dtype().size(),
        "{}: raw length",
        t.name()
    );
    assert!(t.stages().is_empty() && t.stride() == 0 && t.basis_index().is_none());
    assert!(matches!(t.row(0), Err(ReaderError::NotPalette { .. })));
    assert!(t.stage_palette(0).is_err());
    check_raw_slices(t);
    let Some(want) = raw_to_f32(t.dtype(), bytes) else {
        assert!(matches!(t.decode(), Err(ReaderError::NotFloat { .. })));
        // The dtype is checked before anything else, so any buffer will do.
        assert!(matches!(
            t.decode_row_into(0, &mut [0f32; 0]),
            Err(ReaderError::NotFloat { .. })
        ));
        return;
    };
    if !heavy {
        return;
    }
    let all = t
        .decode()
        .unwrap_or_else(|e| panic!("{}: decode: {e}", t.name()));
    assert_eq!(all.len(), t.numel(), "{}: decode length", t.name());
    assert_same_f32(t.name(), &all, &want);
    let mut row = vec![0f32; t.n_cols()];
    for r in 0..t.n_rows() {
        t.decode_row_into(r, &mut row)
            .unwrap_or_else(|e| panic!("{}: row {r}: {e}", t.name()));
        assert_same_f32(t.name(), &row, &all[r * t.n_cols()..(r + 1) * t.n_cols()]);
    }
}

fn check_palette_tensor(h: &Hhtld<'_>, tables: &FileTables, t: &TensorView<'_>, heavy: bool) {
    let layout = h.layout();
    let rec = t.record();
    let n_cols = t.n_cols();
    assert!(!t.stages().is_empty() && t.stages().len() <= 4);
    assert!(t.raw_bytes().is_none());
    assert!(matches!(
        t.raw_slice::<u8>(),
        Err(ReaderError::NotRaw { .. })
    ));
    // The layout's stage table is what spec §4 derives from the palettes.
    let mut offset = 0;
    for (s, st) in t.stages().iter().enumerate() {
        let p = t.stage_palette(s).expect("stage palette");
        assert_eq!(p.index(), st.palette as usize);
        assert_eq!((p.d(), p.bits()), (st.d, st.bits));
        assert!(
            st.d >= 1 && st.d <= n_cols,
            "R-PALETTE-FIT let d = {} through",
            st.d
        );
        assert_eq!(st.code_offset, offset);
        assert_eq!(
            st.cb,
            (n_sub(n_cols, st.d) * usize::from(st.bits)).div_ceil(8)
        );
        offset += st.cb;
    }
    assert_eq!(t.stride(), offset);
    assert_eq!(
        rec.data.len(),
        t.n_rows() * t.stride(),
        "{}: ENTRY length",
        t.name()
    );
    assert!(t.stage_palette(t.stages().len()).is_err());
    // The row is checked before the buffer length.
    assert!(matches!(
        t.decode_row_into(t.n_rows(), &mut [0f32; 0]),
        Err(ReaderError::RowOutOfRange { .. })
    ));
    assert!(matches!(
        t.row(t.n_rows()),
        Err(ReaderError::RowOutOfRange { .. })
    ));
    if !heavy {
        return;
    }
    let mut row_buf = vec![0f32; n_cols];
    let all = t
        .decode()
        .unwrap_or_else(|e| panic!("{}: decode: {e}", t.name()));
    assert_eq!(all.len(), t.numel(), "{}: decode length", t.name());
    for r in 0..t.n_rows() {
        let row = t
            .row(r)
            .unwrap_or_else(|e| panic!("{}: row {r}: {e}", t.name()));
        assert_eq!(row.stage_count(), t.stages().len());
        assert_eq!(row.all_codes().len(), t.stride());
        for (s, st) in t.stages().iter().enumerate() {
            let codes = row.codes(s).expect("stage codes");
            assert_eq!(codes.len(), st.cb);
            let ns = n_sub(n_cols, st.d);
            for j in 0..ns {
                let c = row.code(s, j).expect("code in range");
                assert!(
                    u32::from(c) < 1 << st.bits,
                    "code {c} wider than {} bits",
                    st.bits
                );
            }
            assert_eq!(row.code(s, ns), None, "code past n_sub");
        }
        assert_eq!(row.codes(t.stages().len()), None);
        assert_eq!(row.scale().is_some(), rec.scale.is_some());
        assert_eq!(row.slot_l().is_some(), rec.slot.is_some());
        t.decode_row_into(r, &mut row_buf)
            .unwrap_or_else(|e| panic!("{}: row {r}: {e}", t.name()));
        let want = tables.decode_row(layout, h.bytes(), t.index(), r);
        assert_same_f32(&format!("{} row {r} vs spec", t.name()), &row_buf, &want);
        assert_same_f32(
            &format!("{} row {r} vs decode()", t.name()),
            &all[r * n_cols..(r + 1) * n_cols],
            &row_buf,
        );
    }
}

/// Every view of a validated file, with the work bounded by [`WORK_BUDGET`].
pub fn views(h: &Hhtld<'_>) {
    let layout = h.layout();
    let mut budget = WORK_BUDGET;
    let mut spend = |n: usize| {
        let ok = n <= budget;
        if ok {
            budget -= n;
        }
        ok
    };

    // Verification: the error names the first bad section.
    let statuses = h.verify_sections();
    assert_eq!(statuses.len(), h.sections().len());
    match (h.verify(), statuses.iter().find(|s| !s.ok())) {
        (Ok(()), None) => {}
        (
            Err(ReaderError::Crc {
                section,
                stored,
                computed,
                ..
            }),
            Some(bad),
        ) => {
            assert_eq!(
                (section, stored, computed),
                (bad.index, bad.stored, bad.computed)
            );
        }
        // Every CRC matches: only the rules open leaves to verification
        // (non-zero padding, a metadata value that is not UTF-8) can fail,
        // and the layout's own check names the same byte.
        (Err(ReaderError::Format(e)), None) if matches!(e.rule(), "R-PADDING" | "R-METADATA") => {
            assert_eq!(
                h.layout().check_deferred(h.bytes()),
                Err(e),
                "verify and check_deferred disagree"
            );
        }
        (res, bad) => panic!("verify() = {res:?} but verify_sections() says {bad:?}"),
    }

    assert_eq!(h.version().0, 1, "R-MAJOR let another major through");
    assert_eq!(h.layout().file_len, h.bytes().len());

    // Out-of-range indices are errors, not panics.
    assert!(h.tensor(h.tensor_count()).is_err());
    assert!(h.palette(h.palette_count()).is_err());
    assert!(h.basis(h.basis_count()).is_err());
    assert!(h.fisher_for_palette(h.palette_count()).is_none());
    assert!(h.tensor_record(h.tensor_count()).is_none());

    // Metadata: strictly increasing keys, each found by lookup.
    // Values are checked when read: the raw listing is total, and every
    // value either reads or is an R-METADATA error.
    let raw: Vec<(&str, &[u8])> = h.metadata_raw().collect();
    let meta: Vec<(&str, &str)> = h.metadata_raw().map(|(k, _)| (k, "")).collect();
    for (r, m) in h.metadata().zip(&raw) {
        match r {
            Ok((k, v)) => assert_eq!((k, v.as_bytes()), *m),
            Err(e) => assert_eq!(
                e.format_error().map(|f| f.rule()),
                Some("R-METADATA"),
                "{e}"
            ),
        }
    }
    for w in meta.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "metadata keys out of order: {:?}",
            (w[0].0, w[1].0)
        );
    }
    for (r, (k, _)) in h.metadata().zip(&raw) {
        let by_key = h.metadata_value(k).map_err(|e| e.to_string());
        assert_eq!(by_key, r.map(|(_, v)| Some(v)).map_err(|e| e.to_string()));
    }

    // Palettes: every stored entry, in its element type only.
    for i in 0..h.palette_count() {
        let p = h
            .palette(i)
            .unwrap_or_else(|e| panic!("palette {i} of a 64-aligned file: {e}"));
        assert_eq!(p.index(), i);
        assert!(p.k() >= 1 && p.k() <= p.stored_entries());
        let n = p.stored_entries() * p.d();
        assert_eq!(p.entries().len(), n);
        if spend(n) {
            let all = match p.entries() {
                ElemSlice::F32(v) => v.to_vec(),
                ElemSlice::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
                ElemSlice::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
            };
            for e in 0..p.stored_entries() {
                let want = &all[e * p.d()..(e + 1) * p.d()];
                let got = p.entry_f32_vec(e).expect("stored entry");
                assert_same_f32("palette entry", &got, want);
                let typed = [
                    p.entry_f32(e).is_some(),
                    p.entry_f16(e).is_some(),
                    p.entry_bf16(e).is_some(),
                ];
                let which = match p.elem() {
                    ElemType::F32 => 0,
                    ElemType::F16 => 1,
                    ElemType::Bf16 => 2,
                };
                for (t, present) in typed.iter().enumerate() {
                    assert_eq!(*present, t == which, "palette {i} entry {e} typed view");
                }
            }
        }
        let past = p.stored_entries();
        assert!(p.entry_f32_vec(past).is_none());
        assert!(
            p.entry_f32(past).is_none()
                && p.entry_f16(past).is_none()
                && p.entry_bf16(past).is_none()
        );

        // FisherZ: present exactly when the record says so; k x k values.
        let f = h.fisher_for_palette(i);
        assert_eq!(f.is_some(), p.fisher_index().is_some());
        if let Some(f) = f {
            assert_eq!((f.palette(), f.k()), (i, p.k()));
            assert_eq!(f.table().len(), f.k() * f.k());
            assert!(f.gamma().is_finite() && f.gamma() > 0.0);
            if spend(f.k() * f.k()) {
                for a in 0..f.k() {
                    for b in 0..f.k() {
                        let (q, rho) = f.get(a, b).expect("in range");
                        assert_eq!(q, f.table()[a * f.k() + b]);
                        assert!(same_f32(rho, (f.gamma() * f32::from(q)).tanh()));
                    }
                }
            }
            assert!(f.get(f.k(), 0).is_none() && f.get(0, f.k()).is_none());
        }
    }

    // Bases: 8 rows of n_cols.
    for i in 0..h.basis_count() {
        let b = h
            .basis(i)
            .unwrap_or_else(|e| panic!("basis {i} of a 64-aligned file: {e}"));
        assert_eq!((b.index(), b.rows()), (i, 8));
        assert_eq!(b.data().len(), 8 * b.n_cols());
        for r in 0..8 {
            assert_eq!(b.row(r).map(|s| s.len()), Some(b.n_cols()));
        }
        assert!(b.row(8).is_none());
    }

    let tables = FileTables::new(layout, h.bytes());
    // The content checks decode without the expansion limit (the work
    // budget bounds them); the limit itself is checked on `h`'s default.
    let unlimited = h.clone().with_max_expansion(u64::MAX);
    for (i, guarded) in h.tensors().enumerate() {
        check_expansion_guard(h, &guarded);
        let t = unlimited.tensor(i).expect("same index");
        assert_eq!(t.index(), i);
        assert!(!t.name().is_empty());
        assert_eq!(
            h.tensor_by_name(t.name()).map(|x| x.index()).ok(),
            Some(i),
            "names are unique"
        );
        assert_eq!(t.shape().len(), t.ndims());
        let (rows, cols) = match t.shape() {
            [] => (1, 1),
            [c] => (1, *c),
            [r, rest @ ..] => (*r, rest.iter().product()),
        };
        assert_eq!((t.n_rows() as u64, t.n_cols() as u64), (rows, cols));
        assert_eq!(t.numel(), t.n_rows() * t.n_cols());
        let mut one = [0f32; 1];
        let wrong: &mut [f32] = if t.numel() == 1 { &mut [] } else { &mut one };
        assert!(matches!(
            t.decode_into(wrong),
            Err(ReaderError::OutputLen { .. } | ReaderError::NotFloat { .. })
        ));
        // Rows are visited even when empty and a row buffer has n_cols
        // values, so both count as work too.
        let work = t.numel().max(t.n_rows()).max(t.n_cols());
        let heavy = spend(work.saturating_mul(t.stages().len().max(1)));
        match t.encoding() {
            Encoding::Raw => check_raw_tensor(&t, heavy),
            Encoding::Palette => check_palette_tensor(h, &tables, &t, heavy),
        }
    }
}

/// Spec §7 "Expansion limit": a whole-tensor decode of more than
/// `max_expansion x file length` bytes is refused before allocating, with
/// the figures in the error; anything within it is not refused for size.
fn check_expansion_guard(h: &Hhtld<'_>, t: &TensorView<'_>) {
    let budget = h.expansion_budget();
    assert_eq!(
        budget,
        h.max_expansion().saturating_mul(h.bytes().len() as u64)
    );
    let decoded = (t.numel() as u64).saturating_mul(4);
    assert_eq!(t.decoded_bytes::<f32>(), decoded);
    assert_eq!(t.decoded_bytes::<bf16>(), decoded / 2);
    let float = t.encoding() == Encoding::Palette || raw_to_f32(t.dtype(), &[]).is_some();
    let over = decoded > budget;
    match t.check_expansion::<f32>() {
        Ok(()) => assert!(
            !over,
            "{}: {decoded} bytes over {budget} let through",
            t.name()
        ),
        Err(ReaderError::ExpansionLimit {
            decoded: d,
            limit,
            file_len,
            ..
        }) => {
            assert!(
                over,
                "{}: {decoded} bytes within {budget} refused",
                t.name()
            );
            assert_eq!(
                (d, limit, file_len),
                (decoded, budget, h.bytes().len() as u64)
            );
        }
        Err(e) => panic!("{}: check_expansion: {e}", t.name()),
    }
    if over && float {
        // Refused before any allocation, whatever the size.
        assert!(matches!(
            t.decode(),
            Err(ReaderError::ExpansionLimit { .. })
        ));
    }
    assert_eq!(
        t.check_expansion::<bf16>().is_err(),
        decoded / 2 > budget,
        "{}: bf16 output is half the bytes",
        t.name()
    );
}

/// The `open` target: `data` as given, then with its CRCs recomputed so
/// the rules behind the header CRC are reached too.
pub fn open_target(data: &[u8]) {
    let _ = open(data);
    let mut fixed = data.to_vec();
    if crate::repair::fix_crcs(&mut fixed) && fixed != data {
        let _ = open(&fixed);
    }
}

/// The `decode` target: CRCs recomputed (so verification passes and
/// fuzzed directories are reached), opened aligned, every view checked.
pub fn decode(data: &[u8]) {
    let mut fixed = data.to_vec();
    crate::repair::fix_crcs(&mut fixed);
    let Ok(file) = HhtldFile::copy_from_slice(&fixed) else {
        return;
    };
    let h = file.view();
    // With the CRCs recomputed, verification can only fail on what open
    // does not read: non-zero padding, a metadata value that is not UTF-8.
    if let Err(e) = h.verify() {
        let rule = e.format_error().map(|f| f.rule());
        assert!(
            matches!(rule, Some("R-PADDING" | "R-METADATA")),
            "CRCs were just recomputed: {e:?}"
        );
    }
    report(&h);
    views(&h);
}
