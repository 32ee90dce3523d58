//! Tensors on the wire: JSON arrays (flat or nested) and the Open Inference Protocol's binary
//! encoding (little-endian elements; BYTES as a 4-byte length before each element), both
//! ways, plus per-row views of outputs for the row-oriented protocols.

use serde_json::Value;
use steward_runtime::{DType, Data, Tensor};

use super::InferError;

fn bad(msg: String) -> InferError {
    InferError::BadInput(msg)
}

/// The shape of a nested JSON array (`[[1, 2], [3, 4]]` is `[2, 2]`), checking it is regular.
pub fn nested_shape(name: &str, v: &Value) -> Result<Vec<usize>, InferError> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        shape.push(a.len());
        match a.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    let mut flat = Vec::new();
    flatten(v, &mut flat);
    let n: usize = shape.iter().product();
    if flat.len() != n {
        return Err(bad(format!("input '{name}' is a ragged array: its rows differ in length")));
    }
    Ok(shape)
}

pub fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        other => out.push(other),
    }
}

/// JSON values as elements of `dtype`; `null` stands for a missing float (NaN).
pub fn typed(name: &str, dtype: DType, values: &[&Value]) -> Result<Data, InferError> {
    let wrong = |i: usize, v: &Value| {
        let range = if v.is_number() && matches!(dtype, DType::Fp32 | DType::Int32) { " (or is out of its range)" } else { "" };
        bad(format!("input '{name}' element {i} ({v}) is not a {dtype} value{range}"))
    };
    macro_rules! each {
        ($f:expr) => {
            values.iter().enumerate().map(|(i, v)| $f(v).ok_or_else(|| wrong(i, v))).collect::<Result<Vec<_>, _>>()?
        };
    }
    Ok(match dtype {
        DType::Fp32 => Data::Fp32(each!(|v: &Value| if v.is_null() { Some(f32::NAN) } else { v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()) })),
        DType::Fp64 => Data::Fp64(each!(|v: &Value| if v.is_null() { Some(f64::NAN) } else { v.as_f64() })),
        DType::Int64 => Data::Int64(each!(|v: &Value| v.as_i64())),
        DType::Int32 => Data::Int32(each!(|v: &Value| v.as_i64().and_then(|x| i32::try_from(x).ok()))),
        DType::Bool => Data::Bool(each!(|v: &Value| v.as_bool())),
        DType::Bytes => Data::Bytes(each!(|v: &Value| v.as_str().map(str::to_owned))),
    })
}

/// A tensor's `data` read as the JSON parser meets it, flattened however deeply it nests:
/// numbers go straight into one `f64` buffer (8 bytes each, where a tree of `Value`s takes 32
/// and a list of references to them 8 more), so a large request costs about its element count
/// in memory, not several times its body. Anything else — a string, boolean, null, object or an
/// integer beyond 2^53 — turns the buffer into JSON values, converted by [`typed`] as before.
#[derive(Debug, Default)]
pub struct FlatData {
    numbers: Vec<f64>,
    /// Per number: written with a fraction or an exponent (so not an integer to INT types).
    fraction: Vec<bool>,
    values: Option<Vec<Value>>,
}

/// Integers up to this magnitude are exact in an `f64`.
const EXACT: i128 = 1 << 53;

impl FlatData {
    pub fn len(&self) -> usize {
        self.values.as_ref().map_or(self.numbers.len(), Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn number(&self, i: usize) -> Value {
        let x = self.numbers[i];
        if self.fraction[i] { serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number) } else { Value::from(x as i64) }
    }

    fn values(&mut self) -> &mut Vec<Value> {
        if self.values.is_none() {
            let values = (0..self.numbers.len()).map(|i| self.number(i)).collect();
            self.numbers = Vec::new();
            self.fraction = Vec::new();
            self.values = Some(values);
        }
        self.values.as_mut().expect("values")
    }

    fn push_integer(&mut self, v: i128) {
        match &mut self.values {
            None if v.abs() <= EXACT => {
                self.numbers.push(v as f64);
                self.fraction.push(false);
            }
            _ => {
                let v = i64::try_from(v).map(Value::from).unwrap_or_else(|_| Value::from(v as u64));
                self.values().push(v);
            }
        }
    }

    fn push_float(&mut self, v: f64) {
        match &mut self.values {
            None => {
                self.numbers.push(v);
                self.fraction.push(true);
            }
            Some(values) => values.push(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)),
        }
    }

