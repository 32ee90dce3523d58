//! MLflow's search grammar: filter strings (`metrics.acc > 0.9 AND params.lr = '0.1'`),
//! `order_by` clauses and page tokens, parsed into typed values with no SQL in sight.
//!
//! The store turns a parsed [`Filter`] into SQL with bound parameters; nothing a user
//! typed is ever spliced into a statement.

use base64::Engine as _;

use crate::error::{Error, Result};

/// What a filter or order key refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl Entity {
    fn parse(prefix: &str) -> Option<Entity> {
        Some(match prefix {
            "metric" | "metrics" => Entity::Metric,
            "param" | "params" | "parameter" | "parameters" => Entity::Param,
            "tag" | "tags" => Entity::Tag,
            "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
            "dataset" | "datasets" => Entity::Dataset,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Entity::Metric => "metric",
            Entity::Param => "parameter",
            Entity::Tag => "tag",
            Entity::Attribute => "attribute",
            Entity::Dataset => "dataset",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Comparator {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
            Comparator::IsNull => "IS NULL",
            Comparator::IsNotNull => "IS NOT NULL",
        }
    }
}

/// The right-hand side of a clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    Text(String),
    List(Vec<String>),
    Nothing,
}

/// One `entity.key comparator value` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub key: String,
    pub op: Comparator,
    pub value: Operand,
}

/// A conjunction of clauses (MLflow supports `AND` only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

/// Which attributes a search target knows, and which of them are numbers.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    what: &'static str,
    string_attributes: &'static [&'static str],
    numeric_attributes: &'static [&'static str],
    /// String attributes that accept `IN (...)` lists.
    list_attributes: &'static [&'static str],
    entities: &'static [Entity],
}

/// Run attributes compared as integers (milliseconds since the epoch).
pub const RUNS_NUMERIC_ATTRIBUTES: &[&str] = &["start_time", "end_time", "created", "Created"];
/// Experiment attributes compared as integers.
pub const EXPERIMENTS_NUMERIC_ATTRIBUTES: &[&str] = &["creation_time", "last_update_time"];

/// Runs: MLflow's `SearchUtils.VALID_SEARCH_ATTRIBUTE_KEYS` and friends.
pub const RUNS: Target = Target {
    what: "runs",
    string_attributes: &["run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"],
    numeric_attributes: RUNS_NUMERIC_ATTRIBUTES,
    list_attributes: &["run_id"],
    entities: &[Entity::Metric, Entity::Param, Entity::Tag, Entity::Attribute, Entity::Dataset],
};

/// Experiments: `SearchExperimentsUtils`.
pub const EXPERIMENTS: Target = Target {
    what: "experiments",
    string_attributes: &["name", "experiment_id"],
    numeric_attributes: EXPERIMENTS_NUMERIC_ATTRIBUTES,
    list_attributes: &[],
    entities: &[Entity::Tag, Entity::Attribute],
};

/// Registered models (`SearchModelUtils`): the name and tags.
pub const REGISTERED_MODELS: Target = Target {
    what: "registered models",
    string_attributes: &["name"],
    numeric_attributes: &[],
    list_attributes: &["name"],
    entities: &[Entity::Tag, Entity::Attribute],
};

/// Model versions (`SearchModelVersionUtils`).
pub const MODEL_VERSIONS: Target = Target {
    what: "model versions",
    string_attributes: &["name", "run_id", "source_path"],
    numeric_attributes: &["version_number"],
    list_attributes: &["name", "run_id"],
    entities: &[Entity::Tag, Entity::Attribute],
};

/// MLflow 3 logged models.
pub const LOGGED_MODELS: Target = Target {
    what: "logged models",
    string_attributes: &["name", "model_id", "source_run_id", "model_type", "status"],
    numeric_attributes: &["creation_timestamp", "last_updated_timestamp"],
    list_attributes: &["name", "model_id", "source_run_id"],
    entities: &[Entity::Tag, Entity::Param, Entity::Attribute],
};

const DATASET_KEYS: &[&str] = &["name", "digest", "context"];

impl Target {
    pub fn is_numeric_attribute(&self, key: &str) -> bool {
        self.numeric_attributes.contains(&key)
    }
    fn check_attribute(&self, key: &str) -> Result<()> {
        if self.string_attributes.contains(&key) || self.numeric_attributes.contains(&key) {
            return Ok(());
        }
        let mut valid: Vec<&str> = self.string_attributes.to_vec();
        valid.extend(self.numeric_attributes);
        Err(Error::invalid(format!(
            "Invalid attribute key '{key}' specified. Valid keys are '{valid:?}'"
        )))
    }
}

