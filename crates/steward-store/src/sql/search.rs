//! Turns parsed MLflow search requests into SQL with bound parameters.

use steward_core::search::{
    self, Clause, Comparator, Entity, OrderBy, Operand, decode_page_token, parse_filter, parse_order_by,
};
use steward_core::validation;
use steward_core::{Error, Result};

use super::Bind;
use crate::{ExperimentQuery, RunQuery};

/// Accumulates SQL fragments and the values bound to their `$N` placeholders.
#[derive(Default)]
struct Sql {
    binds: Vec<Bind>,
    joins: Vec<String>,
    wheres: Vec<String>,
    orders: Vec<String>,
    /// Sort keys of a run search: expression and direction.
    keys: Vec<(String, &'static str)>,
}

impl Sql {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn bind_list(&mut self, items: &[String]) -> String {
        items.iter().map(|s| self.bind(Bind::Text(s.clone()))).collect::<Vec<_>>().join(", ")
    }
}

fn comparison(op: Comparator, column: &str, placeholder: &str) -> String {
    match op {
        Comparator::ILike => format!("LOWER({column}) LIKE LOWER({placeholder})"),
        Comparator::Like => format!("{column} LIKE {placeholder}"),
        other => format!("{column} {} {placeholder}", other.as_str()),
    }
}

/// Binds a clause's operand and returns the SQL comparison against `column`.
fn compare(sql: &mut Sql, c: &Clause, column: &str, numeric_as_int: bool) -> Result<String> {
    Ok(match (&c.value, c.op) {
        (Operand::List(items), Comparator::In | Comparator::NotIn) => {
            if items.is_empty() {
                return Err(Error::invalid(format!("the {} list for '{}' is empty", c.op.as_str(), c.key)));
            }
            let ph = sql.bind_list(items);
            format!("{column} {} ({ph})", c.op.as_str())
        }
        (Operand::Number(n), op) if numeric_as_int => {
            if n.fract() != 0.0 {
                return Err(Error::invalid(format!("Expected an integer value for attribute '{}'. Found {n}", c.key)));
            }
            let ph = sql.bind(Bind::I64(*n as i64));
            comparison(op, column, &ph)
        }
        (Operand::Number(n), op) => {
            let ph = sql.bind(Bind::F64(*n));
            comparison(op, column, &ph)
        }
        (Operand::Text(s), op) => {
            let ph = sql.bind(Bind::Text(s.clone()));
            comparison(op, column, &ph)
        }
        (value, op) => return Err(Error::invalid(format!("cannot compare '{}' with {} {value:?}", c.key, op.as_str()))),
    })
}

/// A run filter over one of the run's key/value tables (`latest_metrics`, `params`, `tags`),
/// whose primary key is (run_uuid, key). A comparison becomes an inner join on that key: the
/// planner can drive the search from the (key, value) index and probe the run, or scan the
/// experiment's runs and probe the key, whichever its statistics favour, and a run has at most
/// one row per key, so the join never repeats a run. Returns the WHERE clause, if any.
fn run_key_value_clause(sql: &mut Sql, c: &Clause, table: &str) -> Result<Option<String>> {
    let k = sql.bind(Bind::Text(c.key.clone()));
    let keyed = format!("SELECT kv.run_uuid FROM {table} kv WHERE kv.key = {k}");
    Ok(match c.op {
        Comparator::IsNull => Some(format!("r.run_uuid NOT IN ({keyed})")),
        Comparator::IsNotNull => Some(format!("r.run_uuid IN ({keyed})")),
        _ => {
            let alias = format!("f{}", sql.joins.len());
            let cmp = compare(sql, c, &format!("{alias}.value"), false)?;
            let nan = if table == "latest_metrics" { format!(" AND {alias}.is_nan = 0") } else { String::new() };
            sql.joins.push(format!("JOIN {table} {alias} ON {alias}.run_uuid = r.run_uuid AND {alias}.key = {k}{nan} AND {cmp}"));
            None
        }
    })
}

/// `EXISTS` over a key/value side table (experiment tags).
fn key_value_clause(sql: &mut Sql, c: &Clause, table: &str, owner: &str) -> Result<String> {
    let k = sql.bind(Bind::Text(c.key.clone()));
    let base = format!("SELECT 1 FROM {table} kv WHERE kv.{owner} AND kv.key = {k}");
    Ok(match c.op {
        Comparator::IsNull => format!("NOT EXISTS ({base})"),
        Comparator::IsNotNull => format!("EXISTS ({base})"),
        _ => {
            let cmp = compare(sql, c, "kv.value", false)?;
            format!("EXISTS ({base} AND {cmp})")
        }
    })
}

fn run_attribute_column(key: &str) -> &'static str {
    match key {
        "run_id" => "r.run_uuid",
        "run_name" => "r.name",
        "status" => "r.status",
        "user_id" => "r.user_id",
        "artifact_uri" => "r.artifact_uri",
        "lifecycle_stage" => "r.lifecycle_stage",
        "end_time" => "r.end_time",
        _ => "r.start_time", // start_time, created, Created
    }
}

