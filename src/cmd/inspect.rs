//! `hhtld inspect`.

use std::path::Path;

use hhtld::inspect::{inspect_json, render_text, Show};
use hhtld_reader::HhtldFile;
use serde_json::json;

use crate::{Failure, Outcome};

pub fn run(path: &Path, verify: bool, as_json: bool, show: Show) -> Result<Outcome, Failure> {
    let file = HhtldFile::open(path)?;
    let report = inspect_json(&file.view(), verify);
    if as_json {
        crate::outln!("{report:#}");
    } else {
        crate::push_out(render_text(&report, show));
    }
    let crc_failures: Vec<String> = report["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["crc_ok"] == json!(false))
        .map(|s| {
            format!(
                "section {} ({})",
                s["index"],
                s["kind"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if !crc_failures.is_empty() {
        return Err(Failure(format!(
            "{}: CRC mismatch in {}",
            path.display(),
            crc_failures.join(", ")
        )));
    }
    if verify {
        // The rest of verification: zero padding, UTF-8 metadata values (spec §7).
        let view = file.view();
        view.layout()
            .check_deferred(view.bytes())
            .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    }
    Ok(Outcome::Ok)
}
