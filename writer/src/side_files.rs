//! A model's side files (config, tokenizer, pooling) stored in the file's
//! metadata, so a loader needs the `.hhtld` file alone (spec §5, "Model
//! files").

use std::path::{Path, PathBuf};

use hhtld_format::limits::MAX_METADATA_BYTES;

/// The side files hhtld stores, as paths relative to the model directory;
/// the metadata key of each is [`key`] of it.
pub const SIDE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
];

/// The metadata key of side file `rel`: `file.` followed by its path
/// relative to the model directory, `/`-separated.
pub fn key(rel: &str) -> String {
    format!("{}{rel}", hhtld_format::MODEL_FILE_PREFIX)
}

/// One side file found beside the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideFile {
    /// Path relative to the model directory, e.g. `1_Pooling/config.json`.
    pub rel: &'static str,
    /// Its contents.
    pub text: String,
}

/// A side file that was found but not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was not stored.
    pub reason: String,
}

/// The directory a model input (`.safetensors`, `.index.json` or a
/// directory) lives in.
pub fn model_dir(input: &Path) -> &Path {
    if input.is_dir() {
        input
    } else {
        input.parent().unwrap_or(Path::new("."))
    }
}

/// Reads the [`SIDE_FILES`] present beside `input`.
///
/// A file that cannot be stored is skipped, not an error: over
/// `MAX_METADATA_BYTES` (a metadata value's limit; some multilingual
/// tokenizers are larger), not UTF-8, or unreadable. The weights are what
/// the file is for; a loader can still be given the missing file by path,
/// and the caller reports every skipped file.
pub fn find(input: &Path) -> (Vec<SideFile>, Vec<Skipped>) {
    let dir = model_dir(input);
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for &rel in SIDE_FILES {
        let path = dir.join(rel);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let skip = |reason: String| Skipped {
            path: path.clone(),
            reason,
        };
        if meta.len() > MAX_METADATA_BYTES as u64 {
            skipped.push(skip(format!(
                "{} bytes, more than MAX_METADATA_BYTES ({MAX_METADATA_BYTES})",
                meta.len()
            )));
            continue;
        }
        match std::fs::read(&path) {
            Err(e) => skipped.push(skip(e.to_string())),
            Ok(bytes) if bytes.len() > MAX_METADATA_BYTES => skipped.push(skip(format!(
                "{} bytes, more than MAX_METADATA_BYTES ({MAX_METADATA_BYTES})",
                bytes.len()
            ))),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => found.push(SideFile { rel, text }),
                Err(_) => skipped.push(skip("not UTF-8".into())),
            },
        }
    }
    (found, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_present_files_and_skips_bad_ones() {
        let d = tempfile::tempdir().unwrap();
        let model = d.path().join("model.safetensors");
        std::fs::write(&model, b"x").unwrap();
        std::fs::write(d.path().join("config.json"), "{\"model_type\":\"bert\"}").unwrap();
        std::fs::create_dir(d.path().join("1_Pooling")).unwrap();
        std::fs::write(d.path().join("1_Pooling/config.json"), "{}").unwrap();
        std::fs::write(d.path().join("tokenizer.json"), [0xff, 0xfe]).unwrap();
        let (found, skipped) = find(&model);
        let rels: Vec<_> = found.iter().map(|f| f.rel).collect();
        assert_eq!(rels, ["config.json", "1_Pooling/config.json"]);
        assert_eq!(found[0].text, "{\"model_type\":\"bert\"}");
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].path.ends_with("tokenizer.json"));
        assert_eq!(skipped[0].reason, "not UTF-8");
        // The directory itself as input finds the same.
        assert_eq!(find(d.path()).0, found);
        assert_eq!(key("1_Pooling/config.json"), "file.1_Pooling/config.json");
    }

    #[test]
    fn skips_a_file_over_the_metadata_limit() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("tokenizer.json")).unwrap();
        f.set_len(MAX_METADATA_BYTES as u64 + 1).unwrap();
        let (found, skipped) = find(&d.path().join("model.safetensors"));
        assert!(found.is_empty());
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("MAX_METADATA_BYTES"));
    }
}
