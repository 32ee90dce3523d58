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
        let columns = read_csv(
            reader,
            what,
            usize::MAX,
            |names| Ok(names.iter().map(|n| (n.to_string(), Vec::new())).collect::<Vec<(String, Vec<Cell>)>>()),
            |columns, record| {
                for (col, field) in columns.iter_mut().zip(record.iter()) {
                    col.1.push(if field.is_empty() { Cell::Null } else { Cell::Text(field.to_string()) });
                }
                Ok(())
            },
        )?;
        Ok(Self { columns })
    }

    /// The model inputs this frame stands for.
    pub fn to_inputs(&self, signature: &Signature) -> Result<Vec<Tensor>, RuntimeError> {
        let names: Vec<&str> = self.columns.iter().map(|c| c.0.as_str()).collect();
        let mut plan = InputPlan::new(&names, signature, self.rows())?;
        for r in 0..self.rows() {
            plan.push_row(|c| self.columns[c].1[r].as_field())?;
        }
        Ok(plan.finish())
    }

    /// Reads CSV with a header row straight into the model's inputs, row by row: no cell is
    /// held as text, so memory is the tensors' (plus one record). More than `max_rows` data
    /// rows is an error, raised as the row past the limit is read.
    pub fn csv_inputs(reader: impl std::io::Read, what: &str, signature: &Signature, max_rows: usize) -> Result<Vec<Tensor>, RuntimeError> {
        let plan = read_csv(
            reader,
            what,
            max_rows,
            |names| InputPlan::new(names, signature, 0),
            |plan, record| {
                plan.push_row(|c| match &record[c] {
                    "" => Field::Null,
                    f => Field::Text(f),
                })
            },
        )?;
        Ok(plan.finish())
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

/// Reads CSV with a header row: `header` makes the reader's state from the column names, then
/// `row` takes each record, checked to have one field per column; the state is returned. More
/// than `max_rows` records is an error, raised as the record past the limit is read. `what`
/// names the source in errors.
fn read_csv<S>(
    reader: impl std::io::Read,
    what: &str,
    max_rows: usize,
    header: impl FnOnce(&[&str]) -> Result<S, RuntimeError>,
    mut row: impl FnMut(&mut S, &csv::StringRecord) -> Result<(), RuntimeError>,
) -> Result<S, RuntimeError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
    let names = reader.headers().map_err(|e| RuntimeError::BadValue(format!("{what}: reading the header: {e}")))?.clone();
    let width = names.len();
    let mut state = header(&names.iter().collect::<Vec<_>>())?;
    let mut record = csv::StringRecord::new();
    let mut line = 0;
    while reader.read_record(&mut record).map_err(|e| RuntimeError::BadValue(format!("{what}: data row {}: {e}", line + 1)))? {
        line += 1;
        if line > max_rows {
            return Err(RuntimeError::TooManyRows { max: max_rows });
        }
        if record.len() != width {
            return Err(RuntimeError::BadValue(format!("{what}: data row {line} has {} fields, the header has {width}", record.len())));
        }
        row(&mut state, &record)?;
    }
    Ok(state)
}

/// A cell as conversion sees it, borrowed: from a [`Cell`] or straight from a CSV record.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Null,
    Num(f64),
    Text(&'a str),
    Bool(bool),
}

impl Cell {
    pub fn as_field(&self) -> Field<'_> {
        match self {
            Cell::Null => Field::Null,
            Cell::Num(v) => Field::Num(*v),
            Cell::Text(s) => Field::Text(s),
            Cell::Bool(b) => Field::Bool(*b),
        }
    }
}

/// Which columns feed which input, decided from the header alone, and the inputs' buffers
/// filled row by row. A model whose inputs are named after columns takes each column as a
/// `[rows, 1]` (or `[rows]`) tensor; a model with one input not named after a column takes
/// every column, in order, as a `[rows, columns]` matrix.
struct InputPlan {
    /// Per input: its spec, its buffer and the column it reads (`None`: every column).
    inputs: Vec<(TensorSpec, Data, Option<usize>)>,
    columns: Vec<String>,
    rows: usize,
}

