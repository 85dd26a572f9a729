//! `hhtld._hhtld`: the Rust half of the `hhtld` Python package.
//!
//! The Python package (`python/hhtld/`) gives the safetensors-style API;
//! this module opens and validates files through `hhtld-reader`, decodes
//! tensors and rows straight into numpy arrays, and turns reader errors into
//! Python exceptions. Framework (numpy/torch) and dtype-name handling live
//! in Python.
//!
//! Arrays are allocated by `numpy.empty` (so an impossible size is a clean
//! `MemoryError`, not an abort), then filled in place with the GIL released.

mod error;

use std::path::PathBuf;
use std::sync::RwLock;

use hhtld_reader::{
    bf16, f16, Dtype, Encoding, HhtldFile, OutElem, ReaderError, TensorHandle, TensorId,
};
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use rayon::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

pub use error::HhtldError;

/// The element type a tensor is returned in. Types numpy lacks are stored in
/// an unsigned integer array of the same width (BF16 in uint16, F8_* and
/// BOOL in uint8) that the Python layer views as the real type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    F32,
    F16,
    Bf16,
    F64,
    /// A RAW tensor's stored bytes, unconverted.
    Stored(Dtype),
}

impl Out {
    /// The safetensors name of the logical dtype.
    fn name(self) -> &'static str {
        match self {
            Out::F32 => "F32",
            Out::F16 => "F16",
            Out::Bf16 => "BF16",
            Out::F64 => "F64",
            Out::Stored(d) => d.name(),
        }
    }
}

/// The logical dtype `get_tensor` returns for `t` given the requested one
/// (`None`: the original dtype, as `hhtld decode` writes it).
fn out_for(t: &TensorHandle, requested: Option<&str>) -> PyResult<Out> {
    let float = |d: Dtype| match d {
        Dtype::F32 => Some(Out::F32),
        Dtype::F16 => Some(Out::F16),
        Dtype::Bf16 => Some(Out::Bf16),
        Dtype::F64 => Some(Out::F64),
        _ => None,
    };
    match requested {
        None => Ok(match t.encoding() {
            Encoding::Raw => Out::Stored(t.dtype()),
            // Validation allows only F16, BF16, F32 and F64 here.
            Encoding::Palette => float(t.dtype()).unwrap_or(Out::F32),
        }),
        Some(r) => {
            let out = match r {
                "F32" => Out::F32,
                "F16" => Out::F16,
                "BF16" => Out::Bf16,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "dtype {other:?} is not one hhtld decodes to (F32, F16, BF16)"
                    )))
                }
            };
            if float(t.dtype()).is_none() {
                return Err(PyTypeError::new_err(format!(
                    "{}: dtype {} is not a float type; read it with dtype=None",
                    t.name(),
                    t.dtype()
                )));
            }
            Ok(out)
        }
    }
}

/// `numpy.empty`, looked up once.
static NP_EMPTY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A new uninitialised C-contiguous array of `shape`.
fn empty<'py, T: Element>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let f = NP_EMPTY.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("numpy")?.getattr("empty")?.unbind())
    })?;
    let arr = f
        .bind(py)
        .call1((PyTuple::new(py, shape)?, numpy::dtype::<T>(py)))?;
    Ok(arr.cast_into::<PyArrayDyn<T>>()?)
}

/// Which rows of a tensor to read.
#[derive(Clone, Debug)]
enum Rows {
    /// `start, start + step, ...`, `count` rows (step may be negative).
    Range {
        start: usize,
        step: isize,
        count: usize,
    },
    /// Any rows, in this order (an embedding lookup).
    List(Vec<usize>),
    /// The whole tensor.
    All,
}

impl Rows {
    fn count(&self, n_rows: usize) -> usize {
        match self {
            Rows::Range { count, .. } => *count,
            Rows::List(v) => v.len(),
            Rows::All => n_rows,
        }
    }
    fn row(&self, i: usize) -> usize {
        match self {
            Rows::Range { start, step, .. } => {
                start.wrapping_add_signed(step.wrapping_mul(i as isize))
            }
            Rows::List(v) => v[i],
            Rows::All => i,
        }
    }
}

