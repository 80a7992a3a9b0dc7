//! Attestation conditions in CEL (the `cel` crate of the cel-rust project), wrapped so that no
//! type of that crate leaves this module.
//!
//! The crate has no cost limit of its own, and the policy crate reads no clock, so the cost is
//! bounded before anything runs:
//! - at load: the expression's length ([`MAX_EXPRESSION_BYTES`]), its node count
//!   ([`MAX_NODES`]), its depth ([`MAX_DEPTH`]; the parser's own recursion limit comes first)
//!   and how deeply comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) nest over
//!   independent ranges ([`MAX_NESTING`]); a comprehension over a field of an enclosing
//!   comprehension's variable (`r.Vulnerabilities.all(v, …)` inside `Results.all(r, …)`) walks
//!   disjoint parts of the input, so it does not multiply the work and does not count;
//! - per evaluation: the input (predicate, subject, config) converted to CEL values is bounded
//!   in values ([`MAX_INPUT_VALUES`]) and depth, and the worst case must stay within
//!   [`MAX_COST`], else the condition is not run and counts as failed (fail closed). The worst
//!   case is `L^nesting × (nodes + linear × (adds + 1) × W / 8)`, where L is the longest list or
//!   map in the input, W the larger of L and the longest string's bytes / 64, `linear` the calls
//!   whose work grows with their operands (comparisons, `in`, `+`, string functions: all but
//!   logic, arithmetic and indexing) and `adds` the `+` calls, the only way a value grows
//!   beyond the input (string and list concatenation). So repeating a large string or list,
//!   or comparing one inside a loop, is priced by its size, not as one step.
//!
//! Every evaluation error (no such key, wrong type, a non-boolean result) is a failed condition.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr};
use cel::{Context, IdedExpr, Program, Value};

/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 2048;
/// Most AST nodes (after macro expansion).
pub const MAX_NODES: usize = 1000;
/// Deepest AST.
pub const MAX_DEPTH: usize = 48;
/// Deepest nesting of comprehensions over independent ranges.
pub const MAX_NESTING: u32 = 2;
/// Most JSON values converted for one evaluation (predicate, subject and config together).
pub const MAX_INPUT_VALUES: usize = 500_000;
/// Deepest JSON value converted.
pub const MAX_INPUT_DEPTH: usize = 64;
/// The largest estimated cost (see the module documentation) run.
pub const MAX_COST: u64 = 20_000_000;
/// Bytes of a string that count as one element in the cost of a linear operation.
const BYTES_PER_UNIT: usize = 64;
/// A linear operation's per-element work, against one evaluation step of a node.
const LINEAR_WEIGHT: u64 = 8;

/// The variables a condition may use.
pub const VARIABLES: &[&str] = &["predicate", "subject", "config"];

/// A compiled condition.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<Program>,
    nodes: u64,
    nesting: u32,
    linear: [u64; MAX_NESTING as usize + 1],
    adds: u64,
    uses_config: bool,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expression")
            .field("source", &self.source)
            .field("nodes", &self.nodes)
            .field("nesting", &self.nesting)
            .finish()
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why an expression was refused at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// It does not parse; `line` and `column` (1-based) are inside the expression when the
    /// parser gave them.
    Syntax {
        /// Line in the expression.
        line: Option<usize>,
        /// Column in that line.
        column: Option<usize>,
        /// The parser's message (bounded).
        message: String,
    },
    /// Over a static bound: what, and the limit.
    TooCostly(String),
    /// It names a variable that does not exist.
    UnknownVariable(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Syntax {
                line,
                column,
                message,
            } => {
                match (line, column) {
                    (Some(l), Some(c)) => write!(f, "CEL syntax error at {l}:{c}: ")?,
                    _ => write!(f, "CEL syntax error: ")?,
                }
                f.write_str(message)
            }
            CompileError::TooCostly(what) => write!(f, "CEL expression too costly: {what}"),
            CompileError::UnknownVariable(name) => write!(
                f,
                "CEL expression uses unknown variable {name:?}; the variables are {}",
                VARIABLES.join(", ")
            ),
        }
    }
}

/// The result of running a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It evaluated to `true`.
    True,
    /// It evaluated to `false`.
    False,
    /// It could not be evaluated (the message is bounded).
    Error(String),
    /// The input would make it too costly; it was not run.
    TooCostly(String),
}