/// Adds a filter clause to the search: as a join (see `run_key_value_clause`) or as the
/// returned WHERE clause.
fn run_clause(sql: &mut Sql, c: &Clause) -> Result<Option<String>> {
    match c.entity {
        Entity::Metric => run_key_value_clause(sql, c, "latest_metrics"),
        Entity::Param => run_key_value_clause(sql, c, "params"),
        Entity::Tag => run_key_value_clause(sql, c, "tags"),
        Entity::Attribute => {
            let column = run_attribute_column(&c.key);
            let numeric = search::RUNS_NUMERIC_ATTRIBUTES.contains(&c.key.as_str());
            compare(sql, c, column, numeric).map(Some)
        }
        Entity::Dataset => {
            let base = "SELECT 1 FROM run_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid WHERE i.run_uuid = r.run_uuid";
            if c.key == "context" {
                let cmp = compare(sql, c, "t.value", false)?;
                Ok(Some(format!(
                    "EXISTS ({base} AND EXISTS (SELECT 1 FROM input_tags t WHERE t.run_uuid = i.run_uuid AND t.dataset_uuid = i.dataset_uuid AND t.key = 'mlflow.data.context' AND {cmp}))"
                )))
            } else {
                let column = if c.key == "name" { "d.name" } else { "d.digest" };
                let cmp = compare(sql, c, column, false)?;
                Ok(Some(format!("EXISTS ({base} AND {cmp})")))
            }
        }
    }
}

fn direction(o: &OrderBy) -> &'static str {
    if o.ascending { "ASC" } else { "DESC" }
}

fn run_order(sql: &mut Sql, o: &OrderBy, n: usize) {
    let dir = direction(o);
    match o.entity {
        Entity::Metric => {
            let k = sql.bind(Bind::Text(o.key.clone()));
            sql.joins.push(format!("LEFT JOIN latest_metrics o{n} ON o{n}.run_uuid = r.run_uuid AND o{n}.key = {k}"));
            // Values first, then NaN, then runs without the metric, whatever the direction.
            sql.keys.push((format!("CASE WHEN o{n}.run_uuid IS NULL THEN 2 WHEN o{n}.is_nan = 1 THEN 1 ELSE 0 END"), "ASC"));
            sql.keys.push((format!("o{n}.value"), dir));
        }
        Entity::Param | Entity::Tag => {
            let table = if o.entity == Entity::Param { "params" } else { "tags" };
            let k = sql.bind(Bind::Text(o.key.clone()));
            sql.joins.push(format!("LEFT JOIN {table} o{n} ON o{n}.run_uuid = r.run_uuid AND o{n}.key = {k}"));
            sql.keys.push((format!("CASE WHEN o{n}.value IS NULL THEN 1 ELSE 0 END"), "ASC"));
            sql.keys.push((format!("o{n}.value"), dir));
        }
        Entity::Attribute | Entity::Dataset => {
            let column = run_attribute_column(&o.key);
            sql.keys.push((format!("CASE WHEN {column} IS NULL THEN 1 ELSE 0 END"), "ASC"));
            sql.keys.push((column.to_owned(), dir));
        }
    }
}

/// Checks `max_results` against 1..=`threshold` (with `default` when absent) and decodes the
/// page token: the paging rules every search shares.
pub(super) fn limit_and_offset(max_results: Option<i64>, default: i64, threshold: i64, page_token: &str) -> Result<(i64, u64)> {
    let limit = max_results.unwrap_or(default);
    if limit > threshold {
        return Err(Error::invalid(format!(
            "Invalid value for request parameter max_results. It must be at most {threshold}, but got value {limit}"
        )));
    }
    if limit < 1 {
        return Err(Error::invalid(format!(
            "Invalid value for request parameter max_results. It must be at least 1, but got value {limit}"
        )));
    }
    Ok((limit, decode_page_token(page_token)?))
}

/// One page (+1 row) of a run search, as a query yielding `id` and the sort keys `k0, k1, ...`
/// in page order; `order` sorts by those keys again (an aggregate over the page must name its
/// order: a subquery's is not kept).
pub(super) struct RunPageSql {
    pub sql: String,
    pub order: String,
    pub binds: Vec<Bind>,
    pub limit: i64,
    pub offset: u64,
}