    /// The elements as `dtype`, with [`typed`]'s rules and errors.
    pub fn typed(self, name: &str, dtype: DType) -> Result<Data, InferError> {
        if let Some(values) = &self.values {
            return typed(name, dtype, &values.iter().collect::<Vec<_>>());
        }
        let wrong = |i: usize| {
            let range = if matches!(dtype, DType::Fp32 | DType::Int32) { " (or is out of its range)" } else { "" };
            bad(format!("input '{name}' element {i} ({}) is not a {dtype} value{range}", self.number(i)))
        };
        let integer = |i: usize| if self.fraction[i] { Err(wrong(i)) } else { Ok(self.numbers[i] as i64) };
        Ok(match dtype {
            DType::Fp32 => Data::Fp32(self.numbers.iter().enumerate().map(|(i, x)| Some(*x as f32).filter(|f| f.is_finite()).ok_or_else(|| wrong(i))).collect::<Result<_, _>>()?),
            DType::Fp64 => Data::Fp64(self.numbers.clone()),
            DType::Int64 => Data::Int64((0..self.numbers.len()).map(integer).collect::<Result<_, _>>()?),
            DType::Int32 => Data::Int32((0..self.numbers.len()).map(|i| integer(i).and_then(|v| i32::try_from(v).map_err(|_| wrong(i)))).collect::<Result<_, _>>()?),
            DType::Bool | DType::Bytes => match self.numbers.is_empty() {
                true => typed(name, dtype, &[])?,
                false => return Err(wrong(0)),
            },
        })
    }
}

impl<'de> serde::Deserialize<'de> for FlatData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut flat = FlatData::default();
        serde::de::DeserializeSeed::deserialize(Into(&mut flat), d)?;
        Ok(flat)
    }
}

/// Reads one element, or an array of them at any depth, into a [`FlatData`].
struct Into<'a>(&'a mut FlatData);

impl<'de> serde::de::DeserializeSeed<'de> for Into<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Into<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("tensor elements")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Into(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push_integer(i128::from(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push_integer(i128::from(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push_float(v);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.values().push(Value::Bool(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.values().push(Value::String(v.to_owned()));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.values().push(Value::Null);
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let v = <Value as serde::Deserialize>::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.0.values().push(v);
        Ok(())
    }
}

/// A JSON (possibly nested) array as a tensor of `dtype`, its shape taken from the nesting.
pub fn from_nested(name: &str, dtype: DType, v: &Value) -> Result<Tensor, InferError> {
    let shape = nested_shape(name, v)?;
    let mut flat = Vec::new();
    flatten(v, &mut flat);
    Ok(Tensor::new(name, shape, typed(name, dtype, &flat)?))
}

/// The number of elements a shape holds; an overflowing shape is the caller's error.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize, InferError> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(format!("input '{name}' has shape {shape:?}, which holds more elements than can exist")))
}

/// Decodes an OIP binary tensor.
pub fn from_binary(name: &str, dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Data, InferError> {
    let n = element_count(name, shape)?;
    if let Some(width) = dtype.width()
        && Some(bytes.len()) != n.checked_mul(width)
    {
        return Err(bad(format!("input '{name}' has {} bytes of binary data; shape {shape:?} of {dtype} needs {}", bytes.len(), n * width)));
    }
    macro_rules! le {
        ($t:ty, $w:expr) => {
            bytes.chunks_exact($w).map(|c| <$t>::from_le_bytes(c.try_into().expect("exact chunk"))).collect()
        };
    }
    Ok(match dtype {
        DType::Fp32 => Data::Fp32(le!(f32, 4)),
        DType::Fp64 => Data::Fp64(le!(f64, 8)),
        DType::Int32 => Data::Int32(le!(i32, 4)),
        DType::Int64 => Data::Int64(le!(i64, 8)),
        DType::Bool => Data::Bool(bytes.iter().map(|b| *b != 0).collect()),
        DType::Bytes => {
            // Each element takes at least its 4-byte length: a shape the body cannot hold is
            // refused before anything is allocated for it.
            if n > bytes.len() / 4 {
                return Err(bad(format!("input '{name}' has {} bytes of binary data; shape {shape:?} of BYTES needs at least {} (4 per element)", bytes.len(), n.saturating_mul(4))));
            }
            let mut out = Vec::with_capacity(n);
            let mut rest = bytes;
            while !rest.is_empty() {
                let (len, tail) = rest.split_at_checked(4).ok_or_else(|| bad(format!("input '{name}': truncated BYTES element")))?;
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                let (s, tail) = tail.split_at_checked(len).ok_or_else(|| bad(format!("input '{name}': truncated BYTES element")))?;
                out.push(String::from_utf8(s.to_vec()).map_err(|_| bad(format!("input '{name}': a BYTES element is not UTF-8")))?);
                rest = tail;
            }
            if out.len() != n {
                return Err(bad(format!("input '{name}' has {} BYTES elements; shape {shape:?} needs {n}", out.len())));
            }
            Data::Bytes(out)
        }
    })
}

/// Encodes a tensor's elements in the OIP binary form.
pub fn to_binary(d: &Data, out: &mut Vec<u8>) {
    match d {
        Data::Fp32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Fp64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Int32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Int64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        Data::Bytes(v) => v.iter().for_each(|s| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }),
    }
}

fn element(d: &Data, i: usize) -> Value {
    match d {
        Data::Bool(v) => v[i].into(),
        Data::Int32(v) => v[i].into(),
        Data::Int64(v) => v[i].into(),
        Data::Fp32(v) => serde_json::Number::from_f64(f64::from(v[i])).map_or(Value::Null, |n| {
            // f32 printed through f64 would show binary noise (0.1 as 0.10000000149...).
            let s = v[i].to_string();
            s.parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::Number(n))
        }),
        Data::Fp64(v) => serde_json::Number::from_f64(v[i]).map_or(Value::Null, Value::Number),
        Data::Bytes(v) => v[i].clone().into(),
    }
}

/// All elements, flat.
pub fn flat_json(d: &Data) -> Value {
    Value::Array((0..d.len()).map(|i| element(d, i)).collect())
}

/// Element `i` written straight to a serializer, as [`element`] would make it: FP32 at its
/// shortest (0.1, not 0.10000000149011612: the same FP32 when read back), NaN as null.
struct Elem<'a>(&'a Data, usize);

impl serde::Serialize for Elem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Elem(d, i) = *self;
        match d {
            Data::Bool(v) => s.serialize_bool(v[i]),
            Data::Int32(v) => s.serialize_i32(v[i]),
            Data::Int64(v) => s.serialize_i64(v[i]),
            Data::Fp32(v) => s.serialize_f32(v[i]),
            Data::Fp64(v) => s.serialize_f64(v[i]),
            Data::Bytes(v) => s.serialize_str(&v[i]),
        }
    }
}

