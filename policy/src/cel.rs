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
//!   in values ([`MAX_INPUT_VALUES`]) and depth, and the worst case `nodes × L^nesting` (L: the
//!   longest list or map in the input) must stay within [`MAX_COST`], else the condition is not
//!   run and counts as failed (fail closed).
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
/// The largest estimated cost (`nodes × L^nesting`) run.
pub const MAX_COST: u64 = 20_000_000;

/// The variables a condition may use.
pub const VARIABLES: &[&str] = &["predicate", "subject", "config"];

/// A compiled condition.
#[derive(Clone)]
pub struct Expression {
    source: String,
    program: Arc<Program>,
    nodes: u64,
    nesting: u32,
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
        let cost = (budget.longest as u64)
            .checked_pow(self.nesting)
            .and_then(|c| c.checked_mul(self.nodes));
        match cost {
            Some(c) if c <= MAX_COST => {}
            _ => {
                return Outcome::TooCostly(format!(
                    "{} nodes with comprehensions nested {} deep over a list of {} would exceed the cost limit {MAX_COST}",
                    self.nodes, self.nesting, budget.longest
                ))
            }
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

#[derive(Default)]
struct Walk {
    nodes: usize,
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
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                if !scope.contains(name) {
                    self.idents.insert(name.clone());
                }
            }
            Expr::Select(s) => self.expr(&s.operand, depth + 1, nesting, scope)?,
            Expr::Call(c) => {
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
            serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
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