/// Elements per parallel task when gathering many rows.
const PAR_GATHER_ELEMS: usize = 1 << 14;

/// Decodes rows `rows` of `t` into `out` as `O` (f32, bf16, f16): the
/// reader's whole-tensor and row-range decoders (parallel when large), or
/// its row decoder for an arbitrary list of rows.
fn decode_out<O: OutElem>(t: &TensorHandle, rows: &Rows, out: &mut [O]) -> Result<(), ReaderError> {
    let n_cols = t.n_cols();
    match *rows {
        Rows::All => t.decode_into(out),
        Rows::Range {
            start,
            step: 1,
            count,
        } => t.decode_rows_into(start..start + count, out),
        _ => {
            let dec = t.row_decoder()?;
            let per_task = (PAR_GATHER_ELEMS / n_cols.max(1)).max(1);
            let task = |(k, chunk): (usize, &mut [O])| {
                chunk
                    .chunks_mut(n_cols)
                    .enumerate()
                    .try_for_each(|(i, o)| dec.decode_row_into(rows.row(k * per_task + i), o))
            };
            if n_cols == 0 {
                Ok(())
            } else if out.len() >= 2 * PAR_GATHER_ELEMS {
                out.par_chunks_mut(per_task * n_cols)
                    .enumerate()
                    .try_for_each(task)
            } else {
                task((0, out))
            }
        }
    }
}

/// F64 originals (written as F64 by `hhtld decode`): each row decoded in
/// f32, then widened, one row of scratch at a time.
fn decode_f64(t: &TensorHandle, rows: &Rows, out: &mut [f64]) -> Result<(), ReaderError> {
    let n_cols = t.n_cols();
    if n_cols == 0 {
        return Ok(());
    }
    let dec = t.row_decoder()?;
    let mut scratch = vec![0f32; n_cols];
    for (i, o) in out.chunks_mut(n_cols).enumerate() {
        dec.decode_row_into(rows.row(i), &mut scratch)?;
        for (d, s) in o.iter_mut().zip(&scratch) {
            *d = f64::from(*s);
        }
    }
    Ok(())
}

/// Refuses a decode of `rows` rows of `t` to `out` that would produce more
/// than the file's expansion limit allows (spec section 7 "Expansion
/// limit"), before the array is allocated. The spec states the limit for
/// whole tensors; row selections are held to the same bound, so a slice
/// cannot get round it. Stored bytes are copies of the file, never over it.
fn check_expansion(t: &TensorHandle, out: Out, rows: usize) -> Result<(), ReaderError> {
    let size = match out {
        Out::Stored(_) => return Ok(()),
        Out::F32 => 4,
        Out::F16 | Out::Bf16 => 2,
        Out::F64 => 8,
    };
    let decoded = (rows as u64)
        .saturating_mul(t.n_cols() as u64)
        .saturating_mul(size);
    let file_len = t.file().bytes().len() as u64;
    let max_expansion = t.file().max_expansion();
    let limit = max_expansion.saturating_mul(file_len);
    if decoded > limit {
        return Err(ReaderError::ExpansionLimit {
            tensor: TensorId {
                index: t.index() as u32,
                name: Some(t.name().to_owned()),
            },
            decoded,
            limit,
            max_expansion,
            file_len,
        });
    }
    Ok(())
}

/// Copies rows of a RAW tensor's bytes (`row_bytes` each) into `dst`.
fn copy_rows(raw: &[u8], row_bytes: usize, rows: &Rows, dst: &mut [u8]) {
    if matches!(rows, Rows::All) {
        dst.copy_from_slice(raw);
        return;
    }
    if row_bytes == 0 {
        return;
    }
    for (i, d) in dst.chunks_mut(row_bytes).enumerate() {
        let r = rows.row(i);
        // Rows were checked against n_rows before the array was made.
        if let Some(s) = raw.get(r * row_bytes..(r + 1) * row_bytes) {
            d.copy_from_slice(s);
        }
    }
}

