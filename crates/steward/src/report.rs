//! `steward report drift`: per-column drift between a reference and a current table (CSV or
//! Parquet) with Evidently's default tests, as JSON and as one self-contained HTML page with a
//! reference-vs-current histogram per column.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use steward_runtime::frame::Cell;
use steward_stats::drift::{self, ColumnType, DriftOptions, StatTest, Values};

use crate::table::{self, ColumnCells};

#[derive(clap::Args)]
pub struct DriftArgs {
    /// The reference table (.csv or .parquet), e.g. the training data
    #[arg(long)]
    reference: PathBuf,
    /// The current table to compare with it
    #[arg(long)]
    current: PathBuf,
    /// Use this test instead of the default choice for every column it applies to: ks,
    /// chisquare, z, jensenshannon, wasserstein, psi, kl_div, hellinger (ks and wasserstein
    /// need numeric columns, chisquare and z categorical ones)
    #[arg(long)]
    stattest: Option<String>,
    /// Threshold for the test (default: 0.05 for p-values, 0.1 for distances)
    #[arg(long)]
    threshold: Option<f64>,
    /// Share of drifted columns at which the dataset drifts
    #[arg(long, default_value_t = 0.5)]
    drift_share: f64,
    /// Write the JSON report here (default: print it)
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the HTML report here
    #[arg(long)]
    html: Option<PathBuf>,
}

/// How pandas would type a column read from a file: integers, floats, booleans or strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    Int,
    Float,
    Bool,
    Str,
}

