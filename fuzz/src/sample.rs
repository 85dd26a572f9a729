//! Small valid files built with the public Writer, for seeds and as the
//! base of the `mutate` target. Deterministic: same bytes on every run.

use std::io::Cursor;

use hhtld_format::{Dtype, ElemType, Regime, Role};
use hhtld_writer::builder::{
    EncodedTensor, PaletteSpec, Quality, RawTensor, SlotL, Stage, TensorHeader, Writer,
};
use hhtld_writer::codec::{encode_group, CodecSpec, KmeansParams, Matrix};

use crate::Rng;

/// Name, dtype, shape, role and bytes of a raw sample tensor.
type RawSpec<'a> = (&'a str, Dtype, &'a [u64], Role, Vec<u8>);

fn finish(w: Writer<Cursor<Vec<u8>>>) -> Vec<u8> {
    let (out, _) = w.finish_into_inner().expect("finish sample");
    out.into_inner()
}

/// `n` codes below `k`, deterministic.
fn codes(rng: &mut Rng, n: usize, k: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() % k as u64) as u8).collect()
}

/// A file with every section kind and feature: 4- and 8-bit palettes in
/// bf16, f16 and f32; a palette shared by two tensors; computed and explicit
/// FisherZ tables; SlotL with bases of two widths; scales of every element
/// type; multi-stage tensors; a tensor whose width is not a multiple of
/// `d`; raw tensors of several dtypes (I64 among them) and ranks 0 to 3;
/// an empty raw tensor; metadata.
pub fn sample_file() -> Vec<u8> {
    let mut rng = Rng::new(0x6868_746c_6466_757a);
    let mut w = Writer::new(Cursor::new(Vec::new())).expect("writer");
    // Drawn in this order, which fixes the bytes of the committed seed.
    let scalar: Vec<f32> = (0..16).map(|i| i as f32 * 0.125 - 1.0).collect();
    let wide = rng.values(160, -2.0, 2.0);
    let odd = rng.values(15, -1.0, 1.0);
    let long = rng.values(24, -0.5, 0.5);
    let specs = [
        (16, 1, 4, ElemType::Bf16, &scalar, "scalar palette"),
        (40, 4, 8, ElemType::F16, &wide, "8-bit palette"),
        (5, 3, 4, ElemType::F32, &odd, "d = 3 palette"),
        (3, 8, 4, ElemType::Bf16, &long, "d = 8 palette"),
    ];
    let [p_scalar, p_wide, p_odd, p_long] = specs.map(|(k, d, bits, elem, values, what)| {
        w.add_palette(PaletteSpec {
            k,
            d,
            bits,
            elem,
            values,
        })
        .expect(what)
    });
    w.add_fisher_z(p_wide).expect("computed FisherZ");
    let mut table = vec![0i8; 25];
    for i in 0..5 {
        for j in 0..5 {
            table[i * 5 + j] = if i == j {
                127
            } else {
                (i as i8 - j as i8).abs() * -9
            };
        }
    }
    w.add_fisher_z_table(p_odd, 0.015, &table)
        .expect("explicit FisherZ");
    let b8 = w
        .add_basis(8, ElemType::F32, &rng.values(64, -0.3, 0.3))
        .expect("basis 8");
    let b7 = w
        .add_basis(7, ElemType::F16, &rng.values(56, -0.3, 0.3))
        .expect("basis 7");

    // Two stages (d = 4 then d = 1), f16 scales, SlotL, quality.
    let c0 = codes(&mut rng, 4 * 2, 40);
    let c1 = codes(&mut rng, 4 * 8, 16);
    let coef: Vec<[i8; 8]> = (0..4)
        .map(|r| core::array::from_fn(|i| (r * 8 + i) as i8 * 3 - 40))
        .collect();
    w.add_encoded_tensor(
        EncodedTensor::new(
            "layers.0.attn.q.weight",
            Dtype::F32,
            &[4, 8],
            Role::AttnQ,
            Regime::Argmax,
            &[Stage::new(p_wide, &c0), Stage::new(p_scalar, &c1)],
        )
        .with_scale(ElemType::F16, &[0.5, 1.0, 1.5, 2.0])
        .with_slot_l(SlotL {
            basis: b8,
            coef: &coef,
            scale: 0.01,
        })
        .with_quality(Some(Quality {
            rho_median: 0.99,
            rho_p5: 0.95,
            rho_min: 0.9,
            rel_fro: 0.05,
        })),
    )
    .expect("two-stage tensor");
    // Shares the 8-bit palette; rank 3; no scale.
    let c = codes(&mut rng, 4 * 2, 40);
    w.add_encoded_tensor(EncodedTensor::new(
        "layers.0.attn.k.weight",
        Dtype::Bf16,
        &[2, 2, 8],
        Role::AttnK,
        Regime::Index,
        &[Stage::new(p_wide, &c)],
    ))
    .expect("shared-palette tensor");
    // Width 7 with d = 3: the last sub-vector covers one column; bf16
    // scales and a SlotL basis of width 7.
    let c = codes(&mut rng, 3 * 3, 5);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "layers.0.mlp.down.weight",
            Dtype::F64,
            &[3, 7],
            Role::MlpDown,
            Regime::Argmax,
            &[Stage::new(p_odd, &c)],
        )
        .with_scale(ElemType::Bf16, &[1.0, -0.75, 3.0])
        .with_slot_l(SlotL {
            basis: b7,
            coef: &[
                [1, -2, 3, -4, 5, -6, 7, -8],
                [0; 8],
                [127, -127, 0, 0, 1, 1, -1, -1],
            ],
            scale: 0.002,
        }),
    )
    .expect("odd-width tensor");
    // Three stages of three palette shapes, f32 scales.
    let (a, b, c) = (
        codes(&mut rng, 2, 3),
        codes(&mut rng, 16, 16),
        codes(&mut rng, 2 * 3, 5),
    );
    w.add_encoded_tensor(
        EncodedTensor::new(
            "layers.0.mlp.up.weight",
            Dtype::F16,
            &[2, 8],
            Role::MlpUp,
            Regime::Argmax,
            &[
                Stage::new(p_long, &a),
                Stage::new(p_scalar, &b),
                Stage::new(p_odd, &c),
            ],
        )
        .with_scale(ElemType::F32, &[0.25, 4.0])
        .with_quality(Some(Quality {
            rho_median: 0.5,
            rho_p5: -0.25,
            rho_min: -1.0,
            rel_fro: 0.0,
        })),
    )
    .expect("three-stage tensor");

    let i64s: Vec<u8> = [-3i64, 0, i64::MAX]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f32s: Vec<u8> = rng
        .values(6, -1.0, 1.0)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let raws: [RawSpec; 7] = [
        (
            "embeddings.position_ids",
            Dtype::I64,
            &[3],
            Role::Other,
            i64s,
        ),
        (
            "layers.0.attn.q.bias",
            Dtype::F32,
            &[2, 3],
            Role::Bias,
            f32s,
        ),
        (
            "layers.0.norm.weight",
            Dtype::Bf16,
            &[4],
            Role::Norm,
            vec![0x80, 0x3f, 0, 0x40, 0, 0xc0, 0x49, 0x40],
        ),
        (
            "mask",
            Dtype::Bool,
            &[2, 2, 2],
            Role::Other,
            vec![1, 0, 0, 1, 1, 1, 0, 0],
        ),
        (
            "temperature",
            Dtype::F64,
            &[],
            Role::Other,
            0.7f64.to_le_bytes().to_vec(),
        ),
        ("tokens", Dtype::U8, &[5], Role::Other, b"hhtld".to_vec()),
        ("empty", Dtype::F32, &[0, 5], Role::Other, Vec::new()),
    ];
    for (name, dtype, shape, role, bytes) in &raws {
        w.add_raw_tensor(RawTensor {
            header: TensorHeader {
                name,
                dtype: *dtype,
                shape,
                role: *role,
                regime: Regime::Passthrough,
            },
            bytes,
        })
        .expect("raw tensor");
    }
    w.set_metadata("format", "hhtld").expect("metadata");
    w.set_metadata("source", "fuzz sample").expect("metadata");
    w.set_metadata("empty", "").expect("metadata");
    finish(w)
}

