//! The reader's API as a loader sees it: everything is named through
//! `hhtld_reader` alone (this file imports no other hhtld crate), handles
//! are owned and shareable, and decoding to bf16 and f16 gives the f32
//! decode rounded once.

use std::path::{Path, PathBuf};

use hhtld_reader::{
    bf16, f16, Basis, Dtype, ElemSlice, ElemType, Encoding, Fisher, FormatError, Hhtld, HhtldFile,
    KernelError, Layout, MetaEntry, OutElem, Palette, Place, Quality, ReaderError, RefProblem,
    Regime, Role, RowDecoder, RowView, ScaleRef, Section, SectionKind, SectionStatus, SlotRef,
    Stage, Tensor, TensorHandle, TensorId, TensorView,
};

fn vectors() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors/valid");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hhtld"))
        .collect();
    v.sort();
    assert!(v.len() >= 8, "{} vectors", v.len());
    v
}

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64)
}

#[test]
fn every_public_type_is_nameable_from_the_reader_alone() {
    // A function per type: fails to compile if any is missing or private.
    fn named<T: ?Sized>() -> &'static str {
        std::any::type_name::<T>()
    }
    let names = [
        named::<Dtype>(),
        named::<ElemType>(),
        named::<Encoding>(),
        named::<Role>(),
        named::<Regime>(),
        named::<SectionKind>(),
        named::<Quality>(),
        named::<Stage>(),
        named::<Tensor>(),
        named::<Layout>(),
        named::<Section>(),
        named::<Palette>(),
        named::<Basis>(),
        named::<Fisher>(),
        named::<ScaleRef>(),
        named::<SlotRef>(),
        named::<MetaEntry>(),
        named::<FormatError>(),
        named::<Place>(),
        named::<RefProblem>(),
        named::<TensorId>(),
        named::<KernelError>(),
        named::<ElemSlice<'static>>(),
        named::<ReaderError>(),
        named::<HhtldFile>(),
        named::<Hhtld<'static>>(),
        named::<TensorHandle>(),
        named::<TensorView<'static>>(),
        named::<RowView<'static>>(),
        named::<RowDecoder<'static>>(),
        named::<SectionStatus>(),
        named::<bf16>(),
        named::<f16>(),
    ];
    assert!(names.iter().all(|n| !n.is_empty()));
    assert_eq!(<bf16 as OutElem>::DTYPE, Dtype::Bf16);
    assert_eq!(<f16 as OutElem>::DTYPE, Dtype::F16);
    assert_eq!(<f32 as OutElem>::DTYPE, Dtype::F32);
}

/// A loader-like struct that keeps the file and its tensors by name.
struct Loader {
    file: HhtldFile,
    tensors: Vec<TensorHandle>,
}

fn load(path: &Path) -> Loader {
    // The handles outlive this function's locals.
    let file = HhtldFile::open(path).unwrap();
    let tensors = file.tensors().collect();
    Loader { file, tensors }
}

#[test]
fn handles_are_owned_send_sync_and_share_the_mapping() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<HhtldFile>();
    send_sync::<TensorHandle>();

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors/valid/mixed.hhtld");
    let loader = load(&path);
    let copy = loader.file.clone();
    assert_eq!(copy.bytes().as_ptr(), loader.file.bytes().as_ptr());
    assert_eq!(loader.tensors.len(), loader.file.tensor_count());
    let names: Vec<&str> = loader.file.tensor_names().collect();
    for (i, t) in loader.tensors.iter().enumerate() {
        assert_eq!(t.index(), i);
        assert_eq!(t.name(), names[i]);
        assert!(loader.file.contains(t.name()));
        assert_eq!(loader.file.tensor_index(t.name()), Some(i));
        let by_name = loader.file.tensor_by_name(t.name()).unwrap();
        assert_eq!(by_name.index(), i);
        let v = t.view();
        assert_eq!(
            (v.name(), v.dtype(), v.shape(), v.numel()),
            (t.name(), t.dtype(), t.shape(), t.numel())
        );
        assert_eq!(t.raw_bytes(), v.raw_bytes());
    }
    assert!(!loader.file.contains("no.such.tensor"));
    assert!(matches!(
        loader.file.tensor_by_name("no.such.tensor"),
        Err(ReaderError::NoSuchTensor { name }) if name == "no.such.tensor"
    ));
    assert!(matches!(
        loader.file.tensor(loader.file.tensor_count()),
        Err(ReaderError::IndexOutOfRange { what: "tensor", .. })
    ));

    // Decoding on another thread from a moved handle.
    let t = loader.tensors[0].clone();
    let want = t.decode().ok();
    let got = std::thread::spawn(move || t.decode().ok()).join().unwrap();
    assert_eq!(
        got.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        want.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
    );
}

