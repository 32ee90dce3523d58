//! Reading and writing tables for the batch commands: CSV and Parquet files to and from the
//! runtime's [`Frame`] and output tensors.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use arrow_array::{Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use steward_runtime::frame::{Cell, Frame, output_columns, output_width};
use steward_runtime::{Data, Tensor};
use steward_train::synth::Values;

enum Format {
    Csv,
    Parquet,
}

fn format(path: &Path) -> anyhow::Result<Format> {
    match path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).as_deref() {
        Some("csv") | Some("txt") | None => Ok(Format::Csv),
        Some("parquet") | Some("pq") => Ok(Format::Parquet),
        Some(other) => bail!("{}: unsupported table format '.{other}' (use .csv or .parquet)", path.display()),
    }
}

/// Reads a CSV file (header row; cells stay text for the model's signature to type) or a
/// Parquet file (typed columns).
pub fn read(path: &Path) -> anyhow::Result<Frame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    match format(path)? {
        Format::Csv => Ok(Frame::from_csv(std::io::BufReader::new(file), &path.display().to_string())?),
        Format::Parquet => read_parquet(file).with_context(|| format!("reading {}", path.display())),
    }
}

/// A table read one column at a time, so that a command working column by column holds only
/// the columns in hand: a Parquet file decodes just that column's pages; a CSV file is parsed
/// once and its columns handed out (each at most once).
pub enum Columns {
    Csv { frame: Mutex<Frame>, names: Vec<String>, rows: usize },
    Parquet { path: PathBuf, names: Vec<String>, rows: usize },
}

impl Columns {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        match format(path)? {
            Format::Csv => {
                let frame = read(path)?;
                let (names, rows) = (frame.columns.iter().map(|c| c.0.clone()).collect(), frame.rows());
                Ok(Self::Csv { frame: Mutex::new(frame), names, rows })
            }
            Format::Parquet => {
                let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| format!("reading {}", path.display()))?;
                let names = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
                let rows = usize::try_from(builder.metadata().file_metadata().num_rows())?;
                Ok(Self::Parquet { path: path.to_owned(), names, rows })
            }
        }
    }

    pub fn names(&self) -> &[String] {
        match self {
            Self::Csv { names, .. } | Self::Parquet { names, .. } => names,
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Self::Csv { rows, .. } | Self::Parquet { rows, .. } => *rows,
        }
    }

    /// One column's cells; `None` for a name the table lacks (or a CSV column already taken).
    pub fn column(&self, name: &str) -> anyhow::Result<Option<Vec<Cell>>> {
        let Some(index) = self.names().iter().position(|n| n == name) else { return Ok(None) };
        match self {
            Self::Csv { frame, .. } => {
                let mut frame = frame.lock().map_err(|_| anyhow::anyhow!("a reader thread failed"))?;
                Ok(Some(std::mem::take(&mut frame.columns[index].1)))
            }
            Self::Parquet { path, .. } => {
                let read = || -> anyhow::Result<Vec<Cell>> {
                    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
                    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
                    let mut out = Vec::with_capacity(self.rows());
                    for batch in builder.with_projection(mask).with_batch_size(65_536).build()? {
                        append_cells(name, batch?.column(0), &mut out)?;
                    }
                    Ok(out)
                };
                read().with_context(|| format!("reading column '{name}' of {}", path.display())).map(Some)
            }
        }
    }
}

/// One column as read for statistics that do not need row order: every row's cell, or, for a
/// Parquet text column, each distinct text once with its count (no string per row).
pub enum ColumnCells {
    Rows(Vec<Cell>),
    Counted(Vec<(Cell, usize)>),
}

impl ColumnCells {
    /// Each cell with how many rows hold it.
    pub fn weighted(&self) -> Weighted<'_> {
        match self {
            Self::Rows(cells) => Weighted::Rows(cells.iter()),
            Self::Counted(cells) => Weighted::Counted(cells.iter()),
        }
    }
}