pub(super) fn runs_sql(q: &RunQuery) -> Result<RunPageSql> {
    let (limit, offset) = limit_and_offset(
        q.max_results,
        validation::SEARCH_RUNS_DEFAULT_MAX_RESULTS,
        validation::SEARCH_RUNS_MAX_RESULTS,
        &q.page_token,
    )?;
    let filter = parse_filter(&q.filter, &search::RUNS)?;
    let orders: Vec<OrderBy> = q.order_by.iter().map(|o| parse_order_by(o, &search::RUNS)).collect::<Result<_>>()?;
    let mut sql = Sql::default();
    let exp_ids: Vec<i64> = q
        .experiment_ids
        .iter()
        .map(|id| id.parse::<i64>().map_err(|_| Error::invalid(format!("Invalid experiment ID '{id}'. Experiment ID must be a valid integer."))))
        .collect::<Result<_>>()?;
    if exp_ids.is_empty() {
        sql.wheres.push("1 = 0".into());
    } else {
        let ph: Vec<String> = exp_ids.iter().map(|i| sql.bind(Bind::I64(*i))).collect();
        sql.wheres.push(format!("r.experiment_id IN ({})", ph.join(", ")));
    }
    let stages: Vec<String> = q.view.stages().iter().map(|s| s.to_string()).collect();
    let ph = sql.bind_list(&stages);
    sql.wheres.push(format!("r.lifecycle_stage IN ({ph})"));
    // Filter joins come before the ordering's LEFT JOINs, which the planner does not reorder.
    for c in &filter.clauses {
        if let Some(w) = run_clause(&mut sql, c)? {
            sql.wheres.push(w);
        }
    }
    for (n, o) in orders.iter().enumerate() {
        run_order(&mut sql, o, n);
    }
    sql.keys.push(("r.start_time".into(), "DESC"));
    sql.keys.push(("r.run_uuid".into(), "ASC"));
    let l = sql.bind(Bind::I64(limit + 1));
    let off = sql.bind(Bind::I64(offset as i64));
    let columns: Vec<String> = sql.keys.iter().enumerate().map(|(n, (expr, _))| format!("{expr} AS k{n}")).collect();
    let order = sql.keys.iter().enumerate().map(|(n, (_, dir))| format!("k{n} {dir}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "SELECT r.run_uuid AS id, {} FROM runs r {} WHERE {} ORDER BY {order} LIMIT {l} OFFSET {off}",
        columns.join(", "),
        sql.joins.join(" "),
        sql.wheres.join(" AND "),
    );
    Ok(RunPageSql { sql: text, order, binds: sql.binds, limit, offset })
}

fn experiment_column(key: &str) -> &'static str {
    match key {
        "name" => "e.name",
        "experiment_id" => "e.experiment_id",
        "last_update_time" => "e.last_update_time",
        _ => "e.creation_time",
    }
}

/// SQL selecting one page (+1 row) of experiment ids.
pub(super) fn experiments_sql(q: &ExperimentQuery) -> Result<(String, Vec<Bind>, i64, u64)> {
    let (limit, offset) = limit_and_offset(
        q.max_results,
        validation::SEARCH_RUNS_DEFAULT_MAX_RESULTS,
        validation::SEARCH_EXPERIMENTS_MAX_RESULTS,
        &q.page_token,
    )?;
    let filter = parse_filter(&q.filter, &search::EXPERIMENTS)?;
    let orders: Vec<OrderBy> = q.order_by.iter().map(|o| parse_order_by(o, &search::EXPERIMENTS)).collect::<Result<_>>()?;
    let mut sql = Sql::default();
    let stages: Vec<String> = q.view.stages().iter().map(|s| s.to_string()).collect();
    let ph = sql.bind_list(&stages);
    sql.wheres.push(format!("e.lifecycle_stage IN ({ph})"));
    for c in &filter.clauses {
        let w = match c.entity {
            Entity::Tag => key_value_clause(&mut sql, c, "experiment_tags", "experiment_id = e.experiment_id")?,
            _ if c.key == "experiment_id" => {
                let Operand::Text(id) = &c.value else {
                    return Err(Error::invalid("experiment_id must be compared with a quoted string"));
                };
                let id = id.parse::<i64>().map_err(|_| Error::invalid(format!("Invalid experiment ID '{id}'")))?;
                let ph = sql.bind(Bind::I64(id));
                comparison(c.op, "e.experiment_id", &ph)
            }
            _ => {
                let numeric = search::EXPERIMENTS_NUMERIC_ATTRIBUTES.contains(&c.key.as_str());
                compare(&mut sql, c, experiment_column(&c.key), numeric)?
            }
        };
        sql.wheres.push(w);
    }
    for (n, o) in orders.iter().enumerate() {
        let dir = direction(o);
        if o.entity == Entity::Tag {
            let k = sql.bind(Bind::Text(o.key.clone()));
            sql.joins.push(format!("LEFT JOIN experiment_tags o{n} ON o{n}.experiment_id = e.experiment_id AND o{n}.key = {k}"));
            sql.orders.push(format!("CASE WHEN o{n}.value IS NULL THEN 1 ELSE 0 END"));
            sql.orders.push(format!("o{n}.value {dir}"));
        } else {
            sql.orders.push(format!("{} {dir}", experiment_column(&o.key)));
        }
    }
    sql.orders.push("e.creation_time DESC".into());
    sql.orders.push("e.experiment_id ASC".into());
    let l = sql.bind(Bind::I64(limit + 1));
    let off = sql.bind(Bind::I64(offset as i64));
    let text = format!(
        "SELECT e.experiment_id FROM experiments e {} WHERE {} ORDER BY {} LIMIT {l} OFFSET {off}",
        sql.joins.join(" "),
        sql.wheres.join(" AND "),
        sql.orders.join(", ")
    );
    Ok((text, sql.binds, limit, offset))
}