/// The low-level reader behind `hhtld.safe_open` (use that instead).
#[pyclass(module = "hhtld._hhtld", frozen)]
struct Reader {
    /// `None` once closed. Arrays being filled hold their own clone of the
    /// file, so closing during a decode in another thread is safe.
    file: RwLock<Option<HhtldFile>>,
}

impl Reader {
    fn file(&self) -> PyResult<HhtldFile> {
        let g = self
            .file
            .read()
            .map_err(|_| PyRuntimeError::new_err("hhtld file handle is poisoned"))?;
        g.clone().ok_or_else(|| {
            PyValueError::new_err("the hhtld file is closed (used after its `with` block)")
        })
    }

    fn tensor(&self, py: Python<'_>, name: &str) -> PyResult<TensorHandle> {
        self.file()?
            .tensor_by_name(name)
            .map_err(|e| error::to_py(py, e))
    }
}

fn shape_of(t: &TensorHandle) -> PyResult<Vec<usize>> {
    t.shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            PyValueError::new_err(format!("{}: shape does not fit this machine", t.name()))
        })
}

/// Reads `rows` of `t` as `out` into a new array of `shape`.
fn read<'py>(
    py: Python<'py>,
    t: &TensorHandle,
    out: Out,
    rows: Rows,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    macro_rules! fill {
        ($ty:ty, |$dst:ident| $decode:expr) => {{
            let arr = empty::<$ty>(py, shape)?;
            {
                let mut rw = arr.try_readwrite()?;
                let $dst = rw.as_slice_mut()?;
                py.detach(|| $decode).map_err(|e| error::to_py(py, e))?;
            }
            arr.into_any()
        }};
    }
    Ok(match out {
        Out::F32 => fill!(f32, |dst| decode_out(t, &rows, dst)),
        Out::F16 => fill!(f16, |dst| decode_out(t, &rows, dst)),
        Out::F64 => fill!(f64, |dst| decode_f64(t, &rows, dst)),
        Out::Bf16 => fill!(u16, |dst| {
            // numpy has no bf16: its bits go into a uint16 array.
            // A numpy uint16 array is 2-aligned, so the view cannot fail.
            match <[bf16]>::mut_from_bytes(dst.as_mut_bytes()) {
                Ok(b) => decode_out(t, &rows, b),
                Err(_) => Err(ReaderError::Misaligned {
                    what: "bf16 output array",
                    offset: 0,
                    align: 2,
                }),
            }
        }),
        Out::Stored(d) => {
            let raw = t.raw_bytes().ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "{}: a PALETTE tensor has no stored bytes",
                    t.name()
                ))
            })?;
            let row_bytes = t.n_cols() * d.size();
            macro_rules! copy {
                ($ty:ty) => {
                    fill!($ty, |dst| {
                        copy_rows(raw, row_bytes, &rows, dst.as_mut_bytes());
                        Ok(())
                    })
                };
            }
            match d {
                Dtype::F32 => copy!(f32),
                Dtype::F16 => copy!(f16),
                Dtype::F64 => copy!(f64),
                Dtype::I8 => copy!(i8),
                Dtype::I16 => copy!(i16),
                Dtype::U16 | Dtype::Bf16 => copy!(u16),
                Dtype::I32 => copy!(i32),
                Dtype::U32 => copy!(u32),
                Dtype::I64 => copy!(i64),
                Dtype::U64 => copy!(u64),
                // BOOL bytes need not be 0 or 1, so they are no Rust bool.
                Dtype::U8 | Dtype::Bool | Dtype::F8E4M3 | Dtype::F8E5M2 => copy!(u8),
            }
        }
    })
}