/// The iterator of [`ColumnCells::weighted`] (an enum, not a boxed trait object: it runs once
/// per row).
pub enum Weighted<'a> {
    Rows(std::slice::Iter<'a, Cell>),
    Counted(std::slice::Iter<'a, (Cell, usize)>),
}

impl<'a> Iterator for Weighted<'a> {
    type Item = (&'a Cell, usize);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Weighted::Rows(it) => it.next().map(|c| (c, 1)),
            Weighted::Counted(it) => it.next().map(|(c, n)| (c, *n)),
        }
    }
}

impl Columns {
    /// A column for order-free statistics: Parquet text columns come counted.
    pub fn counted_column(&self, name: &str) -> anyhow::Result<Option<ColumnCells>> {
        let Self::Parquet { path, names, .. } = self else { return Ok(self.column(name)?.map(ColumnCells::Rows)) };
        let Some(index) = names.iter().position(|n| n == name) else { return Ok(None) };
        let read = || -> anyhow::Result<ColumnCells> {
            use arrow_array::cast::AsArray;
            let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
            let mut rows = Vec::new();
            let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            let mut nulls = 0;
            let mut count = |v: Option<&str>| match v {
                None => nulls += 1,
                Some(v) => match counts.get_mut(v) {
                    Some(n) => *n += 1,
                    None => {
                        counts.insert(v.to_owned(), 1);
                    }
                },
            };
            for batch in builder.with_projection(mask).with_batch_size(65_536).build()? {
                let batch = batch?;
                let array = batch.column(0);
                match array.data_type() {
                    DataType::Utf8 => array.as_string::<i32>().iter().for_each(&mut count),
                    DataType::LargeUtf8 => array.as_string::<i64>().iter().for_each(&mut count),
                    DataType::Utf8View => array.as_string_view().iter().for_each(&mut count),
                    _ => append_cells(name, array, &mut rows)?,
                }
            }
            if !rows.is_empty() {
                return Ok(ColumnCells::Rows(rows));
            }
            let mut out: Vec<(Cell, usize)> = counts.into_iter().map(|(k, n)| (Cell::Text(k), n)).collect();
            if nulls > 0 {
                out.push((Cell::Null, nulls));
            }
            Ok(ColumnCells::Counted(out))
        };
        read().with_context(|| format!("reading column '{name}' of {}", path.display())).map(Some)
    }
}

fn read_parquet(file: std::fs::File) -> anyhow::Result<Frame> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut frame: Option<Frame> = None;
    for batch in reader {
        let batch = batch?;
        let frame = frame.get_or_insert_with(|| Frame { columns: batch.schema().fields().iter().map(|f| (f.name().clone(), Vec::new())).collect() });
        for (col, array) in frame.columns.iter_mut().zip(batch.columns()) {
            append_cells(&col.0, array, &mut col.1)?;
        }
    }
    Ok(frame.unwrap_or_default())
}

fn append_cells(name: &str, array: &ArrayRef, out: &mut Vec<Cell>) -> anyhow::Result<()> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    macro_rules! numbers {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            out.extend((0..a.len()).map(|i| if a.is_null(i) { Cell::Null } else { Cell::Num(a.value(i) as f64) }));
        }};
    }
    match array.data_type() {
        DataType::Float32 => numbers!(Float32Type),
        DataType::Float64 => numbers!(Float64Type),
        DataType::Int8 => numbers!(Int8Type),
        DataType::Int16 => numbers!(Int16Type),
        DataType::Int32 => numbers!(Int32Type),
        DataType::Int64 => numbers!(Int64Type),
        DataType::UInt8 => numbers!(UInt8Type),
        DataType::UInt16 => numbers!(UInt16Type),
        DataType::UInt32 => numbers!(UInt32Type),
        DataType::UInt64 => numbers!(UInt64Type),
        DataType::Boolean => {
            let a = array.as_boolean();
            out.extend((0..a.len()).map(|i| if a.is_null(i) { Cell::Null } else { Cell::Bool(a.value(i)) }));
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            out.extend((0..a.len()).map(|i| if a.is_null(i) { Cell::Null } else { Cell::Text(a.value(i).to_owned()) }));
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            out.extend((0..a.len()).map(|i| if a.is_null(i) { Cell::Null } else { Cell::Text(a.value(i).to_owned()) }));
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            out.extend((0..a.len()).map(|i| if a.is_null(i) { Cell::Null } else { Cell::Text(a.value(i).to_owned()) }));
        }
        DataType::Dictionary(_, value) if **value == DataType::Utf8 => {
            // pandas categoricals.
            let a = array.as_any_dictionary();
            let values = a.values().as_string::<i32>();
            let keys = a.normalized_keys();
            out.extend((0..array.len()).map(|i| if array.is_null(i) { Cell::Null } else { Cell::Text(values.value(keys[i]).to_owned()) }));
        }
        other => bail!("column '{name}' has Parquet/Arrow type {other}, which Steward does not read (numbers, booleans and strings)"),
    }
    Ok(())
}