/// Row `r` of an output: a scalar for one value per row, else a list.
struct RowValue<'a>(&'a Tensor, usize);

impl serde::Serialize for RowValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let RowValue(t, r) = *self;
        let width = t.data.len() / t.rows().max(1);
        if width == 1 && t.shape.len() <= 2 {
            return Elem(&t.data, r).serialize(s);
        }
        let mut seq = s.serialize_seq(Some(width))?;
        for i in r * width..(r + 1) * width {
            seq.serialize_element(&Elem(&t.data, i))?;
        }
        seq.end()
    }
}

/// An output's rows, one value each: what a single-output model answers per row.
pub struct RowValues<'a>(pub &'a Tensor);

impl serde::Serialize for RowValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((0..self.0.rows()).map(|r| RowValue(self.0, r)))
    }
}

/// Outputs as one object per row with every output (`[{name: value, ...}, ...]`), written
/// straight to the serializer: an answer of a million rows is never a tree of values.
pub struct RowRecords<'a>(pub &'a [Tensor]);

impl serde::Serialize for RowRecords<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Row<'a>(&'a [Tensor], usize);
        impl serde::Serialize for Row<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|t| (&t.name, RowValue(t, self.1))))
            }
        }
        let rows = self.0.first().map_or(0, Tensor::rows);
        s.collect_seq((0..rows).map(|r| Row(self.0, r)))
    }
}

/// Tensors as the prediction log stores them: `{name: {"shape": [...], "data": [...]}}`, FP32
/// at its shortest, NaN as null.
pub struct LoggedTensors<'a>(pub &'a [Tensor]);

impl serde::Serialize for LoggedTensors<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Flat<'a>(&'a Data);
        impl serde::Serialize for Flat<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..self.0.len()).map(|i| Elem(self.0, i)))
            }
        }
        #[derive(serde::Serialize)]
        struct One<'a> {
            shape: &'a [usize],
            data: Flat<'a>,
        }
        s.collect_map(self.0.iter().map(|t| (&t.name, One { shape: &t.shape, data: Flat(&t.data) })))
    }
}

/// Parses a request body as JSON, accepting the bare `NaN` that Python's `json` module writes
/// for missing values (read as null, which float inputs take as NaN).
pub fn parse_json(body: &[u8]) -> Result<Value, InferError> {
    parse_lenient(body).map_err(|e| bad(format!("the request is not valid JSON: {e}")))
}