fn bounded(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

impl Expression {
    /// Compile `source`, refusing what is over the static bounds.
    pub fn compile(source: &str) -> Result<Expression, CompileError> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(CompileError::TooCostly(format!(
                "{} bytes, over the {MAX_EXPRESSION_BYTES}-byte limit",
                source.len()
            )));
        }
        let program = Program::compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let pos = first.map(|e| e.pos);
            let valid = |v: isize| usize::try_from(v).ok().filter(|v| *v > 0);
            CompileError::Syntax {
                line: pos.and_then(|p| valid(p.0)),
                column: pos.and_then(|p| valid(p.1)),
                message: bounded(first.map(|e| e.msg.as_str()).unwrap_or("does not parse")),
            }
        })?;
        let mut walk = Walk::default();
        walk.expr(program.expression(), 1, 0, &mut Vec::new())?;
        let references = program.references();
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for name in walk.idents {
            if !VARIABLES.contains(&name.as_str()) && !walk.bound.contains(&name) {
                unknown.insert(name);
            }
        }
        if let Some(name) = unknown.into_iter().next() {
            return Err(CompileError::UnknownVariable(bounded(&name)));
        }
        Ok(Expression {
            source: source.to_string(),
            nodes: walk.nodes as u64,
            nesting: walk.max_nesting,
            linear: walk.linear,
            adds: walk.adds,
            uses_config: references.has_variable("config"),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it reads `config` (then the verifier must fetch the image config).
    pub fn uses_config(&self) -> bool {
        self.uses_config
    }

    /// Run it over the JSON values `predicate`, `subject` and `config`.
    pub fn evaluate(
        &self,
        predicate: &serde_json::Value,
        subject: &serde_json::Value,
        config: &serde_json::Value,
    ) -> Outcome {
        let mut budget = Convert {
            values: 0,
            longest: 1,
            longest_string: 0,
        };
        let converted = [predicate, subject, config]
            .into_iter()
            .map(|v| budget.value(v, 0))
            .collect::<Result<Vec<Value>, String>>();
        let [predicate, subject, config] = match converted {
            Ok(v) => match <[Value; 3]>::try_from(v) {
                Ok(a) => a,
                Err(_) => return Outcome::Error("internal: input conversion".into()),
            },
            Err(why) => return Outcome::TooCostly(why),
        };
        if self.cost(budget.longest, budget.longest_string).is_none() {
            return Outcome::TooCostly(format!(
                "{} nodes ({} linear in their operands, {} concatenations) with comprehensions nested {} deep over a list of {} and strings of up to {} bytes would exceed the cost limit {MAX_COST}",
                self.nodes, self.linear.iter().sum::<u64>(), self.adds, self.nesting, budget.longest, budget.longest_string
            ));
        }
        let mut context = Context::default();
        context.add_variable_from_value("predicate", predicate);
        context.add_variable_from_value("subject", subject);
        context.add_variable_from_value("config", config);
        match self.program.execute(&context) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(format!(
                "the result is {:?}, not a boolean",
                other.type_of()
            )),
            Err(e) => Outcome::Error(bounded(&e.to_string())),
        }
    }
}

impl Expression {
    /// The worst-case cost over an input whose longest list or map has `longest` entries and
    /// whose longest string has `longest_string` bytes; `None` when over [`MAX_COST`].
    fn cost(&self, longest: usize, longest_string: usize) -> Option<u64> {
        let longest = longest as u64;
        let width = longest.max(longest_string.div_ceil(BYTES_PER_UNIT) as u64);
        let operand = self.adds.checked_add(1)?.checked_mul(width)?;
        let mut cost = longest.checked_pow(self.nesting)?.checked_mul(self.nodes)?;
        for (level, linear) in (0u32..).zip(self.linear) {
            let at_level = longest
                .checked_pow(level)?
                .checked_mul(linear)?
                .checked_mul(operand)?
                / LINEAR_WEIGHT;
            cost = cost.checked_add(at_level)?;
        }
        (cost <= MAX_COST).then_some(cost)
    }
}

/// Comparisons and prefix tests whose work is bounded by a literal operand.
const BOUNDED_BY_A_LITERAL: &[&str] = &[
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "startsWith",
    "endsWith",
];

fn is_literal(e: &IdedExpr) -> bool {
    matches!(e.expr, Expr::Literal(_))
}

