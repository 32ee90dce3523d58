//! Tables in, tensors out: how a column-oriented frame (CSV, Parquet, MLflow's
//! `dataframe_split` / `dataframe_records`) maps onto a model's inputs, and outputs back onto
//! columns. One rule for the batch scorer and every protocol that carries frames.
//!
//! A model whose inputs are named after columns takes each column as a `[rows, 1]` (or `[rows]`)
//! tensor; a model with one input not named after a column takes the whole frame as a
//! `[rows, columns]` matrix, columns in frame order (as MLflow's ONNX flavor does).

use crate::tensor::{DType, Data, Tensor};
use crate::{RuntimeError, Signature, TensorSpec};

/// One cell of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Num(f64),
    Text(String),
    Bool(bool),
}

/// A table held column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub columns: Vec<(String, Vec<Cell>)>,
}

impl Frame {
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.1.len())
    }

    /// Builds a frame from rows, checking every row has one cell per column.
    pub fn from_rows(names: Vec<String>, rows: Vec<Vec<Cell>>) -> Result<Self, RuntimeError> {
        let mut columns: Vec<(String, Vec<Cell>)> = names.into_iter().map(|n| (n, Vec::with_capacity(rows.len()))).collect();
        for (r, row) in rows.into_iter().enumerate() {
            if row.len() != columns.len() {
                return Err(RuntimeError::BadValue(format!("row {r} has {} values for {} columns", row.len(), columns.len())));
            }
            for (col, cell) in columns.iter_mut().zip(row) {
                col.1.push(cell);
            }
        }
        Ok(Self { columns })
    }

    /// Reads CSV with a header row. Cells stay text (empty ones null); the model's signature
    /// decides their types. `what` names the source in errors.
    pub fn from_csv(reader: impl std::io::Read, what: &str) -> Result<Self, RuntimeError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
        let names: Vec<String> = reader
            .headers()
            .map_err(|e| RuntimeError::BadValue(format!("{what}: reading the header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut columns: Vec<(String, Vec<Cell>)> = names.into_iter().map(|n| (n, Vec::new())).collect();
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|e| RuntimeError::BadValue(format!("{what}: data row {}: {e}", line + 1)))?;
            if record.len() != columns.len() {
                return Err(RuntimeError::BadValue(format!("{what}: data row {} has {} fields, the header has {}", line + 1, record.len(), columns.len())));
            }
            for (col, field) in columns.iter_mut().zip(record.iter()) {
                col.1.push(if field.is_empty() { Cell::Null } else { Cell::Text(field.to_string()) });
            }
        }
        Ok(Self { columns })
    }

    /// The model inputs this frame stands for.
    pub fn to_inputs(&self, signature: &Signature) -> Result<Vec<Tensor>, RuntimeError> {
        let named = |spec: &TensorSpec| self.columns.iter().find(|c| c.0 == spec.name);
        let rows = self.rows();
        if let [only] = signature.inputs.as_slice()
            && named(only).is_none()
        {
            let cols = self.columns.len();
            let mut cells = Vec::with_capacity(rows * cols);
            for r in 0..rows {
                for c in &self.columns {
                    cells.push((&c.0, r, &c.1[r]));
                }
            }
            let data = convert(only.datatype, cells)?;
            return Ok(vec![Tensor::new(only.name.clone(), vec![rows, cols], data)]);
        }
        signature
            .inputs
            .iter()
            .map(|spec| {
                let (name, cells) = named(spec).ok_or_else(|| RuntimeError::MissingInput {
                    name: spec.name.clone(),
                    expected: format!("one column per input: {}", signature.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")),
                })?;
                let data = convert(spec.datatype, cells.iter().enumerate().map(|(r, c)| (name, r, c)).collect())?;
                let shape = if spec.shape.len() == 1 { vec![rows] } else { vec![rows, 1] };
                Ok(Tensor::new(spec.name.clone(), shape, data))
            })
            .collect()
    }

    /// Output tensors as columns (see [`output_columns`]).
    pub fn from_outputs(outputs: &[Tensor]) -> Self {
        let mut columns = Vec::new();
        for t in outputs {
            let (rows, width) = (t.rows(), output_width(t));
            for (j, name) in output_columns(t).into_iter().enumerate() {
                let cells = (0..rows).map(|r| cell(&t.data, r * width + j)).collect();
                columns.push((name, cells));
            }
        }
        Self { columns }
    }
}