/// Writes a model's outputs, one column per output value (see `output_columns`).
pub fn write_outputs(path: &Path, outputs: &[Tensor]) -> anyhow::Result<()> {
    match format(path)? {
        Format::Csv => write_csv(path, &Frame::from_outputs(outputs)),
        Format::Parquet => write_parquet(path, outputs).with_context(|| format!("writing {}", path.display())),
    }
}

fn write_parquet(path: &Path, outputs: &[Tensor]) -> anyhow::Result<()> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for t in outputs {
        let (rows, width) = (t.rows(), output_width(t));
        for (j, name) in output_columns(t).into_iter().enumerate() {
            let at = |r: usize| r * width + j;
            let array: ArrayRef = match &t.data {
                Data::Fp32(v) => Arc::new(Float32Array::from_iter_values((0..rows).map(|r| v[at(r)]))),
                Data::Fp64(v) => Arc::new(Float64Array::from_iter_values((0..rows).map(|r| v[at(r)]))),
                Data::Int64(v) => Arc::new(Int64Array::from_iter_values((0..rows).map(|r| v[at(r)]))),
                Data::Int32(v) => Arc::new(Int32Array::from_iter_values((0..rows).map(|r| v[at(r)]))),
                Data::Bool(v) => Arc::new(BooleanArray::from_iter((0..rows).map(|r| Some(v[at(r)])))),
                Data::Bytes(v) => Arc::new(StringArray::from_iter_values((0..rows).map(|r| v[at(r)].as_str()))),
            };
            fields.push(Field::new(name, array.data_type().clone(), false));
            arrays.push(array);
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let file = std::fs::File::create(path)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

/// Writes typed columns (as the data generators make them) as CSV or Parquet.
pub fn write_columns(path: &Path, columns: &[(String, Values)]) -> anyhow::Result<()> {
    match format(path)? {
        Format::Csv => {
            let frame = Frame {
                columns: columns
                    .iter()
                    .map(|(name, v)| {
                        let cells = match v {
                            Values::Int(x) => x.iter().map(|v| Cell::Text(v.to_string())).collect(),
                            Values::Float(x) => x.iter().map(|v| if v.is_nan() { Cell::Null } else { Cell::Num(*v) }).collect(),
                            Values::Text(x) => x.iter().map(|v| Cell::Text(v.clone())).collect(),
                        };
                        (name.clone(), cells)
                    })
                    .collect(),
            };
            write_csv(path, &frame)
        }
        Format::Parquet => {
            let write = || -> anyhow::Result<()> {
                let arrays: Vec<ArrayRef> = columns
                    .iter()
                    .map(|(_, v)| -> ArrayRef {
                        match v {
                            Values::Int(x) => Arc::new(Int64Array::from(x.clone())),
                            Values::Float(x) => Arc::new(Float64Array::from_iter(x.iter().map(|v| (!v.is_nan()).then_some(*v)))),
                            Values::Text(x) => Arc::new(StringArray::from_iter_values(x.iter())),
                        }
                    })
                    .collect();
                let fields: Vec<Field> = columns.iter().zip(&arrays).map(|((name, _), a)| Field::new(name, a.data_type().clone(), a.null_count() > 0)).collect();
                let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
                let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, batch.schema(), None)?;
                writer.write(&batch)?;
                writer.close()?;
                Ok(())
            };
            write().with_context(|| format!("writing {}", path.display()))
        }
    }
}

/// Writes a frame as CSV; numbers in their shortest exact form.
fn write_csv(path: &Path, frame: &Frame) -> anyhow::Result<()> {
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
