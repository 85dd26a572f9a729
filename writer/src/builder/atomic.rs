//! Atomic output: a temporary file renamed over the destination by `finish`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::WriteError;

use super::*;

/// Makes temporary file names unique within the process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name next to its destination and renamed
/// over it only by [`Writer::finish`], after an fsync. Dropped without
/// finishing (an error, a panic elsewhere, an early return), it removes the
/// temporary file, so the destination never holds a half-written file.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates `.NAME.tmp-PID-N` in the directory of `dest`.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self, WriteError> {
        let dest = dest.as_ref().to_path_buf();
        let bad = |reason| WriteError::BadPath {
            path: dest.display().to_string(),
            reason,
        };
        let file_name = dest.file_name().ok_or_else(|| bad("no file name"))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let pid = std::process::id();
        loop {
            let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(file_name);
            tmp_name.push(format!(".tmp-{pid}-{n}"));
            let tmp = dir.join(tmp_name);
            match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        tmp,
                        dest,
                        committed: false,
                    })
                }
                // Left over by a crashed process with a recycled pid: next n.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(WriteError::Io {
                        op: format!("creating {}", tmp.display()),
                        source,
                    })
                }
            }
        }
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The destination path.
    pub fn dest_path(&self) -> &Path {
        &self.dest
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("atomic file already committed"))
    }

    /// fsync, close, rename over the destination, then fsync the directory
    /// (best effort: not every platform or file system allows it).
    pub fn commit(&mut self) -> io::Result<()> {
        self.file()?.sync_all()?;
        // Closed before the rename, which some platforms require.
        drop(self.file.take());
        fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
        #[cfg(unix)]
        if let Some(dir) = self.dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            drop(self.file.take());
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Writer<AtomicFile> {
    /// Writes to `path` atomically: the data goes to a temporary file in the
    /// same directory, and [`Writer::finish`] fsyncs it and renames it to
    /// `path`. If the writer is dropped without a successful `finish`, the
    /// temporary file is removed and `path` is untouched.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("model.hhtld");
    /// use hhtld_writer::builder::Writer;
    /// let w = Writer::create(&path)?;
    /// let report = w.finish()?;
    /// assert_eq!(std::fs::metadata(&path)?.len(), report.file_len);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self, WriteError> {
        Self::create_with_limits(path, WriterLimits::default())
    }

    /// [`Writer::create`] with lower caps.
    pub fn create_with_limits(
        path: impl AsRef<Path>,
        limits: WriterLimits,
    ) -> Result<Self, WriteError> {
        let file = AtomicFile::create(path)?;
        let mut w = Writer::with_limits(file, limits)?;
        w.commit = AtomicFile::commit;
        Ok(w)
    }
}
