//! A minimal ONNX writer: the protobuf wire encoding of the few messages a served model needs
//! (model, graph, node, attribute, value info, tensor), so that trained models are ONNX files
//! the runtime — and onnxruntime — load like any other.

/// Protobuf wire encoding into a byte buffer.
#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
    }

    fn message(&mut self, field: u32, m: Buf) {
        self.bytes(field, &m.0);
    }
}

/// An element type of a tensor, as ONNX numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Float = 1,
    Int64 = 7,
    String = 8,
}

/// A graph input or output: name, element type and shape (`None` for the batch dimension).
#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub elem: Elem,
    pub shape: Vec<Option<i64>>,
}

impl ValueInfo {
    pub fn new(name: &str, elem: Elem, shape: &[Option<i64>]) -> Self {
        Self { name: name.to_owned(), elem, shape: shape.to_vec() }
    }

    fn encode(&self) -> Buf {
        let mut shape = Buf::default();
        for d in &self.shape {
            let mut dim = Buf::default();
            match d {
                Some(v) => dim.int(1, *v),
                None => dim.bytes(2, b"N"),
            }
            shape.message(1, dim);
        }
        let mut tensor = Buf::default();
        tensor.int(1, self.elem as i64);
        tensor.message(2, shape);
        let mut ty = Buf::default();
        ty.message(1, tensor);
        let mut v = Buf::default();
        v.bytes(1, self.name.as_bytes());
        v.message(2, ty);
        v
    }
}

/// A node attribute.
#[derive(Debug, Clone)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub op: String,
    /// "" for the default domain, "ai.onnx.ml" for the classical ML operators.
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, Attr)>,
}

impl Node {
    pub fn new(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<(&str, Attr)>) -> Self {
        Self {
            op: op.to_owned(),
            domain: domain.to_owned(),
            inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
            outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
            attrs: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn encode(&self, index: usize) -> Buf {
        let mut n = Buf::default();
        for i in &self.inputs {
            n.bytes(1, i.as_bytes());
        }
        for o in &self.outputs {
            n.bytes(2, o.as_bytes());
        }
        n.bytes(3, format!("{}_{index}", self.op).as_bytes());
        n.bytes(4, self.op.as_bytes());
        for (name, attr) in &self.attrs {
            let mut a = Buf::default();
            a.bytes(1, name.as_bytes());
            // AttributeProto: f=2 i=3 s=4 floats=7 ints=8 strings=9 type=20.
            let ty = match attr {
                Attr::Float(v) => {
                    a.float(2, *v);
                    1
                }
                Attr::Int(v) => {
                    a.int(3, *v);
                    2
                }
                Attr::String(v) => {
                    a.bytes(4, v.as_bytes());
                    3
                }
                Attr::Floats(v) => {
                    v.iter().for_each(|x| a.float(7, *x));
                    6
                }
                Attr::Ints(v) => {
                    v.iter().for_each(|x| a.int(8, *x));
                    7
                }
                Attr::Strings(v) => {
                    v.iter().for_each(|x| a.bytes(9, x.as_bytes()));
                    8
                }
            };
            a.int(20, ty);
            n.message(5, a);
        }
        if !self.domain.is_empty() {
            n.bytes(7, self.domain.as_bytes());
        }
        n
    }
}

/// A constant tensor (an initializer) of int64 values.
#[derive(Debug, Clone)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<i64>,
    pub ints: Vec<i64>,
}

/// A whole model: one graph with opsets 15 (default domain) and 3 (`ai.onnx.ml`).
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
    /// `metadata_props`: key/value pairs carried in the file.
    pub metadata: Vec<(String, String)>,
}

impl Model {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut g = Buf::default();
        for (i, n) in self.nodes.iter().enumerate() {
            g.message(1, n.encode(i));
        }
        g.bytes(2, self.name.as_bytes());
        for init in &self.initializers {
            let mut t = Buf::default();
            init.dims.iter().for_each(|d| t.int(1, *d));
            t.int(2, Elem::Int64 as i64);
            init.ints.iter().for_each(|v| t.int(7, *v));
            t.bytes(8, init.name.as_bytes());
            g.message(5, t);
        }
        for i in &self.inputs {
            g.message(11, i.encode());
        }
        for o in &self.outputs {
            g.message(12, o.encode());
        }
        let mut m = Buf::default();
        m.int(1, 8); // ir_version
        for (domain, version) in [("", 15), ("ai.onnx.ml", 3)] {
            let mut op = Buf::default();
            op.bytes(1, domain.as_bytes());
            op.int(2, version);
            m.message(8, op);
        }
        m.bytes(2, b"steward");
        m.bytes(3, env!("CARGO_PKG_VERSION").as_bytes());
        m.message(7, g);
        for (k, v) in &self.metadata {
            let mut p = Buf::default();
            p.bytes(1, k.as_bytes());
            p.bytes(2, v.as_bytes());
            m.message(14, p);
        }
        m.0
    }
}