/// Parses a body as `T` as [`parse_json`] does (bare `NaN` read as null); the error is the
/// first attempt's.
pub fn parse_lenient<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            let mut out = Vec::with_capacity(body.len());
            let (mut in_string, mut escaped, mut i) = (false, false, 0);
            while i < body.len() {
                let b = body[i];
                if in_string {
                    in_string = escaped || b != b'"';
                    escaped = !escaped && b == b'\\';
                } else if b == b'"' {
                    in_string = true;
                } else if body[i..].starts_with(b"NaN") {
                    out.extend_from_slice(b"null");
                    i += 3;
                    continue;
                }
                out.push(b);
                i += 1;
            }
            serde_json::from_slice(&out).map_err(|_| first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_shape_the_body_cannot_hold_is_refused_before_allocating() {
        // 2^36 BYTES elements announced with no bytes: refused by arithmetic, not by allocating.
        let err = from_binary("x", DType::Bytes, &[1 << 36], &[]).unwrap_err();
        assert_eq!(err.message(), "input 'x' has 0 bytes of binary data; shape [68719476736] of BYTES needs at least 274877906944 (4 per element)");
        let err = from_binary("x", DType::Fp32, &[usize::MAX, 2], &[]).unwrap_err();
        assert!(err.message().contains("holds more elements than can exist"), "{}", err.message());
        let mut two = Vec::new();
        to_binary(&Data::Bytes(vec!["a".into(), "bc".into()]), &mut two);
        assert!(matches!(from_binary("x", DType::Bytes, &[2], &two), Ok(Data::Bytes(v)) if v == ["a", "bc"]));
    }

    #[test]
    fn data_is_read_straight_into_numbers_with_the_same_rules() {
        let flat = |text: &str| serde_json::from_str::<super::FlatData>(text).unwrap();
        // Nested at any depth, read flat; integers stay integers for INT types.
        assert_eq!(flat("[[1, 2], [3, [4]]]").typed("x", DType::Int64).unwrap(), Data::Int64(vec![1, 2, 3, 4]));
        assert_eq!(flat("[[1.5, 2], [3e0, -4]]").typed("x", DType::Fp32).unwrap(), Data::Fp32(vec![1.5, 2.0, 3.0, -4.0]));
        assert_eq!(flat("[1.0, 2]").typed("x", DType::Int64).unwrap_err().message(), "input 'x' element 0 (1.0) is not a INT64 value");
        assert_eq!(flat("[1, 3000000000]").typed("x", DType::Int32).unwrap_err().message(), "input 'x' element 1 (3000000000) is not a INT32 value (or is out of its range)");
        assert_eq!(flat("[1e39]").typed("x", DType::Fp32).unwrap_err().message(), "input 'x' element 0 (1e+39) is not a FP32 value (or is out of its range)");
        // Past 2^53, strings, booleans and nulls: JSON values, converted as before.
        assert_eq!(flat("[9007199254740993, 1]").typed("x", DType::Int64).unwrap(), Data::Int64(vec![9007199254740993, 1]));
        assert_eq!(flat("[[\"a\"], [\"b\"]]").typed("x", DType::Bytes).unwrap(), Data::Bytes(vec!["a".into(), "b".into()]));
        assert_eq!(flat("[true, false]").typed("x", DType::Bool).unwrap(), Data::Bool(vec![true, false]));
        let with_null = flat("[1.5, null]").typed("x", DType::Fp32).unwrap();
        assert!(matches!(&with_null, Data::Fp32(v) if v[0] == 1.5 && v[1].is_nan()));
        assert_eq!(flat("[1, {\"a\": 1}]").len(), 2);
        assert_eq!(flat("[1]").typed("x", DType::Bool).unwrap_err().message(), "input 'x' element 0 (1) is not a BOOL value");
    }

    #[test]
    fn fp32_values_beyond_its_range_are_refused_not_made_infinite() {
        let big = serde_json::json!(1e39);
        let err = typed("x", DType::Fp32, &[&big]).unwrap_err();
        assert_eq!(err.message(), "input 'x' element 0 (1e+39) is not a FP32 value (or is out of its range)");
        assert!(matches!(typed("x", DType::Fp32, &[&serde_json::json!(3.5)]), Ok(Data::Fp32(v)) if v == [3.5]));
        assert!(matches!(typed("x", DType::Fp64, &[&big]), Ok(Data::Fp64(v)) if v == [1e39]));
    }
}