/// Values per row of an output.
pub fn output_width(t: &Tensor) -> usize {
    let rows = t.rows();
    if rows == 0 { 0 } else { t.data.len() / rows }
}

/// The columns an output becomes: `name` for one value per row, `name_0`, `name_1`, ... for
/// several. Element `r * width + j` of the tensor is row `r` of column `j`.
pub fn output_columns(t: &Tensor) -> Vec<String> {
    let width = output_width(t);
    (0..width).map(|j| if width == 1 { t.name.clone() } else { format!("{}_{j}", t.name) }).collect()
}

fn cell(data: &Data, i: usize) -> Cell {
    match data {
        Data::Bool(v) => Cell::Bool(v[i]),
        Data::Bytes(v) => Cell::Text(v[i].clone()),
        Data::Int32(v) => Cell::Num(f64::from(v[i])),
        Data::Int64(v) => Cell::Num(v[i] as f64),
        Data::Fp32(v) => Cell::Num(f64::from(v[i])),
        Data::Fp64(v) => Cell::Num(v[i]),
    }
}

fn bad(column: &str, row: usize, cell: &Cell, want: DType) -> RuntimeError {
    RuntimeError::BadValue(format!("column '{column}' row {row}: {cell:?} is not a {want} value"))
}

fn number(column: &str, row: usize, cell: &Cell, want: DType) -> Result<f64, RuntimeError> {
    match cell {
        Cell::Num(v) => Ok(*v),
        Cell::Null => Ok(f64::NAN),
        Cell::Bool(b) => Ok(f64::from(u8::from(*b))),
        Cell::Text(s) if s.trim().is_empty() => Ok(f64::NAN),
        Cell::Text(s) => s.trim().parse::<f64>().map_err(|_| bad(column, row, cell, want)),
    }
}

fn integer(column: &str, row: usize, cell: &Cell, want: DType) -> Result<i64, RuntimeError> {
    let v = number(column, row, cell, want)?;
    if v.fract() != 0.0 || !v.is_finite() || v.abs() > 9.007_199_254_740_992e15 {
        return Err(bad(column, row, cell, want));
    }
    Ok(v as i64)
}

fn convert(want: DType, cells: Vec<(&String, usize, &Cell)>) -> Result<Data, RuntimeError> {
    macro_rules! collect {
        ($f:expr) => {
            cells.iter().map(|&(c, r, cell)| $f(c, r, cell)).collect::<Result<Vec<_>, RuntimeError>>()?
        };
    }
    Ok(match want {
        DType::Fp32 => Data::Fp32(collect!(|c, r, cell| number(c, r, cell, want).map(|v| v as f32))),
        DType::Fp64 => Data::Fp64(collect!(|c, r, cell| number(c, r, cell, want))),
        DType::Int64 => Data::Int64(collect!(|c, r, cell| integer(c, r, cell, want))),
        DType::Int32 => Data::Int32(collect!(|c, r, cell| integer(c, r, cell, want).and_then(|v| i32::try_from(v).map_err(|_| bad(c, r, cell, want))))),
        DType::Bool => Data::Bool(collect!(|c: &str, r, cell: &Cell| match cell {
            Cell::Bool(b) => Ok(*b),
            Cell::Num(v) if *v == 0.0 || *v == 1.0 => Ok(*v == 1.0),
            Cell::Text(s) if s == "true" || s == "false" => Ok(s == "true"),
            _ => Err(bad(c, r, cell, want)),
        })),
        DType::Bytes => Data::Bytes(collect!(|_c: &str, _r, cell: &Cell| Ok::<_, RuntimeError>(match cell {
            Cell::Text(s) => s.clone(),
            Cell::Num(v) => v.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Null => String::new(),
        }))),
    })
}
