//! Files made by the real writer (`hhtld_writer::builder::Writer`) read back
//! through the reader: every value written is the value read.

#[path = "../../format/tests/common/mod.rs"]
mod asm;

use std::io::Cursor;

use asm::pattern;

use half::f16;
use hhtld_format::encode::round_to_elem;
use hhtld_format::{Dtype, ElemType, Encoding, Regime, Role};
use hhtld_reader::{HhtldFile, ReaderError};
use hhtld_writer::builder::{
    EncodedTensor, PaletteSpec, Quality, RawTensor, SlotL, Stage, TensorHeader, Writer,
};
use zerocopy::IntoBytes;

struct Written {
    bytes: Vec<u8>,
    p0: Vec<f32>,
    p1: Vec<f32>,
    basis: Vec<f32>,
    codes0: Vec<u8>,
    codes1: Vec<u8>,
    scales: Vec<f32>,
    coef: Vec<[i8; 8]>,
    raw: Vec<f16>,
}

const ROWS: usize = 6;
const COLS: usize = 11;
const D0: usize = 3; // partial last sub-vector: 11 = 3 x 3 + 2
const N0: usize = COLS.div_ceil(D0);
const N1: usize = COLS; // d = 1, odd count of 4-bit codes

fn write() -> Written {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let p0 = pattern(40 * D0, 1);
    let p1 = pattern(9, 2);
    let a = w
        .add_palette(PaletteSpec {
            k: 40,
            d: D0,
            bits: 8,
            elem: ElemType::Bf16,
            values: &p0,
        })
        .unwrap();
    let b = w
        .add_palette(PaletteSpec {
            k: 9,
            d: 1,
            bits: 4,
            elem: ElemType::F16,
            values: &p1,
        })
        .unwrap();
    w.add_fisher_z(a).unwrap();
    let basis = pattern(8 * COLS, 3);
    let bid = w.add_basis(COLS, ElemType::F32, &basis).unwrap();
    let codes0: Vec<u8> = (0..ROWS * N0).map(|i| (i * 7 % 40) as u8).collect();
    let codes1: Vec<u8> = (0..ROWS * N1).map(|i| (i * 5 % 9) as u8).collect();
    let scales = pattern(ROWS, 4);
    let coef: Vec<[i8; 8]> = (0..ROWS)
        .map(|r| core::array::from_fn(|i| (r as i32 * 37 - i as i32 * 19) as i8))
        .collect();
    w.add_encoded_tensor(
        EncodedTensor::new(
            "layer.0.w",
            Dtype::Bf16,
            &[ROWS as u64, COLS as u64],
            Role::MlpDown,
            Regime::Argmax,
            &[Stage::new(a, &codes0), Stage::new(b, &codes1)],
        )
        .with_scale(ElemType::F16, &scales)
        .with_slot_l(SlotL {
            basis: bid,
            coef: &coef,
            scale: 0.0625,
        })
        .with_quality(Some(Quality {
            rho_median: 0.97,
            rho_p5: 0.93,
            rho_min: 0.5,
            rel_fro: 0.2,
        })),
    )
    .unwrap();
    let raw: Vec<f16> = pattern(COLS, 5).iter().map(|&v| f16::from_f32(v)).collect();
    w.add_raw_tensor(RawTensor {
        header: TensorHeader {
            name: "layer.0.b",
            dtype: Dtype::F16,
            shape: &[COLS as u64],
            role: Role::Bias,
            regime: Regime::Passthrough,
        },
        bytes: raw.as_bytes(),
    })
    .unwrap();
    w.set_metadata("source", "roundtrip").unwrap();
    w.set_metadata("arch", "test").unwrap();
    let (out, report) = w.finish_into_inner().unwrap();
    let bytes = out.into_inner();
    assert_eq!(report.file_len, bytes.len() as u64);
    Written {
        bytes,
        p0,
        p1,
        basis,
        codes0,
        codes1,
        scales,
        coef,
        raw,
    }
}

