//! `auth-server migrate --plan`: the live table, what the adoption and the
//! pending migrations will run, as compact text.

use std::fmt::Write as _;

use super::plan::{printable, Plan, Refusal, Touches};
use super::shape::Shape;

/// What `migrate` would do, without doing it.
#[derive(Debug)]
pub struct Preview {
    /// `None`: there is no `gmail_token` (the migrations create it).
    pub shape: Option<Shape>,
    pub outcome: Result<Plan, Refusal>,
    pub pending: Vec<Pending>,
}

/// A migration not applied yet, and its statements (one line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub version: i64,
    pub description: String,
    pub statements: Vec<String>,
}

/// The embedded migrations missing from `applied`.
pub(crate) fn pending(applied: &[i64]) -> Vec<Pending> {
    super::super::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| Pending {
            version: m.version,
            description: m.description.to_string(),
            statements: statements(m.sql.as_str()),
        })
        .collect()
}

/// Split a migration into its statements, each on one line: comments
/// dropped, blanks collapsed, `$$ … $$` bodies kept whole.
pub fn statements(sql: &str) -> Vec<String> {
    let code: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let code = code.join("\n");
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_body = false;
    let mut rest = code.as_str();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("$$") {
            in_body = !in_body;
            current.push_str("$$");
            rest = &rest[2..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c == ';' && !in_body {
            out.push(one_line(&current));
            current.clear();
        } else {
            current.push(c);
        }
    }
    out.push(one_line(&current));
    out.retain(|s| !s.is_empty());
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Longest statement line printed for a migration.
const MIGRATION_LINE: usize = 110;

impl Preview {
    pub fn is_refused(&self) -> bool {
        self.outcome.is_err()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match &self.shape {
            None => out.push_str("gmail_token: absent (the migrations create it)\n"),
            Some(shape) => out.push_str(&shape.to_text()),
        }
        match &self.outcome {
            Err(refusal) => out.push_str(&refusal.to_text()),
            Ok(plan) => {
                out.push_str(&plan.to_text());
                self.write_pending(&mut out);
            }
        }
        out
    }

    fn write_pending(&self, out: &mut String) {
        if self.pending.is_empty() {
            out.push_str("pending migrations: none\n");
            return;
        }
        let _ = writeln!(out, "pending migrations ({}):", self.pending.len());
        for m in &self.pending {
            let _ = writeln!(out, "  {} {}", m.version, m.description);
            for s in &m.statements {
                let _ = writeln!(out, "    {}", shorten(s, MIGRATION_LINE));
            }
        }
    }
}

fn rows(n: i64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

impl Shape {
    /// Columns and types, unique indexes, other constraints, row count.
    pub fn to_text(&self) -> String {
        let mut out = format!("gmail_token: {}\n  columns:\n", rows(self.rows));
        let width = self.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.columns {
            let _ = write!(
                out,
                "    {:<width$}  {}",
                printable(&c.name),
                printable(&c.type_name)
            );
            if c.not_null {
                out.push_str(" NOT NULL");
            }
            if let Some(d) = &c.default {
                let _ = write!(out, " DEFAULT {}", printable(d));
            }
            out.push('\n');
        }
        for i in &self.unique {
            let kind = if i.primary { "PRIMARY KEY" } else { "UNIQUE" };
            let cols = if i.columns.is_empty() {
                "an expression".to_string()
            } else {
                printable(&i.columns.join(", "))
            };
            let partial = if i.partial { " (partial)" } else { "" };
            let _ = writeln!(out, "  {kind} ({cols}){partial}  [{}]", printable(&i.name));
        }
        for c in &self.constraints {
            let _ = writeln!(out, "  constraint {}", printable(c));
        }
        for d in &self.dependents {
            let _ = writeln!(
                out,
                "  {} uses {}",
                printable(&d.what),
                printable(&d.column)
            );
        }
        out
    }
}

impl Plan {
    pub fn to_text(&self) -> String {
        if self.steps.is_empty() {
            return "adoption: nothing to do (the table has the service's shape, or is absent)\n"
                .into();
        }
        let mut out = format!(
            "adoption, in one transaction ({} statements):\n",
            self.steps.len()
        );
        for (n, s) in self.steps.iter().enumerate() {
            let touches = match s.touches {
                Touches::Schema => "schema only".to_string(),
                Touches::Rewrites(n) => format!("rewrites {}", rows(n)),
                Touches::Updates(n) => format!("updates {}", rows(n)),
                Touches::Checks(n) => format!("checks {}", rows(n)),
            };
            let _ = writeln!(out, "  {:>2}. {}  [{touches}]", n + 1, printable(&s.sql));
        }
        out
    }
}
