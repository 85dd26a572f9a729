//! Owning handles: a memory-mapped file or a 64-byte-aligned copy.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hhtld_format::{parse, Layout};
use memmap2::{Advice, Mmap};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::{Hhtld, ReaderError, TensorHandle};

/// Bytes per `MADV_WILLNEED` call of [`HhtldFile::prefetch`]: below the
/// per-call cap of common devices (at least 1 MiB where the largest
/// request is 1280 KiB or more), and small enough that the first reads
/// finish early.
const PREFETCH_STEP: usize = 1 << 20;

/// 64 bytes at a 64-byte-aligned address: the unit of owned storage, so
/// every section start (a multiple of 64 in the file) is 64-aligned in memory.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(64))]
struct Block([u8; 64]);

enum Storage {
    Mmap(Mmap),
    Owned { blocks: Vec<Block>, len: usize },
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            // `len <= 64 x blocks.len()` by construction.
            Storage::Owned { blocks, len } => blocks.as_bytes().get(..*len).unwrap_or(&[]),
        }
    }
}

/// An open, validated hhtld file. Opening checks the header, table, padding
/// and directory (spec §7) in time proportional to the directory; tensor
/// data is only touched when read or verified.
///
/// A handle: cloning shares the mapping and layout (an `Arc` inside), and it
/// is `Send + Sync`, so a loader can keep it, and [`TensorHandle`]s made from
/// it, without borrowing a local.
#[derive(Clone)]
pub struct HhtldFile {
    inner: Arc<Inner>,
    max_expansion: u64,
}

struct Inner {
    storage: Storage,
    layout: Arc<Layout>,
    path: Option<PathBuf>,
}

impl HhtldFile {
    /// Memory-maps `path` read-only and validates it.
    pub fn open(path: impl AsRef<Path>) -> Result<HhtldFile, ReaderError> {
        let path = path.as_ref();
        let io = |source| ReaderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this handle, but the
        // file itself can still be truncated or rewritten by another process
        // while mapped. Truncation makes later reads fault (SIGBUS) and a
        // rewrite makes the bytes change under the views; neither can be
        // prevented by a reader. Like every mmap-based reader we require that
        // files are not modified while open (writers replace files
        // atomically via rename, which leaves this mapping on the old inode).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        // Parsing reads the header and the directory at the end. Under the
        // default advice each first touch of a cold file reads a whole
        // read-ahead window around it (megabytes) and open waits for it, so
        // it is parsed under MADV_RANDOM, reading only the pages it needs,
        // and the default is restored for the decoding that follows. Both
        // are hints: where the kernel refuses one, reads stay correct.
        let _ = map.advise(Advice::Random);
        let layout = parse(&map)?;
        let _ = map.advise(Advice::Normal);
        Ok(HhtldFile::new(Inner {
            storage: Storage::Mmap(map),
            layout: Arc::new(layout),
            path: Some(path.to_path_buf()),
        }))
    }

    /// Copies `bytes` into 64-byte-aligned memory and validates it.
    pub fn from_vec(bytes: Vec<u8>) -> Result<HhtldFile, ReaderError> {
        Self::copy_from_slice(&bytes)
    }

    /// Copies `bytes` into 64-byte-aligned memory and validates it.
    pub fn copy_from_slice(bytes: &[u8]) -> Result<HhtldFile, ReaderError> {
        let mut blocks = vec![Block::new_zeroed(); bytes.len().div_ceil(64)];
        if let Some(dst) = blocks.as_mut_bytes().get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        let storage = Storage::Owned {
            blocks,
            len: bytes.len(),
        };
        let layout = parse(storage.bytes())?;
        Ok(HhtldFile::new(Inner {
            storage,
            layout: Arc::new(layout),
            path: None,
        }))
    }

    fn new(inner: Inner) -> HhtldFile {
        HhtldFile {
            inner: Arc::new(inner),
            max_expansion: crate::DEFAULT_MAX_EXPANSION,
        }
    }

    /// This handle with another expansion limit: whole-tensor decodes
    /// through it, its views and its [`TensorHandle`]s may produce up to
    /// `max_expansion x file length` bytes each (spec §7 "Expansion limit";
    /// default [`crate::DEFAULT_MAX_EXPANSION`]). Other clones keep theirs.
    pub fn with_max_expansion(mut self, max_expansion: u64) -> HhtldFile {
        self.max_expansion = max_expansion;
        self
    }

    /// The expansion factor in force.
    pub fn max_expansion(&self) -> u64 {
        self.max_expansion
    }