/// Whether a call's work is bounded by the expression itself: a comparison with a literal,
/// or `x in [literals]`.
fn bounded_by_literal(c: &cel::common::ast::CallExpr) -> bool {
    if BOUNDED_BY_A_LITERAL.contains(&c.func_name.as_str()) {
        return c.target.as_deref().is_some_and(is_literal) || c.args.iter().any(is_literal);
    }
    c.func_name == "@in"
        && matches!(c.args.get(1).map(|a| &a.expr), Some(Expr::List(l)) if l.elements.iter().all(is_literal))
}

/// Calls whose work does not grow with their operands: logic, the conditional, arithmetic
/// (on numbers; CEL has no string or list multiplication) and indexing.
const CONSTANT_TIME_CALLS: &[&str] = &[
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "-_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@not_strictly_false",
];

/// The accumulator the parser's macros (`map`, `filter`, `exists_one`) bind; a `+` onto it
/// appends one element (the interpreter builds such lists in place), so it neither grows a
/// value beyond its input nor copies one.
const MACRO_ACCUMULATOR: &str = "@result";

#[derive(Default)]
struct Walk {
    nodes: usize,
    linear: [u64; MAX_NESTING as usize + 1],
    adds: u64,
    max_nesting: u32,
    idents: BTreeSet<String>,
    bound: BTreeSet<String>,
}

impl Walk {
    /// `scope`: the iteration variables of enclosing comprehensions.
    fn expr(
        &mut self,
        e: &IdedExpr,
        depth: usize,
        nesting: u32,
        scope: &mut Vec<String>,
    ) -> Result<(), CompileError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(CompileError::TooCostly(format!(
                "more than {MAX_NODES} nodes"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(CompileError::TooCostly(format!(
                "nested more than {MAX_DEPTH} deep"
            )));
        }
        match &e.expr {
            // The interpreter panics on an unspecified node; the parser should never make one.
            Expr::Unspecified => {
                return Err(CompileError::Syntax {
                    line: None,
                    column: None,
                    message: "incomplete expression".into(),
                })
            }
            Expr::Literal(_) => {}
            Expr::Ident(name) => {
                if !scope.contains(name) {
                    self.idents.insert(name.clone());
                }
            }
            Expr::Select(s) => self.expr(&s.operand, depth + 1, nesting, scope)?,
            Expr::Call(c) => {
                let appends_to_accumulator = c.func_name == "_+_"
                    && matches!(c.args.first().map(|a| &a.expr), Some(Expr::Ident(n)) if n == MACRO_ACCUMULATOR);
                if !appends_to_accumulator
                    && !CONSTANT_TIME_CALLS.contains(&c.func_name.as_str())
                    && !bounded_by_literal(c)
                {
                    let level = (nesting as usize).min(MAX_NESTING as usize);
                    self.linear[level] += 1;
                    if c.func_name == "_+_" {
                        self.adds += 1;
                    }
                }
                if let Some(t) = &c.target {
                    self.expr(t, depth + 1, nesting, scope)?;
                }
                for a in &c.args {
                    self.expr(a, depth + 1, nesting, scope)?;
                }
            }
            Expr::List(l) => {
                for a in &l.elements {
                    self.expr(a, depth + 1, nesting, scope)?;
                }
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.expr(&me.key, depth + 1, nesting, scope)?;
                        self.expr(&me.value, depth + 1, nesting, scope)?;
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value, depth + 1, nesting, scope)?;
                    }
                }
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range, depth + 1, nesting, scope)?;
                let inner = if rooted_in(&c.iter_range, scope) {
                    nesting
                } else {
                    nesting + 1
                };
                if inner > MAX_NESTING {
                    return Err(CompileError::TooCostly(format!(
                        "comprehensions over independent lists nested more than {MAX_NESTING} deep"
                    )));
                }
                self.max_nesting = self.max_nesting.max(inner);
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                scope.push(c.iter_var.clone());
                scope.push(c.accu_var.clone());
                self.bound.insert(c.iter_var.clone());
                self.bound.insert(c.accu_var.clone());
                if let Some(v) = &c.iter_var2 {
                    scope.push(v.clone());
                    self.bound.insert(v.clone());
                }
                let parts = [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result];
                let mut result = Ok(());
                for part in parts {
                    result = self.expr(part, depth + 1, inner, scope);
                    if result.is_err() {
                        break;
                    }
                }
                scope.truncate(scope.len().saturating_sub(pushed));
                result?;
            }
        }
        Ok(())
    }
}