/// Parses a row selection (`start, stop, step` from `slice.indices`, or a
/// 1-D int64 array) and checks it against `n_rows`.
fn parse_rows(
    name: &str,
    n_rows: usize,
    range: Option<(isize, isize, isize)>,
    list: Option<PyReadonlyArray1<'_, i64>>,
) -> PyResult<Rows> {
    let oob = |r: i64| {
        PyIndexError::new_err(format!("{name}: row {r} is out of range for {n_rows} rows"))
    };
    if let Some(list) = list {
        let v = list.as_slice()?;
        let mut rows = Vec::with_capacity(v.len());
        for &r in v {
            let i = if r < 0 { r + n_rows as i64 } else { r };
            if i < 0 || i as u64 >= n_rows as u64 {
                return Err(oob(r));
            }
            rows.push(i as usize);
        }
        return Ok(Rows::List(rows));
    }
    let Some((start, stop, step)) = range else {
        return Ok(Rows::All);
    };
    if step == 0 {
        return Err(PyValueError::new_err("slice step cannot be zero"));
    }
    // Same count as len(range(start, stop, step)).
    let count = if step > 0 && stop > start {
        ((stop - start - 1) / step + 1) as usize
    } else if step < 0 && stop < start {
        ((start - stop - 1) / (-step) + 1) as usize
    } else {
        0
    };
    if count > 0 {
        let last = start + (count as isize - 1) * step;
        for r in [start, last] {
            if r < 0 || r as usize >= n_rows {
                return Err(oob(r as i64));
            }
        }
    }
    Ok(Rows::Range {
        start: start.max(0) as usize,
        step,
        count,
    })
}

#[pymethods]
impl Reader {
    /// Opens and validates `path` (memory-mapped); with `verify`, also
    /// verifies it (section CRCs, padding, metadata values).
    #[new]
    #[pyo3(signature = (path, verify = false, max_expansion = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        verify: bool,
        max_expansion: Option<u64>,
    ) -> PyResult<Self> {
        let file = py
            .detach(|| {
                let mut f = HhtldFile::open(&path)?;
                if let Some(m) = max_expansion {
                    f = f.with_max_expansion(m);
                }
                if verify {
                    f.view().verify()?;
                }
                Ok(f)
            })
            .map_err(|e| error::to_py(py, e))?;
        Ok(Reader {
            file: RwLock::new(Some(file)),
        })
    }

    /// The expansion limit in force: a decode may produce at most this many
    /// times the file's length in bytes (spec section 7).
    #[getter]
    fn max_expansion(&self) -> PyResult<u64> {
        Ok(self.file()?.max_expansion())
    }

    /// Releases the file; every later call raises ValueError. The mapping
    /// goes when the last array being decoded from it is done.
    fn close(&self) {
        if let Ok(mut g) = self.file.write() {
            *g = None;
        }
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.file.read().map_or(true, |g| g.is_none())
    }

    /// The path the file was opened from.
    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        Ok(self.file()?.path().map(PathBuf::from).unwrap_or_default())
    }

    /// Tensor names, sorted.
    fn keys(&self) -> PyResult<Vec<String>> {
        let f = self.file()?;
        let mut v: Vec<String> = f.tensor_names().map(str::to_owned).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Starts reading the whole file into the page cache in the background
    /// and returns (HhtldFile::prefetch).
    fn prefetch(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.file()?;
        py.detach(|| f.prefetch()).map_err(|e| error::to_py(py, e))
    }

    /// Tensor names in the order their data lies in the file
    /// (HhtldFile::file_order): decoding in this order reads it front to back.
    fn file_order(&self) -> PyResult<Vec<String>> {
        let f = self.file()?;
        let names: Vec<&str> = f.tensor_names().collect();
        Ok(f.file_order()
            .into_iter()
            .filter_map(|i| names.get(i).map(|n| (*n).to_owned()))
            .collect())
    }

    /// Metadata as a dict of str.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let f = self.file()?;
        let d = PyDict::new(py);
        for entry in f.view().metadata() {
            let (k, v) = entry.map_err(|e| error::to_py(py, e))?;
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// `(dtype, shape)` of a tensor, dtype as safetensors names it.
    fn dtype_shape(&self, py: Python<'_>, name: &str) -> PyResult<(&'static str, Vec<usize>)> {
        let t = self.tensor(py, name)?;
        Ok((t.dtype().name(), shape_of(&t)?))
    }

    /// Everything the directory says about one tensor.
    fn tensor_info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let t = self.tensor(py, name)?;
        let rec = t.record();
        let d = PyDict::new(py);
        d.set_item("name", t.name())?;
        d.set_item("dtype", t.dtype().name())?;
        d.set_item("shape", PyTuple::new(py, shape_of(&t)?)?)?;
        d.set_item("encoding", t.encoding().name())?;
        d.set_item("regime", t.regime().name())?;
        d.set_item("role", t.role().name())?;
        let stages = PyList::empty(py);
        for s in t.stages() {
            let sd = PyDict::new(py);
            sd.set_item("palette", s.palette)?;
            sd.set_item("d", s.d)?;
            sd.set_item("bits", s.bits)?;
            stages.append(sd)?;
        }
        d.set_item("stages", stages)?;
        d.set_item("scale", rec.scale.as_ref().map(|s| s.elem.name()))?;
        d.set_item("slot_l", rec.slot.as_ref().map(|s| s.basis))?;
        let quality = match t.quality() {
            Some(q) => {
                let qd = PyDict::new(py);
                qd.set_item("rho_median", q.rho_median)?;
                qd.set_item("rho_p5", q.rho_p5)?;
                qd.set_item("rho_min", q.rho_min)?;
                qd.set_item("rel_fro", q.rel_fro)?;
                Some(qd)
            }
            None => None,
        };
        d.set_item("quality", quality)?;
        Ok(d)
    }

    /// Decodes a whole tensor (or the rows selected by `range`, a
    /// `(start, stop, step)` of `slice.indices`, or `rows`, an int64 array)
    /// into a new numpy array. Returns `(array, dtype)`; dtype is the
    /// safetensors name of what the array holds (BF16, F8_* and BOOL come in
    /// an unsigned integer array of their width, to be viewed as the type).
    #[pyo3(signature = (name, dtype = None, range = None, rows = None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        dtype: Option<&str>,
        range: Option<(isize, isize, isize)>,
        rows: Option<PyReadonlyArray1<'py, i64>>,
    ) -> PyResult<(Bound<'py, PyAny>, &'static str)> {
        let t = self.tensor(py, name)?;
        let out = out_for(&t, dtype)?;
        let mut shape = shape_of(&t)?;
        let sel = if range.is_some() || rows.is_some() {
            if shape.len() < 2 {
                return Err(PyIndexError::new_err(format!(
                    "{name}: rows are read from tensors of 2 or more dimensions; this one has {}",
                    shape.len()
                )));
            }
            parse_rows(name, t.n_rows(), range, rows)?
        } else {
            Rows::All
        };
        if let Some(first) = shape.first_mut() {
            *first = sel.count(*first);
        }
        check_expansion(&t, out, sel.count(t.n_rows())).map_err(|e| error::to_py(py, e))?;
        let arr = read(py, &t, out, sel, &shape)?;
        Ok((arr, out.name()))
    }
}