impl InputPlan {
    fn new(columns: &[&str], signature: &Signature, rows_hint: usize) -> Result<Self, RuntimeError> {
        let position = |spec: &TensorSpec| columns.iter().position(|c| *c == spec.name);
        let inputs = match signature.inputs.as_slice() {
            [only] if position(only).is_none() => vec![(only.clone(), empty(only.datatype, rows_hint * columns.len()), None)],
            specs => specs
                .iter()
                .map(|spec| {
                    let col = position(spec).ok_or_else(|| RuntimeError::MissingInput {
                        name: spec.name.clone(),
                        expected: format!("one column per input: {}", signature.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")),
                    })?;
                    Ok((spec.clone(), empty(spec.datatype, rows_hint), Some(col)))
                })
                .collect::<Result<_, RuntimeError>>()?,
        };
        Ok(Self { inputs, columns: columns.iter().map(|c| c.to_string()).collect(), rows: 0 })
    }

    /// Converts one row into the buffers; `field(c)` is the row's field in column `c`.
    fn push_row<'a>(&mut self, field: impl Fn(usize) -> Field<'a>) -> Result<(), RuntimeError> {
        let row = self.rows;
        for (spec, data, col) in &mut self.inputs {
            match *col {
                Some(c) => push(data, spec.datatype, &self.columns[c], row, field(c))?,
                None => {
                    for (c, name) in self.columns.iter().enumerate() {
                        push(data, spec.datatype, name, row, field(c))?;
                    }
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> Vec<Tensor> {
        let (rows, cols) = (self.rows, self.columns.len());
        self.inputs
            .into_iter()
            .map(|(spec, data, col)| {
                let shape = match col {
                    None => vec![rows, cols],
                    Some(_) if spec.shape.len() == 1 => vec![rows],
                    Some(_) => vec![rows, 1],
                };
                Tensor::new(spec.name, shape, data)
            })
            .collect()
    }
}

fn empty(want: DType, capacity: usize) -> Data {
    match want {
        DType::Fp32 => Data::Fp32(Vec::with_capacity(capacity)),
        DType::Fp64 => Data::Fp64(Vec::with_capacity(capacity)),
        DType::Int64 => Data::Int64(Vec::with_capacity(capacity)),
        DType::Int32 => Data::Int32(Vec::with_capacity(capacity)),
        DType::Bool => Data::Bool(Vec::with_capacity(capacity)),
        DType::Bytes => Data::Bytes(Vec::with_capacity(capacity)),
    }
}

fn bad(column: &str, row: usize, field: Field, want: DType) -> RuntimeError {
    let shown = match field {
        Field::Null => "an empty value".to_string(),
        Field::Num(v) => v.to_string(),
        Field::Text(s) => format!("{s:?}"),
        Field::Bool(b) => b.to_string(),
    };
    RuntimeError::BadValue(format!("column '{column}' row {row}: {shown} is not a {want} value"))
}

fn number(column: &str, row: usize, field: Field, want: DType) -> Result<f64, RuntimeError> {
    match field {
        Field::Num(v) => Ok(v),
        Field::Null => Ok(f64::NAN),
        Field::Bool(b) => Ok(f64::from(u8::from(b))),
        Field::Text(s) if s.trim().is_empty() => Ok(f64::NAN),
        Field::Text(s) => s.trim().parse::<f64>().map_err(|_| bad(column, row, field, want)),
    }
}

fn integer(column: &str, row: usize, field: Field, want: DType) -> Result<i64, RuntimeError> {
    let v = number(column, row, field, want)?;
    if v.fract() != 0.0 || !v.is_finite() || v.abs() > 9.007_199_254_740_992e15 {
        return Err(bad(column, row, field, want));
    }
    Ok(v as i64)
}

/// Appends one field to an input's buffer, converted to the input's type. A finite number
/// beyond FP32's range is refused, not made infinite.
fn push(data: &mut Data, want: DType, column: &str, row: usize, field: Field) -> Result<(), RuntimeError> {
    match data {
        Data::Fp32(v) => {
            let x = number(column, row, field, want)?;
            let y = x as f32;
            if x.is_finite() && !y.is_finite() {
                return Err(RuntimeError::BadValue(format!("column '{column}' row {row}: {x} is beyond the range of FP32")));
            }
            v.push(y);
        }
        Data::Fp64(v) => v.push(number(column, row, field, want)?),
        Data::Int64(v) => v.push(integer(column, row, field, want)?),
        Data::Int32(v) => v.push(integer(column, row, field, want).and_then(|x| i32::try_from(x).map_err(|_| bad(column, row, field, want)))?),
        Data::Bool(v) => v.push(match field {
            Field::Bool(b) => b,
            Field::Num(x) if x == 0.0 || x == 1.0 => x == 1.0,
            Field::Text(s) if s == "true" || s == "false" => s == "true",
            _ => return Err(bad(column, row, field, want)),
        }),
        Data::Bytes(v) => v.push(match field {
            Field::Text(s) => s.to_owned(),
            Field::Num(x) => x.to_string(),
            Field::Bool(b) => b.to_string(),
            Field::Null => String::new(),
        }),
    }
    Ok(())
}