/// The longest filter string taken (64 KiB): longer ones are refused before they are read.
pub const MAX_FILTER_BYTES: usize = 64 * 1024;
/// The most clauses a filter may have. Each becomes a join or a subquery; SQLite stops at 64
/// tables in a join, and every clause multiplies the planner's work.
pub const MAX_FILTER_CLAUSES: usize = 50;

/// Parses a filter string. The empty string is the empty filter.
pub fn parse_filter(input: &str, target: &Target) -> Result<Filter> {
    if input.len() > MAX_FILTER_BYTES {
        return Err(Error::invalid(format!("the filter is {} bytes long; at most {MAX_FILTER_BYTES} are taken", input.len())));
    }
    let tokens = tokenize(input)?;
    let mut p = Parser { tokens, pos: 0, input };
    let mut clauses = Vec::new();
    if p.tokens.is_empty() {
        return Ok(Filter { clauses });
    }
    loop {
        if clauses.len() == MAX_FILTER_CLAUSES {
            return Err(Error::invalid(format!("the filter has more than {MAX_FILTER_CLAUSES} clauses; at most {MAX_FILTER_CLAUSES} are taken")));
        }
        clauses.push(p.clause(target)?);
        match p.next() {
            None => break,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => continue,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") => {
                return Err(Error::invalid(format!(
                    "Invalid clause(s) in filter string: '{input}'. 'OR' is not supported; combine clauses with 'AND'"
                )));
            }
            Some(t) => {
                return Err(Error::invalid(format!(
                    "Invalid filter '{input}': expected 'AND' between clauses, found {}",
                    t.describe()
                )));
            }
        }
    }
    Ok(Filter { clauses })
}

/// One `order_by` entry: which key, ascending or not.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

/// Parses one `order_by` entry such as `metrics.\`my metric\` DESC`.
pub fn parse_order_by(input: &str, target: &Target) -> Result<OrderBy> {
    let bad = |why: &str| Error::invalid(format!("Invalid order_by clause '{input}'. {why}"));
    let tokens = tokenize(input)?;
    let mut it = tokens.into_iter();
    let Some(Token::Ident { prefix, key }) = it.next() else {
        return Err(bad("expected a key such as 'metrics.acc'"));
    };
    let ascending = match it.next() {
        None => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("asc") => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("desc") => false,
        Some(t) => return Err(bad(&format!("expected ASC or DESC, found {}", t.describe()))),
    };
    if let Some(t) = it.next() {
        return Err(bad(&format!("unexpected {} after the direction", t.describe())));
    }
    let (entity, key) = resolve_identifier(prefix.as_deref(), key, target)?;
    if entity == Entity::Dataset {
        return Err(bad("datasets cannot be ordered by"));
    }
    Ok(OrderBy { entity, key, ascending })
}

/// An opaque paging cursor, encoded as MLflow encodes it: base64 of `{"offset": N}`.
pub fn encode_page_token(offset: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// Decodes a page token; the empty token is offset zero.
pub fn decode_page_token(token: &str) -> Result<u64> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || Error::invalid(format!("Invalid page token, could not base64-decode or parse '{token}'"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| bad())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    json.get("offset").and_then(|v| v.as_u64()).ok_or_else(bad)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `prefix.key` or a bare `key`; backticks and quotes already removed from the key.
    Ident { prefix: Option<String>, key: String },
    /// A keyword-like word that is not an identifier (AND, LIKE, IN, ...); kept in `Word`.
    Word(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident { prefix: Some(p), key } => format!("'{p}.{key}'"),
            Token::Ident { prefix: None, key } => format!("'{key}'"),
            Token::Word(w) => format!("'{w}'"),
            Token::Str(s) => format!("string '{s}'"),
            Token::Num(n) => format!("number {n}"),
            Token::Op(o) => format!("'{o}'"),
            Token::LParen => "'('".into(),
            Token::RParen => "')'".into(),
            Token::Comma => "','".into(),
        }
    }
}

