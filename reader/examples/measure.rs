//! Measures open (validation), verify and decode speed on writer-made files.
//!
//! `cargo build --release -p hhtld-reader --example measure && target/release/examples/measure`

use std::io::Cursor;
use std::time::Instant;

use hhtld_format::{Dtype, ElemType, Regime, Role};
use hhtld_reader::HhtldFile;
use hhtld_writer::builder::{EncodedTensor, PaletteSpec, RawTensor, Stage, TensorHeader, Writer};

fn pattern(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0
        })
        .collect()
}

/// Median wall time of `runs` calls, in seconds.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(f());
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("hhtld-measure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Many small tensors: open cost is per directory record.
    for n in [1_000usize, 10_000, 100_000] {
        let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
        let p = w
            .add_palette(PaletteSpec {
                k: 16,
                d: 4,
                bits: 4,
                elem: ElemType::Bf16,
                values: &pattern(64, 1),
            })
            .unwrap();
        let codes = vec![3u8; 4 * 2];
        for i in 0..n {
            let name = format!("model.layers.{i}.weight");
            if i % 2 == 0 {
                w.add_raw_tensor(RawTensor {
                    header: TensorHeader {
                        name: &name,
                        dtype: Dtype::F32,
                        shape: &[4],
                        role: Role::Bias,
                        regime: Regime::Passthrough,
                    },
                    bytes: &[0; 16],
                })
                .unwrap();
            } else {
                w.add_encoded_tensor(EncodedTensor::new(
                    &name,
                    Dtype::F32,
                    &[4, 8],
                    Role::MlpUp,
                    Regime::Argmax,
                    &[Stage::new(p, &codes)],
                ))
                .unwrap();
            }
        }
        let (out, _) = w.finish_into_inner().unwrap();
        let path = dir.join(format!("many-{n}.hhtld"));
        std::fs::write(&path, out.get_ref()).unwrap();
        let len = out.get_ref().len();
        let open = time(9, || HhtldFile::open(&path).unwrap());
        let f = HhtldFile::open(&path).unwrap();
        let lookup = time(9, || {
            let h = f.view();
            (0..1000)
                .filter(|i| {
                    h.tensor_by_name(&format!("model.layers.{}.weight", i * 7 % n))
                        .is_ok()
                })
                .count()
        });
        println!(
            "open {n:>6} tensors ({:.1} MB): {:.2} ms ({:.0} ns/tensor); 1000 name lookups {:.2} ms",
            len as f64 / 1e6,
            open * 1e3,
            open * 1e9 / n as f64,
            lookup * 1e3
        );
    }

    // One large encoded tensor and one large raw tensor.
    let (rows, cols) = (4096usize, 4096usize);
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let pal = |w: &mut Writer<_>, seed| {
        w.add_palette(PaletteSpec {
            k: 256,
            d: 4,
            bits: 8,
            elem: ElemType::Bf16,
            values: &pattern(1024, seed),
        })
        .unwrap()
    };
    let (a, b) = (pal(&mut w, 1), pal(&mut w, 2));
    let n_sub = cols / 4;
    let c0: Vec<u8> = (0..rows * n_sub).map(|i| (i * 7 % 256) as u8).collect();
    let c1: Vec<u8> = (0..rows * n_sub).map(|i| (i * 13 % 256) as u8).collect();
    w.add_encoded_tensor(
        EncodedTensor::new(
            "big.w",
            Dtype::Bf16,
            &[rows as u64, cols as u64],
            Role::MlpUp,
            Regime::Argmax,
            &[Stage::new(a, &c0), Stage::new(b, &c1)],
        )
        .with_scale(ElemType::F16, &pattern(rows, 3)),
    )
    .unwrap();
    let raw = vec![7u8; 256 << 20];
    w.add_raw_tensor(RawTensor::passthrough(
        "big.raw",
        Dtype::U8,
        &[raw.len() as u64],
        &raw,
    ))
    .unwrap();
    let (out, _) = w.finish_into_inner().unwrap();
    let path = dir.join("big.hhtld");
    std::fs::write(&path, out.get_ref()).unwrap();
    let len = out.get_ref().len();
    drop(out);
    let f = HhtldFile::open(&path).unwrap();
    let h = f.view();
    h.verify().unwrap();
    let verify = time(5, || h.verify().unwrap());
    println!(
        "verify {:.0} MB: {:.1} ms ({:.1} GB/s, {} threads)",
        len as f64 / 1e6,
        verify * 1e3,
        len as f64 / verify / 1e9,
        rayon::current_num_threads()
    );
    let one_thread = time(5, || crc32fast::hash(f.bytes()));
    println!(
        "  (crc32fast on one thread: {:.1} GB/s)",
        len as f64 / one_thread / 1e9
    );
    let t = h.tensor_by_name("big.w").unwrap();
    let mut buf = vec![0f32; rows * cols];
    let whole = time(5, || t.decode_into(&mut buf).unwrap());
    let mut row = vec![0f32; cols];
    let one = time(5, || {
        for r in 0..rows {
            t.decode_row_into(r, &mut row).unwrap();
        }
    });
    let el = (rows * cols) as f64;
    println!(
        "decode {rows}x{cols} (2 stages d=4 bf16, f16 scale): decode_into {:.1} ms ({:.2} Gelem/s); row by row {:.1} ms ({:.2} Gelem/s)",
        whole * 1e3,
        el / whole / 1e9,
        one * 1e3,
        el / one / 1e9
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