#[test]
fn writer_files_read_back_exactly() {
    let wr = write();
    let f = HhtldFile::from_vec(wr.bytes.clone()).unwrap();
    let h = f.view();
    h.verify().unwrap();
    assert_eq!(
        h.metadata().map(Result::unwrap).collect::<Vec<_>>(),
        [("arch", "test"), ("source", "roundtrip")]
    );

    let p = h.palette(0).unwrap();
    assert_eq!(
        (p.k(), p.d(), p.bits(), p.elem()),
        (40, D0, 8, ElemType::Bf16)
    );
    for e in 0..40 {
        let want: Vec<f32> = wr.p0[e * D0..(e + 1) * D0]
            .iter()
            .map(|&v| round_to_elem(v, ElemType::Bf16))
            .collect();
        assert_eq!(p.entry_f32_vec(e).unwrap(), want);
    }
    let fz = h.fisher_for_palette(0).unwrap();
    assert_eq!(fz.k(), 40);
    for i in 0..40 {
        for j in 0..40 {
            assert_eq!(
                fz.get(i, j).unwrap().0,
                fz.get(j, i).unwrap().0,
                "symmetric"
            );
        }
    }
    assert!(h.fisher_for_palette(1).is_none());

    let t = h.tensor_by_name("layer.0.w").unwrap();
    assert_eq!(t.encoding(), Encoding::Palette);
    assert_eq!(t.role(), Role::MlpDown);
    assert_eq!(t.quality().unwrap().rho_p5, 0.93);
    for r in 0..ROWS {
        let row = t.row(r).unwrap();
        for j in 0..N0 {
            assert_eq!(row.code(0, j), Some(wr.codes0[r * N0 + j]));
        }
        for j in 0..N1 {
            assert_eq!(row.code(1, j), Some(wr.codes1[r * N1 + j]));
        }
        assert_eq!(row.slot_l(), Some(&wr.coef[r]));
        assert_eq!(
            row.scale(),
            Some(round_to_elem(wr.scales[r], ElemType::F16))
        );
    }

    // Decode against the spec's pseudo-code over the values as stored.
    let p0: Vec<f32> = wr
        .p0
        .iter()
        .map(|&v| round_to_elem(v, ElemType::Bf16))
        .collect();
    let p1: Vec<f32> = wr
        .p1
        .iter()
        .map(|&v| round_to_elem(v, ElemType::F16))
        .collect();
    let got = t.decode().unwrap();
    for r in 0..ROWS {
        for c in 0..COLS {
            let mut acc = 0.0f32;
            acc += p0[wr.codes0[r * N0 + c / D0] as usize * D0 + c % D0];
            acc += p1[wr.codes1[r * N1 + c] as usize];
            acc *= round_to_elem(wr.scales[r], ElemType::F16);
            let mut s = 0.0f32;
            for i in 0..8 {
                s += wr.coef[r][i] as f32 * wr.basis[i * COLS + c];
            }
            acc += 0.0625 * s;
            assert_eq!(
                got[r * COLS + c].to_bits(),
                acc.to_bits(),
                "row {r} col {c}"
            );
        }
    }

    let b = h.tensor_by_name("layer.0.b").unwrap();
    assert_eq!(b.raw_slice::<f16>().unwrap(), wr.raw.as_slice());
    assert_eq!(
        b.decode().unwrap(),
        wr.raw.iter().map(|v| v.to_f32()).collect::<Vec<_>>()
    );
}

#[test]
fn writer_files_open_from_disk_and_corruption_is_caught() {
    let wr = write();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.hhtld");
    std::fs::write(&path, &wr.bytes).unwrap();
    let f = HhtldFile::open(&path).unwrap();
    f.view().verify().unwrap();
    assert_eq!(f.view().tensor_count(), 2);

    // A byte inside the ENTRY section: open succeeds, verify names the section.
    let entry = f.view().tensor(0).unwrap().record().data_section;
    let at = f.layout().sections[entry as usize].offset;
    let mut bad = wr.bytes.clone();
    bad[at] ^= 0xFF;
    let g = HhtldFile::from_vec(bad).unwrap();
    match g.view().verify() {
        Err(ReaderError::Crc { section, .. }) => assert_eq!(section, entry),
        other => panic!("expected a CRC error, got {other:?}"),
    }
}