const KEYWORDS: &[&str] = &["and", "or", "like", "ilike", "in", "not", "is", "null", "asc", "desc"];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |msg: String| Error::invalid(format!("Invalid filter '{input}': {msg}"));
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let (s, next) = quoted(&chars, i).ok_or_else(|| err(format!("unterminated string starting at {i}")))?;
            i = next;
            out.push(Token::Str(s));
        } else if c == '`' {
            // A bare backticked key, e.g. `tags.`x` ...` handled below; alone it is an attribute.
            let (s, next) = quoted(&chars, i).ok_or_else(|| err(format!("unterminated backtick at {i}")))?;
            i = next;
            out.push(Token::Ident { prefix: None, key: s });
        } else if c == '(' {
            out.push(Token::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Token::RParen);
            i += 1;
        } else if c == ',' {
            out.push(Token::Comma);
            i += 1;
        } else if matches!(c, '=' | '!' | '<' | '>') {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                "!=" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                "==" => "=",
                "<>" => "!=",
                _ => match c {
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    _ => return Err(err(format!("unexpected '{c}' at {i}"))),
                },
            };
            i += if op.len() == 2 || two == "==" { 2 } else { 1 };
            out.push(Token::Op(op));
        } else if c.is_ascii_digit() || ((c == '-' || c == '+' || c == '.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == '.')) {
            let start = i;
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                let exp_sign = (d == '-' || d == '+') && matches!(chars[i - 1], 'e' | 'E');
                if d.is_ascii_digit() || d == '.' || d == 'e' || d == 'E' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            let text: String = chars[start..i].iter().collect();
            let n = text.parse::<f64>().map_err(|_| err(format!("invalid number '{text}'")))?;
            out.push(Token::Num(n));
        } else if is_word_char(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if chars.get(i) == Some(&'.') {
                // prefix.key where key is a word run with dots, or quoted.
                i += 1;
                let key = match chars.get(i) {
                    Some('`') | Some('"') | Some('\'') => {
                        let (s, next) = quoted(&chars, i).ok_or_else(|| err(format!("unterminated quote at {i}")))?;
                        i = next;
                        s
                    }
                    _ => {
                        let kstart = i;
                        while i < chars.len() && (is_word_char(chars[i]) || chars[i] == '.') {
                            i += 1;
                        }
                        chars[kstart..i].iter().collect()
                    }
                };
                if key.is_empty() {
                    return Err(err(format!("missing key after '{word}.'")));
                }
                out.push(Token::Ident { prefix: Some(word), key });
            } else if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                out.push(Token::Word(word));
            } else {
                out.push(Token::Ident { prefix: None, key: word });
            }
        } else {
            return Err(err(format!("unexpected character '{c}' at {i}")));
        }
    }
    Ok(out)
}

/// Reads a quoted run starting at `chars[start]`; a doubled quote is an escaped quote.
fn quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let q = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == q {
            if chars.get(i + 1) == Some(&q) {
                s.push(q);
                i += 2;
                continue;
            }
            return Some((s, i + 1));
        }
        if chars[i] == '\\' && chars.get(i + 1) == Some(&q) {
            s.push(q);
            i += 2;
            continue;
        }
        s.push(chars[i]);
        i += 1;
    }
    None
}