fn bits<T: Copy>(v: &[T], f: impl Fn(T) -> u32) -> Vec<u32> {
    v.iter().map(|&x| f(x)).collect()
}

#[test]
fn bf16_and_f16_are_the_f32_decode_rounded_once_for_whole_rows_and_ranges() {
    let mut checked = 0usize;
    for path in vectors() {
        let file = HhtldFile::open(&path).unwrap();
        for t in file.tensors() {
            let ctx = format!("{} {}", path.display(), t.name());
            if t.encoding() == Encoding::Raw && !is_float(t.dtype()) {
                assert!(
                    matches!(t.decode_as::<bf16>(), Err(ReaderError::NotFloat { .. })),
                    "{ctx}"
                );
                continue;
            }
            let f = t.decode().unwrap();
            let b: Vec<bf16> = t.decode_as().unwrap();
            let h: Vec<f16> = t.decode_as().unwrap();
            // RAW F64 rounds once from f64; everything else goes through
            // an exact f32.
            let raw64 = t.encoding() == Encoding::Raw && t.dtype() == Dtype::F64;
            if !raw64 {
                let fb: Vec<bf16> = f.iter().map(|&x| bf16::from_f32(x)).collect();
                let fh: Vec<f16> = f.iter().map(|&x| f16::from_f32(x)).collect();
                assert_eq!(
                    bits(&b, |x| x.to_bits().into()),
                    bits(&fb, |x| x.to_bits().into()),
                    "{ctx}"
                );
                assert_eq!(
                    bits(&h, |x| x.to_bits().into()),
                    bits(&fh, |x| x.to_bits().into()),
                    "{ctx}"
                );
            }
            let (n_rows, n_cols) = (t.n_rows(), t.n_cols());
            // Each row and a middle range agree with the whole decode.
            let mut row = vec![bf16::ZERO; n_cols];
            for r in 0..n_rows {
                t.decode_row_into(r, &mut row).unwrap();
                assert_eq!(
                    bits(&row, |x| x.to_bits().into()),
                    bits(&b[r * n_cols..(r + 1) * n_cols], |x| x.to_bits().into()),
                    "{ctx} row {r}"
                );
            }
            let (lo, hi) = (n_rows / 3, n_rows - n_rows / 3);
            let mut part = vec![0f32; (hi - lo) * n_cols];
            t.decode_rows_into(lo..hi, &mut part).unwrap();
            assert_eq!(
                bits(&part, f32::to_bits),
                bits(&f[lo * n_cols..hi * n_cols], f32::to_bits),
                "{ctx} rows {lo}..{hi}"
            );
            let mut hpart = vec![f16::ZERO; (hi - lo) * n_cols];
            t.decode_rows_into(lo..hi, &mut hpart).unwrap();
            assert_eq!(
                bits(&hpart, |x| x.to_bits().into()),
                bits(&h[lo * n_cols..hi * n_cols], |x| x.to_bits().into()),
                "{ctx} f16 rows {lo}..{hi}"
            );
            let dec = t.row_decoder().unwrap();
            if n_rows > 0 {
                let mut hrow = vec![f16::ZERO; n_cols];
                dec.decode_row_into(n_rows - 1, &mut hrow).unwrap();
                assert_eq!(
                    bits(&hrow, |x| x.to_bits().into()),
                    bits(&h[(n_rows - 1) * n_cols..], |x| x.to_bits().into()),
                    "{ctx} row decoder"
                );
            }
            // Bad ranges and lengths are typed errors.
            assert!(
                matches!(
                    t.decode_rows_into(0..n_rows + 1, &mut vec![0f32; (n_rows + 1) * n_cols]),
                    Err(ReaderError::RowsOutOfRange { end, .. }) if end == n_rows + 1
                ),
                "{ctx}"
            );
            #[allow(clippy::reversed_empty_ranges)]
            let reversed = t.decode_rows_into(1..0, &mut Vec::<f32>::new());
            assert!(
                matches!(reversed, Err(ReaderError::RowsOutOfRange { .. })),
                "{ctx}"
            );
            assert!(
                matches!(
                    t.decode_rows_into(0..n_rows, &mut vec![bf16::ZERO; n_rows * n_cols + 1]),
                    Err(ReaderError::OutputLen { .. })
                ),
                "{ctx}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} tensors checked");
}

#[test]
fn raw_float_tensors_convert_from_their_stored_dtype() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors/valid/raw-dtypes.hhtld");
    let file = HhtldFile::open(path).unwrap();
    let mut seen = Vec::new();
    for t in file.tensors() {
        let raw = t.raw_bytes().expect("raw-dtypes holds RAW tensors");
        match t.dtype() {
            Dtype::Bf16 => {
                let b: Vec<bf16> = t.decode_as().unwrap();
                let stored: Vec<u8> = b.iter().flat_map(|x| x.to_le_bytes()).collect();
                assert_eq!(stored, raw, "BF16 to bf16 is a copy");
            }
            Dtype::F16 => {
                let h: Vec<f16> = t.decode_as().unwrap();
                let stored: Vec<u8> = h.iter().flat_map(|x| x.to_le_bytes()).collect();
                assert_eq!(stored, raw, "F16 to f16 is a copy");
            }
            Dtype::F64 => {
                let b: Vec<bf16> = t.decode_as().unwrap();
                let want: Vec<bf16> = raw
                    .chunks_exact(8)
                    .map(|c| bf16::from_f64(f64::from_le_bytes(c.try_into().unwrap())))
                    .collect();
                assert_eq!(b, want);
            }
            d if !is_float(d) => {
                assert!(matches!(
                    t.decode_as::<f16>(),
                    Err(ReaderError::NotFloat { dtype, .. }) if dtype == d
                ));
            }
            _ => {}
        }
        seen.push(t.dtype());
    }
    assert!(
        seen.contains(&Dtype::F64) && seen.contains(&Dtype::Bf16),
        "{seen:?}"
    );
}

#[test]
fn released_tensor_pages_read_back_the_same_values() {
    for path in vectors() {
        let file = HhtldFile::open(&path).unwrap();
        let copy = HhtldFile::copy_from_slice(file.bytes()).unwrap();
        let n = file.tensor_count();
        for (i, t) in file.view().tensors().enumerate() {
            if !is_float(t.dtype()) {
                continue;
            }
            let before = t.decode().unwrap();
            file.release_tensor(i).unwrap();
            copy.release_tensor(i).unwrap();
            let after = t.decode().unwrap();
            assert_eq!(
                bits(&before, f32::to_bits),
                bits(&after, f32::to_bits),
                "{} tensor {i}",
                path.display()
            );
        }
        assert!(matches!(
            file.release_tensor(n),
            Err(ReaderError::IndexOutOfRange { index, .. }) if index == n
        ));
    }
}

#[test]
fn prefetch_and_file_order_read_the_same_values() {
    for path in vectors() {
        let file = HhtldFile::open(&path).unwrap();
        let copy = HhtldFile::copy_from_slice(file.bytes()).unwrap();
        let before: Vec<Option<Vec<u32>>> = file
            .view()
            .tensors()
            .map(|t| is_float(t.dtype()).then(|| bits(&t.decode().unwrap(), f32::to_bits)))
            .collect();
        file.prefetch().unwrap();
        copy.prefetch().unwrap();
        let order = file.file_order();
        assert_eq!(order, copy.file_order());
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..file.tensor_count()).collect::<Vec<_>>());
        let starts: Vec<usize> = order
            .iter()
            .map(|&i| file.layout().tensors[i].data.start)
            .collect();
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]),
            "{}",
            path.display()
        );
        for &i in &order {
            let t = file.tensor(i).unwrap();
            let got = is_float(t.dtype()).then(|| bits(&t.decode().unwrap(), f32::to_bits));
            assert_eq!(got, before[i], "{} tensor {i}", path.display());
        }
    }
}