/// Whether `range` is a field path (`x.a.b`, `x.a[0]`) of a variable in `scope`.
fn rooted_in(range: &IdedExpr, scope: &[String]) -> bool {
    let mut e = &range.expr;
    loop {
        match e {
            Expr::Ident(name) => return scope.contains(name),
            Expr::Select(s) if !s.test => e = &s.operand.expr,
            Expr::Call(c) if c.func_name == "_[_]" && c.args.len() == 2 => e = &c.args[0].expr,
            _ => return false,
        }
    }
}

struct Convert {
    values: usize,
    longest: usize,
    longest_string: usize,
}

impl Convert {
    fn value(&mut self, v: &serde_json::Value, depth: usize) -> Result<Value, String> {
        self.values += 1;
        if self.values > MAX_INPUT_VALUES {
            return Err(format!("the input has more than {MAX_INPUT_VALUES} values"));
        }
        if depth > MAX_INPUT_DEPTH {
            return Err(format!("the input nests deeper than {MAX_INPUT_DEPTH}"));
        }
        Ok(match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::UInt(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => {
                self.longest_string = self.longest_string.max(s.len());
                Value::String(Arc::new(s.clone()))
            }
            serde_json::Value::Array(items) => {
                self.longest = self.longest.max(items.len());
                let list = items
                    .iter()
                    .map(|i| self.value(i, depth + 1))
                    .collect::<Result<Vec<Value>, String>>()?;
                Value::List(Arc::new(list))
            }
            serde_json::Value::Object(map) => {
                self.longest = self.longest.max(map.len());
                let mut out: HashMap<String, Value> = HashMap::with_capacity(map.len());
                for (k, item) in map {
                    self.longest_string = self.longest_string.max(k.len());
                    out.insert(k.clone(), self.value(item, depth + 1)?);
                }
                Value::from(out)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn run(src: &str, predicate: serde_json::Value) -> Outcome {
        Expression::compile(src)
            .unwrap()
            .evaluate(&predicate, &json!([]), &serde_json::Value::Null)
    }

    #[test]
    fn true_false_and_errors() {
        assert_eq!(run("predicate.a == 1", json!({"a": 1})), Outcome::True);
        assert_eq!(run("predicate.a == 2", json!({"a": 1})), Outcome::False);
        assert!(
            matches!(run("predicate.b == 2", json!({"a": 1})), Outcome::Error(m) if m.contains("No such key"))
        );
        assert!(
            matches!(run("predicate.a", json!({"a": 1})), Outcome::Error(m) if m.contains("not a boolean"))
        );
    }

    #[test]
    fn nested_over_a_field_of_the_outer_variable_is_linear() {
        let e = Expression::compile("predicate.r.all(x, x.v.all(y, y > 0))").unwrap();
        assert_eq!(e.nesting, 1);
        let e = Expression::compile("predicate.r.all(x, predicate.r.all(y, x == y))").unwrap();
        assert_eq!(e.nesting, 2);
        let err = Expression::compile(
            "predicate.r.all(x, predicate.r.all(y, predicate.r.all(z, x == y)))",
        )
        .unwrap_err();
        assert!(matches!(err, CompileError::TooCostly(m) if m.contains("nested more than 2")));
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = Expression::compile("predicate.a ==").unwrap_err();
        let CompileError::Syntax { line, column, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(line, Some(1));
        assert!(column.is_some());
    }
}

#[cfg(test)]
mod arithmetic_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// Overflow, division by zero and out-of-range indexes are evaluation errors, not panics.
    #[test]
    fn arithmetic_faults_are_errors() {
        for src in [
            "predicate.m + 1 > 0",
            "predicate.m * 2 > 0",
            "1 / predicate.z == 1",
            "1 % predicate.z == 1",
            "predicate.l[5] == 1",
            "-(predicate.n) > 0",
        ] {
            let e = Expression::compile(src).unwrap();
            let out = e.evaluate(
                &json!({"m": i64::MAX, "z": 0, "l": [1], "n": i64::MIN}),
                &json!([]),
                &serde_json::Value::Null,
            );
            assert!(matches!(out, Outcome::Error(_)), "{src}: {out:?}");
        }
    }
}

#[cfg(test)]
mod bound_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const OVER_THE_LIMIT: &str = "would exceed the cost limit 20000000";

    fn run(src: &str, predicate: &serde_json::Value) -> Outcome {
        Expression::compile(src)
            .unwrap()
            .evaluate(predicate, &json!([]), &serde_json::Value::Null)
    }

    fn too_costly(outcome: &Outcome) -> bool {
        matches!(outcome, Outcome::TooCostly(m) if m.contains(OVER_THE_LIMIT))
    }

    #[test]
    fn nested_comprehensions_over_a_large_list_are_not_run() {
        let src = "predicate.l.all(x, predicate.l.exists(y, x == y))";
        assert_eq!(
            run(src, &json!({"l": (0..100).collect::<Vec<_>>()})),
            Outcome::True
        );
        let out = run(src, &json!({"l": (0..10_000).collect::<Vec<_>>()}));
        assert!(too_costly(&out), "{out:?}");
        let err = Expression::compile(
            "predicate.l.all(x, predicate.l.all(y, predicate.l.all(z, x == y || y == z)))",
        )
        .unwrap_err();
        assert!(matches!(&err, CompileError::TooCostly(m) if m.contains("nested more than 2")));
    }

    /// CEL has no loop with a free accumulator, so a string or list grows only through `+`:
    /// repeating a large one is priced by its size (here 64 copies of 4 MiB, then 100,000 times
    /// 4 copies of 3 MiB, which would copy terabytes).
    #[test]
    fn repeating_a_large_string_is_priced_by_its_size() {
        let mut copies = "predicate.s".to_string();
        for _ in 0..6 {
            copies = format!("({copies} + {copies})");
        }
        let src = format!("{copies}.size() > 0");
        assert_eq!(run(&src, &json!({"s": "a".repeat(1000)})), Outcome::True);
        let out = run(&src, &json!({"s": "a".repeat(4 << 20)}));
        assert!(too_costly(&out), "{out:?}");

        let src = "predicate.l.all(x, (predicate.s + predicate.s + predicate.s + predicate.s).size() > 0)";
        assert_eq!(
            run(src, &json!({"l": [0, 1], "s": "a".repeat(1 << 20)})),
            Outcome::True
        );
        let out = run(
            src,
            &json!({"l": vec![0; 100_000], "s": "a".repeat(3 << 20)}),
        );
        assert!(too_costly(&out), "{out:?}");
    }

    #[test]
    fn concatenating_or_searching_a_large_list_inside_a_loop_is_priced() {
        for src in [
            "predicate.l.all(x, (predicate.l + predicate.l).size() > 0)",
            "predicate.l.all(x, x in predicate.l)",
        ] {
            assert_eq!(
                run(src, &json!({"l": (0..100).collect::<Vec<_>>()})),
                Outcome::True,
                "{src}"
            );
            let out = run(src, &json!({"l": (0..100_000).collect::<Vec<_>>()}));
            assert!(too_costly(&out), "{src}: {out:?}");
        }
    }

    /// `map` and `filter` append to their accumulator in place: one step per element.
    #[test]
    fn map_and_filter_over_a_large_list_run() {
        let l = json!({"l": (0..100_000).collect::<Vec<_>>()});
        assert_eq!(
            run("predicate.l.map(x, x * 2).size() == 100000", &l),
            Outcome::True
        );
        assert_eq!(
            run("predicate.l.filter(x, x % 2 == 0).size() == 50000", &l),
            Outcome::True
        );
    }

    #[test]
    fn inputs_over_the_value_bound_are_not_run() {
        let out = run("true", &json!({"l": vec![0; MAX_INPUT_VALUES]}));
        assert!(
            matches!(&out, Outcome::TooCostly(m) if m.contains("more than 500000 values")),
            "{out:?}"
        );
        let mut deep = json!(0);
        for _ in 0..=MAX_INPUT_DEPTH {
            deep = json!([deep]);
        }
        let out = run("true", &json!({"d": deep}));
        assert!(
            matches!(&out, Outcome::TooCostly(m) if m.contains("nests deeper than 64")),
            "{out:?}"
        );
    }

    /// A condition as a policy writes it, over a real Trivy scan, is well within the bound.
    #[test]
    fn a_realistic_condition_over_a_real_scan_runs() {
        let scan: serde_json::Value = serde_json::from_str(include_str!(
            "../../testdata/attestations/trivy-vuln-critical.json"
        ))
        .unwrap();
        let src = r#"predicate.scanner.result.Results.all(r, !has(r.Vulnerabilities) || r.Vulnerabilities.all(v, !(v.Severity in ["CRITICAL", "HIGH"]) || v.VulnerabilityID in ["CVE-0000-0000"]))"#;
        assert_eq!(run(src, &scan), Outcome::False);
    }
}