fn resolve_identifier(prefix: Option<&str>, key: String, target: &Target) -> Result<(Entity, String)> {
    let entity = match prefix {
        None => Entity::Attribute,
        Some(p) => Entity::parse(p).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid entity type '{p}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ))
        })?,
    };
    if !target.entities.contains(&entity) {
        return Err(Error::invalid(format!(
            "Invalid entity type '{}' for searching {}",
            entity.name(),
            target.what
        )));
    }
    match entity {
        Entity::Attribute => target.check_attribute(&key)?,
        Entity::Dataset if !DATASET_KEYS.contains(&key.as_str()) => {
            return Err(Error::invalid(format!(
                "Invalid dataset key '{key}' specified. Valid keys are '{DATASET_KEYS:?}'"
            )));
        }
        _ => {}
    }
    Ok((entity, key))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn bad(&self, msg: impl std::fmt::Display) -> Error {
        Error::invalid(format!("Invalid filter '{}': {msg}", self.input))
    }

    fn clause(&mut self, target: &Target) -> Result<Clause> {
        let (prefix, key) = match self.next() {
            Some(Token::Ident { prefix, key }) => (prefix, key),
            Some(t) => return Err(self.bad(format!("expected a key such as 'metrics.acc', found {}", t.describe()))),
            None => return Err(self.bad("expected a clause after 'AND'")),
        };
        let (entity, key) = resolve_identifier(prefix.as_deref(), key, target)?;
        let op = self.comparator()?;
        let value = match op {
            Comparator::IsNull | Comparator::IsNotNull => Operand::Nothing,
            Comparator::In | Comparator::NotIn => Operand::List(self.list()?),
            _ => match self.next() {
                Some(Token::Num(n)) => Operand::Number(n),
                Some(Token::Str(s)) => Operand::Text(s),
                Some(t) => return Err(self.bad(format!("expected a value after '{}', found {}", op.as_str(), t.describe()))),
                None => return Err(self.bad(format!("expected a value after '{}'", op.as_str()))),
            },
        };
        let clause = Clause { entity, key, op, value };
        check_clause(&clause, target)?;
        Ok(clause)
    }

    fn comparator(&mut self) -> Result<Comparator> {
        let op = match self.next() {
            Some(Token::Op(o)) => match o {
                "=" => Comparator::Eq,
                "!=" => Comparator::Ne,
                "<" => Comparator::Lt,
                "<=" => Comparator::Le,
                ">" => Comparator::Gt,
                _ => Comparator::Ge,
            },
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "like" => Comparator::Like,
                "ilike" => Comparator::ILike,
                "in" => Comparator::In,
                "not" if self.peek_word("in") => {
                    self.pos += 1;
                    Comparator::NotIn
                }
                "is" if self.peek_word("null") => {
                    self.pos += 1;
                    Comparator::IsNull
                }
                "is" if self.peek_word("not") => {
                    self.pos += 1;
                    if !self.peek_word("null") {
                        return Err(self.bad("expected NULL after 'IS NOT'"));
                    }
                    self.pos += 1;
                    Comparator::IsNotNull
                }
                _ => return Err(self.bad(format!("invalid comparator '{w}'"))),
            },
            Some(t) => return Err(self.bad(format!("expected a comparator, found {}", t.describe()))),
            None => return Err(self.bad("expected a comparator")),
        };
        Ok(op)
    }

    fn list(&mut self) -> Result<Vec<String>> {
        if self.next() != Some(Token::LParen) {
            return Err(self.bad("expected '(' to open the value list of IN"));
        }
        let mut items = Vec::new();
        loop {
            match self.next() {
                Some(Token::Str(s)) => items.push(s),
                Some(t) => return Err(self.bad(format!("expected a quoted string in the IN list, found {}", t.describe()))),
                None => return Err(self.bad("unterminated IN list")),
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RParen) => break,
                _ => return Err(self.bad("expected ',' or ')' in the IN list")),
            }
        }
        Ok(items)
    }
}