pub(crate) fn as_number(c: &Cell) -> Option<f64> {
    match c {
        Cell::Num(v) => Some(*v),
        Cell::Text(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn dtype(cells: &ColumnCells) -> Dtype {
    let (mut present, mut total, mut all_bool, mut all_numbers, mut integral) = (0, 0, true, true, true);
    for (c, n) in cells.weighted() {
        total += n;
        if matches!(c, Cell::Null) {
            continue;
        }
        present += n;
        all_bool &= matches!(c, Cell::Bool(_)) || matches!(c, Cell::Text(s) if s == "True" || s == "False");
        all_numbers &= as_number(c).is_some();
        integral &= match c {
            Cell::Text(s) => !s.contains(['.', 'e', 'E']) && !s.contains("inf") && !s.contains("nan"),
            Cell::Num(v) => v.fract() == 0.0,
            _ => false,
        };
    }
    if present > 0 && all_bool {
        return Dtype::Bool;
    }
    if all_numbers {
        // A missing value makes pandas read an integer column as floats.
        return if integral && present == total { Dtype::Int } else { Dtype::Float };
    }
    Dtype::Str
}

/// The Fx hash (rustc's): a multiply and rotate per word, several times faster than SipHash on
/// the million short keys of a column; collisions only cost time.
#[derive(Default)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type FxBuild = std::hash::BuildHasherDefault<Fx>;

/// A present cell's identity, hashed rather than formatted.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Num(u64),
    Text(&'a str),
    Bool(bool),
}

impl<'a> Key<'a> {
    fn of(c: &'a Cell) -> Option<Self> {
        match c {
            Cell::Null => None,
            Cell::Num(v) => Some(Key::Num(v.to_bits())),
            Cell::Text(s) => Some(Key::Text(s)),
            Cell::Bool(b) => Some(Key::Bool(*b)),
        }
    }

    fn cell(&self) -> Cell {
        match self {
            Key::Num(bits) => Cell::Num(f64::from_bits(*bits)),
            Key::Text(s) => Cell::Text((*s).to_owned()),
            Key::Bool(b) => Cell::Bool(*b),
        }
    }
}

/// Distinct present values and present values, compared as text would be (a column holds
/// numbers or text, never both).
fn distinct_text(cells: &ColumnCells) -> (usize, usize) {
    let mut seen: std::collections::HashSet<Key, FxBuild> = Default::default();
    let mut n = 0;
    for (key, count) in cells.weighted().filter_map(|(c, count)| Some((Key::of(c)?, count))) {
        n += count;
        seen.insert(key);
    }
    (seen.len(), n)
}

/// Category counts of a column (what `category` gives each cell), hashing cells and converting
/// each distinct one once; NaN and infinities are left out.
fn category_counts(cells: &ColumnCells) -> std::collections::BTreeMap<String, usize> {
    let mut raw: std::collections::HashMap<Key, usize, FxBuild> = Default::default();
    for (c, n) in cells.weighted() {
        match c {
            Cell::Num(v) if !v.is_finite() => {}
            Cell::Num(v) if *v == 0.0 => *raw.entry(Key::Num(0)).or_default() += n,
            Cell::Text(s) if matches!(s.trim(), "nan" | "NaN" | "inf" | "-inf") => {}
            c => {
                if let Some(k) = Key::of(c) {
                    *raw.entry(k).or_default() += n;
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for (k, n) in raw {
        if let Some(key) = category(&k.cell()) {
            *out.entry(key).or_default() += n;
        }
    }
    out
}

/// A cell as a category: numbers in one canonical form (integers without a fraction whichever
/// form they came in, -0 as 0), booleans and text as written; `None` when missing.
pub(crate) fn category(c: &Cell) -> Option<String> {
    match c {
        Cell::Null => None,
        c => as_number(c).filter(|_| !matches!(c, Cell::Bool(_))).map(|v| if v == 0.0 { "0".into() } else { v.to_string() }).or_else(|| text(c)),
    }
}

pub(crate) fn text(c: &Cell) -> Option<String> {
    match c {
        Cell::Null => None,
        Cell::Text(s) => Some(s.clone()),
        Cell::Num(v) => Some(v.to_string()),
        Cell::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
    }
}

/// The column type Evidently's current API infers from the current table: floats are
/// numerical; integers are categorical up to 10 distinct values; strings are categorical
/// unless more than half their values are distinct (free text, which is not drift-tested).
pub(crate) fn column_type(current: &ColumnCells) -> Option<ColumnType> {
    match dtype(current) {
        Dtype::Float => Some(ColumnType::Numerical),
        Dtype::Int => {
            let (distinct, _) = distinct_text(current);
            Some(if distinct <= 10 { ColumnType::Categorical } else { ColumnType::Numerical })
        }
        Dtype::Bool => Some(ColumnType::Categorical),
        Dtype::Str => {
            let (distinct, count) = distinct_text(current);
            if count > 0 && distinct as f64 > 0.5 * count as f64 { None } else { Some(ColumnType::Categorical) }
        }
    }
}

fn values(ty: ColumnType, cells: &ColumnCells) -> Values {
    match ty {
        // Numeric tests do not depend on row order: counted cells are repeated.
        ColumnType::Numerical => Values::Numeric(match cells {
            ColumnCells::Rows(rows) => rows.iter().filter_map(as_number).filter(|v| v.is_finite()).collect(),
            ColumnCells::Counted(counted) => counted.iter().filter_map(|(c, n)| as_number(c).filter(|v| v.is_finite()).map(|v| (v, *n))).flat_map(|(v, n)| std::iter::repeat_n(v, n)).collect(),
        }),
        // Integers print without a fraction whichever form they came in.
        ColumnType::Categorical => Values::Counts(category_counts(cells)),
    }
}

pub struct Computed {
    pub report: drift::DatasetDrift,
    pub skipped: Vec<(String, &'static str)>,
    pub reference_rows: usize,
    pub current_rows: usize,
    /// Per tested column, when asked for: bin labels and the reference and current shares.
    pub histograms: Vec<(String, Histogram)>,
}

pub type Histogram = (Vec<String>, Vec<f64>, Vec<f64>);

/// What one column came to.
enum Outcome {
    Tested(drift::ColumnDrift, Option<Histogram>),
    Skipped(&'static str),
}

/// Two tables compare only column for column: a column on one side alone is an error that
/// names it (comparing the wrong files must not read as "no drift").
fn same_columns(reference: &[String], current: &[String]) -> anyhow::Result<()> {
    let only = |a: &[String], b: &[String]| a.iter().filter(|n| !b.contains(n)).map(|n| format!("'{n}'")).collect::<Vec<_>>();
    let (only_reference, only_current) = (only(reference, current), only(current, reference));
    if only_reference.len() == reference.len() && !reference.is_empty() {
        anyhow::bail!("the reference and current tables have no column in common (reference: {}; current: {})", only_reference.join(", "), only_current.join(", "));
    }
    let mut missing = Vec::new();
    if !only_reference.is_empty() {
        missing.push(format!("only in the reference: {}", only_reference.join(", ")));
    }
    if !only_current.is_empty() {
        missing.push(format!("only in the current table: {}", only_current.join(", ")));
    }
    anyhow::ensure!(missing.is_empty(), "the tables' columns differ ({}); compare tables with the same columns", missing.join("; "));
    Ok(())
}

fn judge_column(name: &str, reference: &table::Columns, current: &table::Columns, options: &DriftOptions, histograms: bool) -> anyhow::Result<Outcome> {
    let Some(reference_cells) = reference.counted_column(name)? else { return Ok(Outcome::Skipped("not in the reference")) };
    let cur = current.counted_column(name)?.unwrap_or(ColumnCells::Rows(Vec::new()));
    let Some(ty) = column_type(&cur) else { return Ok(Outcome::Skipped("free text (more than half its values distinct)")) };
    if ty == ColumnType::Numerical && dtype(&reference_cells) == Dtype::Str {
        anyhow::bail!("column '{name}' is numeric in the current table but not in the reference");
    }
    let (r, c) = (values(ty, &reference_cells), values(ty, &cur));
    drop((reference_cells, cur));
    if r.is_empty() || c.is_empty() {
        anyhow::bail!("column '{name}' has no values in the {} table", if r.is_empty() { "reference" } else { "current" });
    }
    let tested = drift::column_drift(name, ty, &r, &c, options)?;
    Ok(Outcome::Tested(tested, histograms.then(|| histogram(ty, &r, &c))))
}

/// Tests every column of the current table against the reference, column by column on two
/// threads: at most four columns are held at once, whatever the tables' widths.
pub fn compute(reference: &Path, current: &Path, options: &DriftOptions, histograms: bool) -> anyhow::Result<Computed> {
    let reference_table = table::Columns::open(reference)?;
    let current_table = table::Columns::open(current)?;
    same_columns(reference_table.names(), current_table.names())?;
    let names = current_table.names().to_vec();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut outcomes: Vec<(usize, anyhow::Result<Outcome>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else { break done };
                        let outcome = judge_column(name, &reference_table, &current_table, options, histograms);
                        let failed = outcome.is_err();
                        done.push((i, outcome));
                        if failed {
                            next.store(names.len(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a drift worker panicked")).collect()
    });
    outcomes.sort_by_key(|o| o.0);
    let (mut columns, mut skipped, mut hist) = (Vec::new(), Vec::new(), Vec::new());
    for (i, outcome) in outcomes {
        match outcome? {
            Outcome::Tested(c, h) => {
                if let Some(h) = h {
                    hist.push((c.name.clone(), h));
                }
                columns.push(c);
            }
            Outcome::Skipped(why) => skipped.push((names[i].clone(), why)),
        }
    }
    // Evidently's order: numerical columns first, then categorical.
    columns.sort_by_key(|c| c.column_type != ColumnType::Numerical);
    Ok(Computed {
        report: drift::dataset_drift(columns, options),
        skipped,
        reference_rows: reference_table.rows(),
        current_rows: current_table.rows(),
        histograms: hist,
    })
}

pub fn run(args: DriftArgs) -> anyhow::Result<()> {
    let options = DriftOptions {
        stattest: args.stattest.as_deref().map(StatTest::parse).transpose()?,
        threshold: args.threshold,
        drift_share: Some(args.drift_share),
    };
    let computed = compute(&args.reference, &args.current, &options, args.html.is_some())?;
    let mut json = serde_json::to_value(&computed.report)?;
    if !computed.skipped.is_empty() {
        json["skipped_columns"] = computed.skipped.iter().map(|(n, why)| serde_json::json!({ "name": n, "reason": why })).collect();
    }
    let text = serde_json::to_string_pretty(&json)?;
    match &args.json {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?,
        None if args.html.is_none() => crate::print_stdout(&text)?,
        None => {}
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html(&computed)).with_context(|| format!("writing {}", path.display()))?;
    }
    let r = &computed.report;
    eprintln!(
        "{} of {} columns drifted (share {:.2}; dataset drift: {})",
        r.number_of_drifted_columns, r.number_of_columns, r.share_of_drifted_columns, if r.dataset_drift { "yes" } else { "no" }
    );
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Reference and current shares per bin (Sturges bins over both for numeric columns, the 20
/// most frequent values for categorical ones).
fn histogram(ty: ColumnType, r: &Values, c: &Values) -> Histogram {
    match (ty, r, c) {
        (ColumnType::Numerical, Values::Numeric(r), Values::Numeric(c)) => {
            let (lo, hi) = r.iter().chain(c).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let n = (((r.len() + c.len()) as f64).log2() + 1.0).ceil().clamp(1.0, 40.0) as usize;
            let width = if hi > lo { (hi - lo) / n as f64 } else { 1.0 };
            let share = |x: &[f64]| {
                let mut h = vec![0.0; n];
                for v in x {
                    h[(((v - lo) / width) as usize).min(n - 1)] += 1.0 / x.len() as f64;
                }
                h
            };
            let labels = (0..n).map(|i| format!("{:.4}", lo + i as f64 * width)).collect();
            (labels, share(r), share(c))
        }
        (_, r, c) => {
            let (rn, cn) = (r.len() as f64, c.len() as f64);
            let mut freq: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
            r.counts().into_iter().for_each(|(k, n)| freq.entry(k).or_default().0 += n as f64 / rn);
            c.counts().into_iter().for_each(|(k, n)| freq.entry(k).or_default().1 += n as f64 / cn);
            let mut top: Vec<_> = freq.into_iter().collect();
            top.sort_by(|a, b| (b.1.0 + b.1.1).total_cmp(&(a.1.0 + a.1.1)));
            top.truncate(20);
            (top.iter().map(|t| t.0.clone()).collect(), top.iter().map(|t| t.1.0).collect(), top.iter().map(|t| t.1.1).collect())
        }
    }
}

fn svg(labels: &[String], r: &[f64], c: &[f64]) -> String {
    let (w, h, pad) = (560.0, 160.0, 4.0);
    let max = r.iter().chain(c).copied().fold(0.0, f64::max).max(1e-12);
    let slot = w / labels.len().max(1) as f64;
    let bar = (slot - pad) / 2.0;
    let mut s = format!("<svg viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\" role=\"img\">", h + 20.0, h + 20.0);
    for (i, label) in labels.iter().enumerate() {
        let x = i as f64 * slot;
        for (j, (v, color)) in [(r[i], "#4c78a8"), (c[i], "#f58518")].into_iter().enumerate() {
            let bh = v / max * h;
            let _ = write!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{} {}: {:.4}</title></rect>", x + j as f64 * bar, h - bh, bar.max(0.5), bh, esc(label), if j == 0 { "reference" } else { "current" }, v);
        }
    }
    let _ = write!(s, "<text x=\"0\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{w}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text></svg>", h + 14.0, esc(labels.first().map_or("", String::as_str)), h + 14.0, esc(labels.last().map_or("", String::as_str)));
    s
}

fn html(computed: &Computed) -> String {
    let r = &computed.report;
    let mut out = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>Steward drift report</title><style>body{font-family:system-ui,sans-serif;margin:2em;max-width:980px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.drift{color:#b00020;font-weight:600}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}</style></head><body>");
    let _ = write!(
        out,
        "<h1>Data drift</h1><p>{} of {} columns drifted (share {:.2}, threshold {:.2}): <strong class=\"{}\">{}</strong></p><p class=\"legend\"><span style=\"background:#4c78a8\"></span>reference ({} rows)<span style=\"background:#f58518\"></span>current ({} rows)</p>",
        r.number_of_drifted_columns,
        r.number_of_columns,
        r.share_of_drifted_columns,
        r.drift_share,
        if r.dataset_drift { "drift" } else { "" },
        if r.dataset_drift { "dataset drift" } else { "no dataset drift" },
        computed.reference_rows,
        computed.current_rows
    );
    out.push_str("<table><tr><th>column</th><th>type</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th><th>drift</th></tr>");
    for c in &r.columns {
        let _ = write!(
            out,
            "<tr><td><a href=\"#c-{0}\">{0}</a></td><td>{1:?}</td><td>{2}</td><td>{3:.6}</td><td>{4}</td><td>{5}</td><td class=\"{6}\">{7}</td></tr>",
            esc(&c.name),
            c.column_type,
            c.stattest.name(),
            c.statistic,
            c.p_value.map_or("—".into(), |p| format!("{p:.6}")),
            c.threshold,
            if c.drift { "drift" } else { "" },
            if c.drift { "drift" } else { "no" }
        );
    }
    out.push_str("</table>");
    for c in &r.columns {
        let Some((_, (labels, rh, ch))) = computed.histograms.iter().find(|h| h.0 == c.name) else { continue };
        let _ = write!(out, "<h2 id=\"c-{0}\">{0}</h2>{1}", esc(&c.name), svg(labels, rh, ch));
    }
    if !computed.skipped.is_empty() {
        out.push_str("<h2>Not tested</h2><ul>");
        for (n, why) in &computed.skipped {
            let _ = write!(out, "<li>{}: {}</li>", esc(n), why);
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::same_columns;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tables_with_other_columns_are_refused_by_name() {
        assert!(same_columns(&names(&["a", "b"]), &names(&["b", "a"])).is_ok());
        let none = same_columns(&names(&["a", "b"]), &names(&["x"])).unwrap_err().to_string();
        assert_eq!(none, "the reference and current tables have no column in common (reference: 'a', 'b'; current: 'x')");
        let some = same_columns(&names(&["a", "b", "c"]), &names(&["a", "d"])).unwrap_err().to_string();
        assert_eq!(some, "the tables' columns differ (only in the reference: 'b', 'c'; only in the current table: 'd'); compare tables with the same columns");
    }
}