/// A file with no tensors: STRINGS and DIRECTORY only.
pub fn empty_file() -> Vec<u8> {
    finish(Writer::new(Cursor::new(Vec::new())).expect("writer"))
}

/// The output of the real codec: a 16 x 24 matrix and a 5 x 24 one
/// encoded together with two stages, row scales and SlotL.
pub fn codec_file() -> Vec<u8> {
    let mut rng = Rng::new(7);
    let a = rng.values(16 * 24, -1.0, 1.0);
    let b = rng.values(5 * 24, -3.0, 3.0);
    let spec = CodecSpec {
        k: 16,
        kmeans: KmeansParams {
            sample: 256,
            iters: 3,
            ..KmeansParams::default()
        },
        ..CodecSpec::vq(4, 2).with_row_scale(true).with_slot_l(true)
    };
    let mats = [
        Matrix::new(&a, 16, 24).expect("matrix"),
        Matrix::new(&b, 5, 24).expect("matrix"),
    ];
    let g = encode_group(&mats, &spec).expect("encode");
    let mut w = Writer::new(Cursor::new(Vec::new())).expect("writer");
    let ids = w.add_group_objects(&g, false).expect("codec palettes");
    for (i, m) in g.tensors.iter().enumerate() {
        let header = TensorHeader {
            name: &format!("group.{i}.weight"),
            dtype: Dtype::F32,
            shape: &[m.n_rows as u64, m.n_cols as u64],
            role: Role::MlpUp,
            regime: Regime::Argmax,
        };
        w.add_group_member(&g, &ids, i, header, None)
            .expect("codec tensor");
    }
    finish(w)
}

/// A tensor large enough (64 x 1100 values) for the reader's parallel
/// decode, with a width that is not a multiple of its palette's `d` = 16.
pub fn parallel_file() -> Vec<u8> {
    let mut rng = Rng::new(11);
    let mut w = Writer::new(Cursor::new(Vec::new())).expect("writer");
    let p = w
        .add_palette(PaletteSpec {
            k: 16,
            d: 16,
            bits: 4,
            elem: ElemType::Bf16,
            values: &rng.values(256, -1.0, 1.0),
        })
        .expect("palette");
    let (rows, cols) = (64usize, 1100usize);
    let c = codes(&mut rng, rows * cols.div_ceil(16), 16);
    let scales = rng.values(rows, 0.5, 2.0);
    w.add_encoded_tensor(
        EncodedTensor::new(
            "wide",
            Dtype::Bf16,
            &[rows as u64, cols as u64],
            Role::TokenEmbedding,
            Regime::Index,
            &[Stage::new(p, &c)],
        )
        .with_scale(ElemType::F16, &scales),
    )
    .expect("wide tensor");
    finish(w)
}

/// Every seed file, by name.
pub fn seed_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("sample.hhtld", sample_file()),
        ("empty.hhtld", empty_file()),
        ("codec.hhtld", codec_file()),
        ("parallel.hhtld", parallel_file()),
    ]
}
