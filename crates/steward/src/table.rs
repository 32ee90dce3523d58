//! Reading and writing tables for the batch commands: CSV files to and from the runtime's
//! [`Frame`].

use std::path::Path;

use anyhow::{Context as _, bail};
use steward_runtime::frame::{Cell, Frame};

/// Reads a CSV file with a header row. Cells stay text; the model's signature decides types.
pub fn read(path: &Path) -> anyhow::Result<Frame> {
    match extension(path).as_deref() {
        Some("csv") | Some("txt") | None => {}
        Some(other) => bail!("{}: unsupported table format '.{other}' (use .csv)", path.display()),
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Frame::from_csv(std::io::BufReader::new(file), &path.display().to_string())?)
}

/// Writes a frame as CSV; numbers in their shortest exact form.
pub fn write(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    match extension(path).as_deref() {
        Some("csv") | Some("txt") | None => {}
        Some(other) => bail!("{}: unsupported table format '.{other}' (use .csv)", path.display()),
    }
    let mut w = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    w.write_record(frame.columns.iter().map(|c| c.0.as_str()))?;
    let mut record = Vec::with_capacity(frame.columns.len());
    for r in 0..frame.rows() {
        record.clear();
        record.extend(frame.columns.iter().map(|c| match &c.1[r] {
            Cell::Null => String::new(),
            Cell::Num(v) => format_number(*v),
            Cell::Text(s) => s.clone(),
            Cell::Bool(b) => b.to_string(),
        }));
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// f32 values widened to f64 print in f32's shortest form so they read back exactly.
fn format_number(v: f64) -> String {
    let narrow = v as f32;
    if f64::from(narrow) == v { narrow.to_string() } else { v.to_string() }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase())
}