/// `hhtld inspect --json` of `path` (with `verify`, `inspect --verify
/// --json`), as the JSON text the command prints.
#[pyfunction]
#[pyo3(signature = (path, verify = false))]
fn inspect_json(py: Python<'_>, path: PathBuf, verify: bool) -> PyResult<String> {
    py.detach(|| {
        let f = HhtldFile::open(&path)?;
        Ok(format!(
            "{:#}",
            hhtld::inspect::inspect_json(&f.view(), verify)
        ))
    })
    .map_err(|e| error::to_py(py, e))
}

/// `hhtld verify --json` of `path`: every section CRC, the padding and the
/// metadata values checked, the first failure raised as HhtldError; the
/// JSON text the command prints.
#[pyfunction]
fn verify_json(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| {
        let f = HhtldFile::open(&path)?;
        Ok(format!("{:#}", hhtld::verify::crc_json(&f.view())?))
    })
    .map_err(|e| error::to_py(py, e))
}

/// The Rust half of the `hhtld` package.
#[pymodule]
fn _hhtld(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HhtldError", m.py().get_type::<HhtldError>())?;
    m.add_class::<Reader>()?;
    m.add_function(wrap_pyfunction!(inspect_json, m)?)?;
    m.add_function(wrap_pyfunction!(verify_json, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