    /// A borrowed view for reading tensors, palettes and metadata.
    pub fn view(&self) -> Hhtld<'_> {
        Hhtld::with_layout(
            self.bytes(),
            Arc::clone(&self.inner.layout),
            self.max_expansion,
        )
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.inner.storage.bytes()
    }

    /// The validated layout.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The path given to [`HhtldFile::open`], if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.layout().tensors.len()
    }

    /// The directory index of the tensor called `name`: a lookup in an index
    /// built at open (no scan, no allocation).
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.layout().tensor_index(self.bytes(), name)
    }

    /// Whether a tensor called `name` exists (same lookup as
    /// [`HhtldFile::tensor_index`]).
    pub fn contains(&self, name: &str) -> bool {
        self.tensor_index(name).is_some()
    }

    /// An owned handle on tensor `i`, in directory order.
    pub fn tensor(&self, i: usize) -> Result<TensorHandle, ReaderError> {
        TensorHandle::new(self.clone(), i)
    }

    /// An owned handle on the tensor called `name`.
    pub fn tensor_by_name(&self, name: &str) -> Result<TensorHandle, ReaderError> {
        match self.tensor_index(name) {
            Some(i) => self.tensor(i),
            None => Err(ReaderError::NoSuchTensor {
                name: name.to_owned(),
            }),
        }
    }

    /// Owned handles on every tensor, in directory order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorHandle> + '_ {
        (0..self.tensor_count()).map(move |i| TensorHandle::unchecked(self.clone(), i))
    }

    /// Drops this process's resident pages of tensor `i`'s own sections
    /// (codes or raw bytes, row scales, SlotL coefficients; shared palettes
    /// and bases stay), so a reader going through a large file tensor by
    /// tensor keeps only the tensor at hand resident. The pages stay in the
    /// page cache and are read back on the next access; nothing changes
    /// value. A no-op for a copy in memory ([`HhtldFile::from_vec`]).
    pub fn release_tensor(&self, i: usize) -> Result<(), ReaderError> {
        let Storage::Mmap(map) = &self.inner.storage else {
            return Ok(());
        };
        let t = self
            .layout()
            .tensors
            .get(i)
            .ok_or(ReaderError::IndexOutOfRange {
                what: "tensor",
                index: i,
                count: self.tensor_count(),
            })?;
        let ranges = [
            Some(t.data.clone()),
            t.scale.as_ref().map(|s| s.range.clone()),
            t.slot.as_ref().map(|s| s.range.clone()),
        ];
        for r in ranges.into_iter().flatten().filter(|r| r.end > r.start) {
            // SAFETY: MADV_DONTNEED on a read-only private file mapping only
            // discards this process's copies of clean file pages (memmap2
            // rounds the start down to a page); later reads fault them back
            // in from the file, so no borrowed slice changes value (given
            // the file is not modified while mapped, as `open` requires).
            unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, r.start, r.len())
            }
            .map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    /// An I/O error on this file's mapping.
    fn io_error(&self, source: std::io::Error) -> ReaderError {
        ReaderError::Io {
            path: self.inner.path.clone().unwrap_or_default(),
            source,
        }
    }

    /// Asks the OS to start reading the whole file into the page cache in
    /// the background (`madvise(MADV_WILLNEED)`, in 1 MiB steps) and
    /// returns without waiting for the reads. For a loader about to decode
    /// most of a file that may not be cached: the disk reads ahead while
    /// tensors decode, instead of each first touch waiting on its own read.
    /// On a cached file it only walks the page cache over the file (about
    /// 12 µs per MB measured), and on an uncached one it reads all of it,
    /// so leave it out for access to a few rows or tensors of a large file.
    /// A no-op for a copy in memory.
    pub fn prefetch(&self) -> Result<(), ReaderError> {
        let Storage::Mmap(map) = &self.inner.storage else {
            return Ok(());
        };
        // Linux reads at most max(read-ahead, largest request) per WILLNEED
        // call (8 MiB on the bench machine) and drops the rest, so the
        // file is advised in steps, front to back; each step's reads start
        // before the next step's pages are allocated.
        let len = map.len();
        let mut start = 0;
        while start < len {
            let n = PREFETCH_STEP.min(len - start);
            map.advise_range(Advice::WillNeed, start, n)
                .map_err(|e| self.io_error(e))?;
            start += n;
        }
        Ok(())
    }

    /// Directory indices of every tensor, ordered by where its data (codes
    /// or raw bytes) starts in the file. Decoding in this order reads the
    /// file front to back, which after [`HhtldFile::prefetch`] follows the
    /// disk's reads; the writer groups tensors that share palettes, so this
    /// differs from directory order.
    pub fn file_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.tensor_count()).collect();
        order.sort_by_key(|&i| self.layout().tensors.get(i).map(|t| t.data.start));
        order
    }

    /// Tensor names, in directory order.
    pub fn tensor_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.tensor_count()).map(move |i| {
            self.layout()
                .tensor_name(self.bytes(), i)
                .unwrap_or_default()
        })
    }
}

impl core::fmt::Debug for HhtldFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HhtldFile")
            .field("path", &self.inner.path)
            .field("len", &self.bytes().len())
            .field("tensors", &self.tensor_count())
            .finish()
    }
}