fn check_clause(c: &Clause, target: &Target) -> Result<()> {
    use Comparator::*;
    let numeric = match c.entity {
        Entity::Metric => true,
        Entity::Attribute => target.is_numeric_attribute(&c.key),
        _ => false,
    };
    let allowed: &[Comparator] = match c.entity {
        Entity::Metric => &[Eq, Ne, Lt, Le, Gt, Ge],
        Entity::Param | Entity::Tag => &[Eq, Ne, Like, ILike, IsNull, IsNotNull],
        Entity::Attribute if numeric => &[Eq, Ne, Lt, Le, Gt, Ge],
        Entity::Attribute if target.list_attributes.contains(&c.key.as_str()) => &[Eq, Ne, Like, ILike, In, NotIn],
        Entity::Attribute => &[Eq, Ne, Like, ILike],
        Entity::Dataset => &[Eq, Ne, Like, ILike, In, NotIn],
    };
    if !allowed.contains(&c.op) {
        let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
        return Err(Error::invalid(format!(
            "Invalid comparator '{}' not one of '{names:?}' for {} '{}'",
            c.op.as_str(),
            c.entity.name(),
            c.key
        )));
    }
    match (&c.value, numeric) {
        (Operand::Number(_), true) | (Operand::Nothing, _) | (Operand::List(_), false) => Ok(()),
        (Operand::Text(_), false) => Ok(()),
        (Operand::Text(s), true) => Err(Error::invalid(format!(
            "Expected numeric value type for {} '{}'. Found '{s}'",
            c.entity.name(),
            c.key
        ))),
        (Operand::Number(n), false) => Err(Error::invalid(format!(
            "Value must be enclosed in single or double quotes for {} '{}'. Found {n}",
            c.entity.name(),
            c.key
        ))),
        (Operand::List(_), true) => Err(Error::invalid(format!("IN is not supported for {} '{}'", c.entity.name(), c.key))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(entity: Entity, key: &str, op: Comparator, value: Operand) -> Clause {
        Clause { entity, key: key.into(), op, value }
    }

    #[test]
    fn parses_mlflow_filters() {
        let cases: Vec<(&str, Vec<Clause>)> = vec![
            ("", vec![]),
            ("metrics.acc > 0.9", vec![clause(Entity::Metric, "acc", Comparator::Gt, Operand::Number(0.9))]),
            (
                "params.lr = '0.1' and tags.`my tag` LIKE 'x%'",
                vec![
                    clause(Entity::Param, "lr", Comparator::Eq, Operand::Text("0.1".into())),
                    clause(Entity::Tag, "my tag", Comparator::Like, Operand::Text("x%".into())),
                ],
            ),
            ("tags.mlflow.runName = \"a\"", vec![clause(Entity::Tag, "mlflow.runName", Comparator::Eq, Operand::Text("a".into()))]),
            ("metric.loss <= -1.5e-3", vec![clause(Entity::Metric, "loss", Comparator::Le, Operand::Number(-1.5e-3))]),
            (
                "attributes.run_id IN ('a', 'b')",
                vec![clause(Entity::Attribute, "run_id", Comparator::In, Operand::List(vec!["a".into(), "b".into()]))],
            ),
            ("status != 'FAILED'", vec![clause(Entity::Attribute, "status", Comparator::Ne, Operand::Text("FAILED".into()))]),
            ("params.x IS NULL", vec![clause(Entity::Param, "x", Comparator::IsNull, Operand::Nothing)]),
            ("tags.x IS NOT NULL", vec![clause(Entity::Tag, "x", Comparator::IsNotNull, Operand::Nothing)]),
            ("attributes.start_time >= 12", vec![clause(Entity::Attribute, "start_time", Comparator::Ge, Operand::Number(12.0))]),
            ("run_name ILIKE '%Fox%'", vec![clause(Entity::Attribute, "run_name", Comparator::ILike, Operand::Text("%Fox%".into()))]),
        ];
        for (input, want) in cases {
            let got = parse_filter(input, &RUNS).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.clauses, want, "{input}");
        }
    }

    #[test]
    fn filters_are_bounded_before_they_are_read() {
        let clauses = |n: usize| (0..n).map(|i| format!("metrics.m{i} > 0")).collect::<Vec<_>>().join(" AND ");
        assert_eq!(parse_filter(&clauses(MAX_FILTER_CLAUSES), &RUNS).unwrap().clauses.len(), MAX_FILTER_CLAUSES);
        let err = parse_filter(&clauses(MAX_FILTER_CLAUSES + 1), &RUNS).unwrap_err();
        assert_eq!(err.message(), "the filter has more than 50 clauses; at most 50 are taken");
        let long = format!("params.p = '{}'", "x".repeat(MAX_FILTER_BYTES));
        assert_eq!(parse_filter(&long, &RUNS).unwrap_err().message(), format!("the filter is {} bytes long; at most 65536 are taken", long.len()));
    }

    #[test]
    fn rejects_bad_filters_naming_the_problem() {
        let cases = [
            ("metrics.acc > 0.9 OR metrics.acc < 0.1", "'OR' is not supported"),
            ("metrics.acc > 'high'", "Expected numeric value"),
            ("params.lr = 0.1", "enclosed in single or double quotes"),
            ("params.lr > '1'", "Invalid comparator '>'"),
            ("foo.bar = 'x'", "Invalid entity type 'foo'"),
            ("attributes.colour = 'red'", "Invalid attribute key 'colour'"),
            ("metrics.acc >", "expected a value"),
            ("params.lr = 'unterminated", "unterminated"),
            ("metrics.acc > 1 metrics.b > 2", "expected 'AND'"),
            ("status IN ('a')", "Invalid comparator 'IN'"),
        ];
        for (input, want) in cases {
            let err = parse_filter(input, &RUNS).expect_err(input);
            assert!(err.message().contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn parses_order_by() {
        let o = parse_order_by("metrics.`my acc` DESC", &RUNS).unwrap();
        assert_eq!(o, OrderBy { entity: Entity::Metric, key: "my acc".into(), ascending: false });
        let o = parse_order_by("start_time", &RUNS).unwrap();
        assert_eq!(o, OrderBy { entity: Entity::Attribute, key: "start_time".into(), ascending: true });
        assert!(parse_order_by("metrics.a sideways", &RUNS).is_err());
        assert!(parse_order_by("name ASC", &EXPERIMENTS).is_ok());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(&encode_page_token(250)).unwrap(), 250);
        assert_eq!(decode_page_token("").unwrap(), 0);
        assert!(decode_page_token("not base64!").is_err());
    }
}
