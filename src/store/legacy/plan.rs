//! The decision: from a [`Shape`] and its [`Facts`], the statements that give
//! the table the service's shape, or every reason it cannot be adopted
//! safely. Pure: no database here.

use super::shape::{Check, Column, Facts, Kind, Offenders, Shape};

/// The service's text columns.
const TEXT_COLUMNS: &[&str] = &[
    "email",
    "google_sub",
    "access_token",
    "refresh_token",
    "token_type",
    "last_error",
];
/// The service's timestamps that may be NULL.
const TIME_COLUMNS: &[&str] = &[
    "expires_at",
    "last_refreshed_at",
    "consented_at",
    "swept_at",
    "refresh_claimed_until",
];
/// Bookkeeping timestamps the service reads as never NULL.
const STAMP_COLUMNS: &[&str] = &["created_at", "updated_at"];
/// Where the old service may have kept the expiry, in order of preference.
pub const EXPIRY_SOURCES: &[&str] = &["token_expiry", "expiry"];
/// The values of `status` the service knows.
pub const STATUSES: &[&str] = &["active", "reauth_required", "revoked"];
/// The service's CHECK on `status`: its name (the one PostgreSQL also gives
/// an unnamed column check on `status`, so the name alone proves nothing)…
pub const STATUS_CHECK: &str = "gmail_token_status_check";
/// … and its definition, as `pg_get_constraintdef` prints it.
pub const STATUS_CHECK_DEFINITION: &str =
    "CHECK ((status = ANY (ARRAY['active'::text, 'reauth_required'::text, 'revoked'::text])))";
/// Identity columns whose blank values (empty or whitespace) become NULL.
const IDENTITY_COLUMNS: &[&str] = &["email", "google_sub"];
/// Text the adoption reads as a timestamp: ISO 8601, a date or a date and
/// time, with an optional offset (matched case-insensitively).
pub const TIMESTAMP_PATTERN: &str =
    "^\\s*\\d{4}-\\d{2}-\\d{2}([ t]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?\\s*(z|[+-]\\d{2}(:?\\d{2})?)?)?\\s*$";
/// A time with an offset at the end (else the text is UTC).
const OFFSET_PATTERN: &str = "\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?\\s*(z|[+-]\\d{2}(:?\\d{2})?)\\s*$";
/// `user_id` values the adoption converts: UUIDs, with or without hyphens,
/// any case, surrounding blanks ignored.
pub const UUID_PATTERN: &str = "^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$";

/// What a step does to the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// The schema only.
    Schema,
    /// Rewrites every row (a type change).
    Rewrites(i64),
    /// Updates this many rows.
    Updates(i64),
    /// Reads every row (a new CHECK is validated).
    Checks(i64),
}

/// One statement of the adoption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub sql: String,
    pub touches: Touches,
}

/// The statements, in order, applied in one transaction. Empty: the table
/// has the service's shape already (or does not exist).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// One reason the table cannot be adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub column: String,
    /// What is wrong, with the offending rows.
    pub what: String,
    /// What the operator does about it.
    pub fix: String,
}

/// The table cannot be adopted safely: every reason at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.to_text())]
pub struct Refusal {
    pub problems: Vec<Problem>,
}

impl Refusal {
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "gmail_token cannot be adopted safely ({} problem(s)); nothing was changed:\n",
            self.problems.len()
        );
        for p in &self.problems {
            out.push_str(&format!(
                "  - {}: {}\n    fix: {}\n",
                printable(&p.column),
                printable(&p.what),
                printable(&p.fix)
            ));
        }
        out
    }
}

/// Builds the plan step by step, collecting problems on the way.
#[derive(Default)]
struct Builder {
    steps: Vec<Step>,
    problems: Vec<Problem>,
    /// Columns whose type the plan changes.
    retyped: Vec<String>,
}

impl Builder {
    fn alter(&mut self, clause: String, touches: Touches) {
        self.steps.push(Step {
            sql: format!("ALTER TABLE gmail_token {clause}"),
            touches,
        });
    }

    /// `ALTER COLUMN column TYPE to` (`to` may carry its `USING`).
    fn retype(&mut self, column: &str, to: &str, touches: Touches) {
        self.alter(format!("ALTER COLUMN {column} TYPE {to}"), touches);
        self.retyped.push(column.to_string());
    }

    /// PostgreSQL cannot change the type of a column a view or a foreign
    /// key uses: say so before the transaction fails.
    fn check_dependents(&mut self, shape: &Shape) {
        for d in &shape.dependents {
            if self.retyped.contains(&d.column) {
                self.refuse(
                    &d.column,
                    format!("its type must change, and {} uses it", d.what),
                    "drop it before the start (keep its definition) and create it again afterwards",
                );
            }
        }
    }

    fn sql(&mut self, sql: &str, touches: Touches) {
        self.steps.push(Step {
            sql: sql.to_string(),
            touches,
        });
    }

    fn refuse(&mut self, column: &str, what: String, fix: &str) {
        self.problems.push(Problem {
            column: column.to_string(),
            what,
            fix: fix.to_string(),
        });
    }

    /// `column` has a type the service cannot read.
    fn unreadable(&mut self, c: &Column, wants: &str) {
        self.refuse(
            &c.name,
            format!("is {}, which the service cannot read as {wants}", c.type_name),
            &format!(
                "convert it by hand (ALTER TABLE gmail_token ALTER COLUMN {} TYPE {wants} USING …), or rename it if it means something else",
                c.name
            ),
        );
    }
}

/// The adoption plan for `shape`, or why there is none.
pub fn plan(shape: &Shape, facts: &Facts) -> Result<Plan, Refusal> {
    let mut b = Builder::default();
    checks(&mut b, shape);
    user_id(&mut b, shape, facts);
    for name in TEXT_COLUMNS {
        if let Some(c) = shape.column(name) {
            text_column(&mut b, shape, c);
        }
    }
    blank_identities(&mut b, facts);
    for name in TIME_COLUMNS {
        if let Some(c) = shape.column(name) {
            time_column(&mut b, shape, c, facts, "NULL");
        }
    }
    scopes(&mut b, shape);
    expiry(&mut b, shape, facts);
    status(&mut b, shape, facts);
    stamps(&mut b, shape, facts);
    unknown_columns(&mut b, shape);
    b.check_dependents(shape);
    if b.problems.is_empty() {
        Ok(Plan { steps: b.steps })
    } else {
        Err(Refusal {
            problems: b.problems,
        })
    }
}

/// Does the table have the service's CHECK on `status` (by its definition)?
pub fn has_status_check(shape: &Shape) -> bool {
    shape
        .checks
        .iter()
        .any(|c| c.name == STATUS_CHECK && c.definition == STATUS_CHECK_DEFINITION)
}

/// Is `name` a column the service writes?
fn is_services(name: &str) -> bool {
    ["user_id", "scopes", "status"].contains(&name)
        || TEXT_COLUMNS.contains(&name)
        || TIME_COLUMNS.contains(&name)
        || STAMP_COLUMNS.contains(&name)
}

/// A CHECK of the old table on a column the service writes would fail its
/// writes (an old status CHECK forbids `reauth_required`, a
/// `refresh_token IS NOT NULL` forbids clearing it): it is dropped, first,
/// before any type change. The service's own status CHECK stays, and one
/// taking its name is dropped whatever it checks ([`status`] adds the
/// service's).
fn checks(b: &mut Builder, shape: &Shape) {
    let foreign = |c: &&Check| {
        let ours = c.name == STATUS_CHECK && c.definition == STATUS_CHECK_DEFINITION;
        !ours && (c.name == STATUS_CHECK || c.columns.iter().any(|n| is_services(n)))
    };
    for c in shape.checks.iter().filter(foreign) {
        b.alter(
            format!("DROP CONSTRAINT {}", ident(&c.name)),
            Touches::Schema,
        );
    }
}

fn user_id(b: &mut Builder, shape: &Shape, facts: &Facts) {
    let Some(c) = shape.column("user_id") else {
        b.refuse(
            "user_id",
            "the table has no user_id column".into(),
            "rename the column that holds the ro-being user id to user_id",
        );
        return;
    };
    rows_problems(b, facts);
    match c.kind {
        Kind::Uuid => {}
        k if k.is_text() => {
            if facts.not_uuid.is_empty() {
                if c.default.is_some() {
                    b.alter("ALTER COLUMN user_id DROP DEFAULT".into(), Touches::Schema);
                }
                // Old readers binding text keep working: the migration
                // `…_uuid_text_operator.sql` adds `uuid = text`.
                b.retype(
                    "user_id",
                    "uuid USING btrim(user_id)::uuid",
                    Touches::Rewrites(shape.rows),
                );
            } else {
                b.refuse(
                    "user_id",
                    format!("{} not a UUID", offenders(&facts.not_uuid, "value is", "values are")),
                    "correct those user ids (they must be ro-being user UUIDs) or delete their rows",
                );
            }
        }
        _ => b.unreadable(c, "uuid"),
    }
    key(b, shape, c);
}

/// NULL user ids and users with several rows.
fn rows_problems(b: &mut Builder, facts: &Facts) {
    if facts.null_user_ids > 0 {
        b.refuse(
            "user_id",
            format!("{} row(s) have no user_id (NULL)", facts.null_user_ids),
            "delete those rows (they belong to no user) or fill in their user id",
        );
    }
    if !facts.duplicates.is_empty() {
        b.refuse(
            "user_id",
            format!(
                "{} more than one row",
                offenders(&facts.duplicates, "user has", "users have")
            ),
            "keep one row per user (the newest) and delete the others",
        );
    }
}

/// `ON CONFLICT (user_id)` needs a unique index on `user_id` alone; a
/// surrogate primary key (`id serial`) is kept.
fn key(b: &mut Builder, shape: &Shape, c: &Column) {
    if shape.user_id_is_unique() {
        if !c.not_null {
            b.alter("ALTER COLUMN user_id SET NOT NULL".into(), Touches::Schema);
        }
    } else if shape.primary_key().is_none() {
        b.alter("ADD PRIMARY KEY (user_id)".into(), Touches::Schema);
    } else {
        if !c.not_null {
            b.alter("ALTER COLUMN user_id SET NOT NULL".into(), Touches::Schema);
        }
        b.alter(
            "ADD CONSTRAINT gmail_token_user_id_key UNIQUE (user_id)".into(),
            Touches::Schema,
        );
    }
}

fn text_column(b: &mut Builder, shape: &Shape, c: &Column) {
    match c.kind {
        Kind::Text => {}
        Kind::TextLike => b.retype(&c.name, "text", to_text_touches(shape, c)),
        _ => b.unreadable(c, "text"),
    }
}

/// varchar → text needs no rewrite; the others (`char(n)`, `citext`, …)
/// are rewritten.
fn to_text_touches(shape: &Shape, c: &Column) -> Touches {
    if c.type_name.starts_with("character varying") {
        Touches::Schema
    } else {
        Touches::Rewrites(shape.rows)
    }
}

/// A blank email or Google account id is no identity: it becomes NULL.
fn blank_identities(b: &mut Builder, facts: &Facts) {
    for name in IDENTITY_COLUMNS {
        if let Some(&n) = facts.blank.get(*name).filter(|n| **n > 0) {
            b.sql(
                &format!("UPDATE gmail_token SET {name} = NULL WHERE {name} ~ '^\\s*$'"),
                Touches::Updates(n),
            );
        }
    }
}

/// Give `c` the type `timestamptz` (blank text becomes `blank`); false
/// when it cannot be (refused).
fn time_column(b: &mut Builder, shape: &Shape, c: &Column, facts: &Facts, blank: &str) -> bool {
    let Some(value) = timestamp_of(b, c, facts, blank) else {
        return false;
    };
    if c.kind != Kind::Timestamptz && c.default.is_some() {
        // A text default cannot be cast, and a naive one (`timezone('utc',
        // now())`) would be read in the session's time zone: dropped; the
        // bookkeeping columns get now().
        b.alter(
            format!("ALTER COLUMN {} DROP DEFAULT", c.name),
            Touches::Schema,
        );
    }
    if value != c.name {
        b.retype(
            &c.name,
            &format!("timestamptz USING {value}"),
            Touches::Rewrites(shape.rows),
        );
    }
    true
}

/// An expression reading `c` as `timestamptz`, or `None` (refused): naive
/// values are UTC; text must be ISO 8601 (an offset or `Z` is honoured;
/// blank becomes `blank`).
fn timestamp_of(b: &mut Builder, c: &Column, facts: &Facts, blank: &str) -> Option<String> {
    let n = &c.name;
    match c.kind {
        Kind::Timestamptz => Some(n.clone()),
        Kind::Timestamp => Some(format!("{n} AT TIME ZONE 'UTC'")),
        k if k.is_text() => match facts.bad_times.get(n) {
            Some(bad) if !bad.is_empty() => {
                b.refuse(
                    n,
                    format!(
                        "is {}, and {} not an ISO 8601 timestamp",
                        c.type_name,
                        offenders(bad, "value is", "values are")
                    ),
                    "correct those values (or set them NULL), or convert the column by hand",
                );
                None
            }
            _ => Some(format!(
                "CASE WHEN btrim({n}) = '' THEN {blank} WHEN {n} ~* '{OFFSET_PATTERN}' THEN {n}::timestamptz \
                 ELSE {n}::timestamp AT TIME ZONE 'UTC' END"
            )),
        },
        _ => {
            b.unreadable(c, "timestamptz");
            None
        }
    }
}

/// Text columns that hold (or should hold) timestamps: their values are
/// checked against [`TIMESTAMP_PATTERN`].
pub fn text_time_columns(shape: &Shape) -> Vec<&Column> {
    TIME_COLUMNS
        .iter()
        .chain(STAMP_COLUMNS)
        .filter_map(|n| shape.column(n))
        .chain(expiry_source(shape))
        .filter(|c| c.kind.is_text())
        .collect()
}

/// `scopes` becomes a jsonb array; a jsonb string stays as it is (the
/// service reads both).
fn scopes(b: &mut Builder, shape: &Shape) {
    let Some(c) = shape.column("scopes") else {
        return;
    };
    let using = match c.kind {
        Kind::Jsonb => return,
        Kind::Json => "scopes::jsonb",
        // Space- or comma-separated, or a JSON list kept as text: brackets
        // and quotes never occur in a scope.
        k if k.is_text() => {
            "to_jsonb(array_remove(regexp_split_to_array(translate(scopes, '[]\"', '   '), '[\\s,]+'), ''))"
        }
        Kind::TextArray => "to_jsonb(array_remove(scopes::text[], NULL))",
        _ => return b.unreadable(c, "jsonb"),
    };
    if c.default.is_some() {
        b.alter("ALTER COLUMN scopes DROP DEFAULT".into(), Touches::Schema);
    }
    b.retype(
        "scopes",
        &format!("jsonb USING {using}"),
        Touches::Rewrites(shape.rows),
    );
}

/// The old expiry column fills `expires_at` where it is empty; it stays.
fn expiry(b: &mut Builder, shape: &Shape, facts: &Facts) {
    let Some(src) = expiry_source(shape) else {
        return;
    };
    let Some(value) = timestamp_of(b, src, facts, "NULL") else {
        return;
    };
    if shape.column("expires_at").is_none() {
        b.alter("ADD COLUMN expires_at timestamptz".into(), Touches::Schema);
    }
    if facts.expiry_to_fill > 0 {
        b.sql(
            &format!(
                "UPDATE gmail_token SET expires_at = {value} WHERE expires_at IS NULL AND {} IS NOT NULL",
                src.name
            ),
            Touches::Updates(facts.expiry_to_fill),
        );
    }
}

/// The old service's expiry column, if it has one.
pub fn expiry_source(shape: &Shape) -> Option<&Column> {
    EXPIRY_SOURCES.iter().find_map(|n| shape.column(n))
}

fn status(b: &mut Builder, shape: &Shape, facts: &Facts) {
    let Some(c) = shape.column("status") else {
        return;
    };
    match c.kind {
        Kind::Text => {}
        Kind::TextLike => b.retype("status", "text", to_text_touches(shape, c)),
        _ => return b.unreadable(c, "text"),
    }
    if !facts.bad_status.is_empty() {
        b.refuse(
            "status",
            format!(
                "{} a status the service does not know (it knows {})",
                offenders(&facts.bad_status, "row has", "rows have"),
                STATUSES.join(", ")
            ),
            "map each to active, reauth_required or revoked (UPDATE gmail_token SET status = … WHERE status = …)",
        );
    }
    if facts.null_status > 0 {
        b.sql(
            "UPDATE gmail_token SET status = 'active' WHERE status IS NULL",
            Touches::Updates(facts.null_status),
        );
    }
    if !c
        .default
        .as_deref()
        .is_some_and(|d| d.starts_with("'active'"))
    {
        b.alter(
            "ALTER COLUMN status SET DEFAULT 'active'".into(),
            Touches::Schema,
        );
    }
    if !c.not_null {
        b.alter("ALTER COLUMN status SET NOT NULL".into(), Touches::Schema);
    }
    if !has_status_check(shape) {
        b.alter(
            format!(
                "ADD CONSTRAINT {STATUS_CHECK} CHECK (status IN ('active', 'reauth_required', 'revoked'))"
            ),
            Touches::Checks(shape.rows),
        );
    }
}

fn stamps(b: &mut Builder, shape: &Shape, facts: &Facts) {
    for (name, nulls) in STAMP_COLUMNS
        .iter()
        .zip([facts.null_created_at, facts.null_updated_at])
    {
        let Some(c) = shape.column(name) else {
            continue;
        };
        if !time_column(b, shape, c, facts, "now()") {
            continue;
        }
        if nulls > 0 {
            b.sql(
                &format!("UPDATE gmail_token SET {name} = now() WHERE {name} IS NULL"),
                Touches::Updates(nulls),
            );
        }
        if c.default.is_none() || c.kind != Kind::Timestamptz {
            b.alter(
                format!("ALTER COLUMN {name} SET DEFAULT now()"),
                Touches::Schema,
            );
        }
        if !c.not_null {
            b.alter(format!("ALTER COLUMN {name} SET NOT NULL"), Touches::Schema);
        }
    }
}

/// The service writes NULL into its optional columns and never names the
/// columns it does not know: a NOT NULL there (without a default, for the
/// unknown ones) would fail its writes, so it is dropped. A key column
/// without a default cannot lose it: refused.
fn unknown_columns(b: &mut Builder, shape: &Shape) {
    let key: Vec<&str> = shape
        .primary_key()
        .map(|k| k.columns.iter().map(String::as_str).collect())
        .unwrap_or_default();
    for c in shape.columns.iter().filter(|c| c.not_null) {
        let ours = TEXT_COLUMNS.contains(&c.name.as_str())
            || TIME_COLUMNS.contains(&c.name.as_str())
            || c.name == "scopes";
        let fixed = ["user_id", "status"].contains(&c.name.as_str())
            || STAMP_COLUMNS.contains(&c.name.as_str());
        if fixed || (!ours && c.default.is_some()) {
            continue;
        }
        if key.contains(&c.name.as_str()) {
            b.refuse(
                &c.name,
                "is part of the primary key, NOT NULL and without a default: the service cannot fill it".into(),
                "give it a default, or make user_id the primary key",
            );
        } else {
            b.alter(
                format!("ALTER COLUMN {} DROP NOT NULL", ident(&c.name)),
                Touches::Schema,
            );
        }
    }
}

/// `3 values are (first: 'a', 'b', 'c')`.
fn offenders(o: &Offenders, one: &str, many: &str) -> String {
    let verb = if o.count == 1 { one } else { many };
    let shown = o.first.join(", ");
    if (o.first.len() as i64) < o.count {
        format!("{} {verb} (first {}: {shown})", o.count, o.first.len())
    } else {
        format!("{} {verb} ({shown})", o.count)
    }
}

/// `s` with its control characters escaped (`\n` as `\\n`): a value or a
/// name read from the table never starts a line of its own in a message,
/// the log or `--plan`.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A quoted identifier (for the names of columns the service does not know).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::legacy::shape::UniqueIndex;

    fn pk(name: &str, cols: &[&str], primary: bool) -> UniqueIndex {
        UniqueIndex {
            name: name.into(),
            primary,
            columns: cols.iter().map(|c| c.to_string()).collect(),
            partial: false,
        }
    }

    /// The table as the migrations create it.
    fn ours() -> Shape {
        let mut columns = vec![Column::new("user_id", "uuid", Kind::Uuid).not_null()];
        for n in TEXT_COLUMNS {
            columns.push(Column::new(n, "text", Kind::Text));
        }
        for n in TIME_COLUMNS {
            columns.push(Column::new(
                n,
                "timestamp with time zone",
                Kind::Timestamptz,
            ));
        }
        columns.push(Column::new("scopes", "jsonb", Kind::Jsonb));
        columns.push(
            Column::new("status", "text", Kind::Text)
                .not_null()
                .default("'active'::text"),
        );
        for n in STAMP_COLUMNS {
            columns.push(
                Column::new(n, "timestamp with time zone", Kind::Timestamptz)
                    .not_null()
                    .default("now()"),
            );
        }
        Shape {
            columns,
            unique: vec![pk("gmail_token_pkey", &["user_id"], true)],
            constraints: vec![],
            checks: vec![Check {
                name: STATUS_CHECK.into(),
                definition: STATUS_CHECK_DEFINITION.into(),
                columns: vec!["status".into()],
            }],
            rows: 3,
            dependents: vec![],
        }
    }

    fn with(mut shape: Shape, column: Column) -> Shape {
        match shape.columns.iter_mut().find(|c| c.name == column.name) {
            Some(c) => *c = column,
            None => shape.columns.push(column),
        }
        shape
    }

    fn without(mut shape: Shape, name: &str) -> Shape {
        shape.columns.retain(|c| c.name != name);
        shape
    }

    fn sqls(shape: &Shape, facts: &Facts) -> Vec<String> {
        plan(shape, facts)
            .expect("adoptable")
            .steps
            .into_iter()
            .map(|s| s.sql)
            .collect()
    }

    fn refusal(shape: &Shape, facts: &Facts) -> Refusal {
        plan(shape, facts).expect_err("refused")
    }

    #[test]
    fn the_services_own_shape_needs_nothing() {
        assert_eq!(plan(&ours(), &Facts::default()), Ok(Plan::default()));
    }

    #[test]
    fn a_text_user_id_becomes_uuid() {
        for (ty, typname) in [("character varying(36)", "varchar"), ("text", "text")] {
            let kind = Kind::from_type_name(typname);
            let shape = with(ours(), Column::new("user_id", ty, kind).not_null());
            let steps = plan(&shape, &Facts::default()).unwrap().steps;
            assert_eq!(
                steps,
                [Step {
                    sql: "ALTER TABLE gmail_token ALTER COLUMN user_id TYPE uuid USING btrim(user_id)::uuid".into(),
                    touches: Touches::Rewrites(3),
                }]
            );
        }
    }

    #[test]
    fn user_ids_that_are_not_uuids_null_or_duplicated_are_refused_with_the_rows() {
        let shape = with(ours(), Column::new("user_id", "text", Kind::Text));
        let facts = Facts {
            null_user_ids: 2,
            not_uuid: Offenders {
                count: 7,
                first: vec!["'u-1'".into(), "'u-2'".into()],
            },
            duplicates: Offenders {
                count: 1,
                first: vec!["0b7c…".into()],
            },
            ..Facts::default()
        };
        let r = refusal(&shape, &facts);
        assert_eq!(r.problems.len(), 3, "{r}");
        assert!(r.problems.iter().all(|p| p.column == "user_id"));
        let text = r.to_text();
        assert!(text.contains("2 row(s) have no user_id"), "{text}");
        assert!(
            text.contains("7 values are (first 2: 'u-1', 'u-2') not a UUID"),
            "{text}"
        );
        assert!(
            text.contains("1 user has (0b7c…) more than one row"),
            "{text}"
        );
    }

    #[test]
    fn a_surrogate_key_is_kept_and_user_id_made_unique_if_it_is_not() {
        let mut shape = with(
            ours(),
            Column::new("id", "integer", Kind::Other)
                .not_null()
                .default("nextval('gmail_token_id_seq'::regclass)"),
        );
        shape.unique = vec![
            pk("gmail_token_pkey", &["id"], true),
            pk("gmail_token_user_id_key", &["user_id"], false),
        ];
        assert_eq!(sqls(&shape, &Facts::default()), Vec::<String>::new());
        shape.unique.truncate(1);
        assert_eq!(
            sqls(&shape, &Facts::default()),
            ["ALTER TABLE gmail_token ADD CONSTRAINT gmail_token_user_id_key UNIQUE (user_id)"]
        );
        shape.unique.clear();
        assert_eq!(
            sqls(&shape, &Facts::default()),
            ["ALTER TABLE gmail_token ADD PRIMARY KEY (user_id)"]
        );
    }

    #[test]
    fn naive_timestamps_are_taken_as_utc_and_an_old_expiry_fills_expires_at() {
        let shape = with(
            with(
                without(ours(), "expires_at"),
                Column::new(
                    "token_expiry",
                    "timestamp without time zone",
                    Kind::Timestamp,
                )
                .not_null(),
            ),
            Column::new("created_at", "timestamp without time zone", Kind::Timestamp),
        );
        let facts = Facts {
            expiry_to_fill: 3,
            null_created_at: 1,
            ..Facts::default()
        };
        assert_eq!(
            sqls(&shape, &facts),
            [
                "ALTER TABLE gmail_token ADD COLUMN expires_at timestamptz",
                "UPDATE gmail_token SET expires_at = token_expiry AT TIME ZONE 'UTC' WHERE expires_at IS NULL AND token_expiry IS NOT NULL",
                "ALTER TABLE gmail_token ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'UTC'",
                "UPDATE gmail_token SET created_at = now() WHERE created_at IS NULL",
                "ALTER TABLE gmail_token ALTER COLUMN created_at SET DEFAULT now()",
                "ALTER TABLE gmail_token ALTER COLUMN created_at SET NOT NULL",
                "ALTER TABLE gmail_token ALTER COLUMN \"token_expiry\" DROP NOT NULL",
            ]
        );
        let filled = Facts::default();
        let expiry = with(
            ours(),
            Column::new("expiry", "timestamp with time zone", Kind::Timestamptz),
        );
        assert_eq!(
            sqls(&expiry, &filled),
            Vec::<String>::new(),
            "nothing left to fill"
        );
    }

    #[test]
    fn naive_timestamp_defaults_are_dropped_and_the_bookkeeping_ones_become_now() {
        let naive = |n: &str| {
            Column::new(n, "timestamp without time zone", Kind::Timestamp)
                .not_null()
                .default("timezone('utc'::text, now())")
        };
        let shape = with(with(ours(), naive("created_at")), naive("consented_at"));
        assert_eq!(
            sqls(&shape, &Facts::default()),
            [
                "ALTER TABLE gmail_token ALTER COLUMN consented_at DROP DEFAULT",
                "ALTER TABLE gmail_token ALTER COLUMN consented_at TYPE timestamptz USING consented_at AT TIME ZONE 'UTC'",
                "ALTER TABLE gmail_token ALTER COLUMN created_at DROP DEFAULT",
                "ALTER TABLE gmail_token ALTER COLUMN created_at TYPE timestamptz USING created_at AT TIME ZONE 'UTC'",
                "ALTER TABLE gmail_token ALTER COLUMN created_at SET DEFAULT now()",
                "ALTER TABLE gmail_token ALTER COLUMN \"consented_at\" DROP NOT NULL",
            ]
        );
    }

    #[test]
    fn scopes_become_a_jsonb_array_from_text_json_or_text_arrays() {
        let cases = [
            ("text", Kind::Text, "translate(scopes"),
            (
                "character varying(2048)",
                Kind::TextLike,
                "translate(scopes",
            ),
            (
                "text[]",
                Kind::TextArray,
                "to_jsonb(array_remove(scopes::text[], NULL))",
            ),
            ("json", Kind::Json, "scopes::jsonb"),
        ];
        for (ty, kind, using) in cases {
            let shape = with(ours(), Column::new("scopes", ty, kind).default("''"));
            let s = sqls(&shape, &Facts::default());
            assert_eq!(
                s[0],
                "ALTER TABLE gmail_token ALTER COLUMN scopes DROP DEFAULT"
            );
            assert!(
                s[1].contains("TYPE jsonb USING") && s[1].contains(using),
                "{s:?}"
            );
        }
    }

    #[test]
    fn columns_the_service_cannot_read_are_refused_all_at_once() {
        let shape = with(
            with(
                with(ours(), Column::new("scopes", "integer", Kind::Other)),
                Column::new("expires_at", "date", Kind::Other),
            ),
            Column::new("status", "boolean", Kind::Other),
        );
        let r = refusal(&shape, &Facts::default());
        let cols: Vec<&str> = r.problems.iter().map(|p| p.column.as_str()).collect();
        assert_eq!(cols, ["expires_at", "scopes", "status"]);
        assert!(r.problems[1].what.contains("is integer"), "{r}");
    }

    #[test]
    fn text_timestamps_are_converted_when_every_value_is_one() {
        let shape = with(
            with(ours(), Column::new("expires_at", "text", Kind::Text)),
            Column::new("token_expiry", "character varying(40)", Kind::TextLike),
        );
        let facts = Facts {
            expiry_to_fill: 2,
            ..Facts::default()
        };
        let s = sqls(&shape, &facts);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(
            s[0].starts_with("ALTER TABLE gmail_token ALTER COLUMN expires_at TYPE timestamptz USING CASE WHEN btrim(expires_at) = '' THEN NULL WHEN expires_at ~* '")
                && s[0].ends_with("THEN expires_at::timestamptz ELSE expires_at::timestamp AT TIME ZONE 'UTC' END"),
            "{s:?}"
        );
        assert!(
            s[1].starts_with(
                "UPDATE gmail_token SET expires_at = CASE WHEN btrim(token_expiry) = ''"
            ),
            "{s:?}"
        );
        let mut bad = Facts::default();
        bad.bad_times.insert(
            "token_expiry".into(),
            Offenders {
                count: 1,
                first: vec!["0b7c… ('soon')".into()],
            },
        );
        let r = refusal(&shape, &bad);
        assert_eq!(r.problems.len(), 1, "{r}");
        assert_eq!(r.problems[0].column, "token_expiry");
        assert!(
            r.problems[0]
                .what
                .contains("1 value is (0b7c… ('soon')) not an ISO 8601 timestamp"),
            "{r}"
        );
    }

    #[test]
    fn unknown_statuses_are_refused_and_missing_ones_become_active() {
        let shape = with(
            ours(),
            Column::new("status", "character varying(20)", Kind::TextLike),
        );
        let facts = Facts {
            null_status: 2,
            ..Facts::default()
        };
        assert_eq!(
            sqls(&shape, &facts),
            [
                "ALTER TABLE gmail_token ALTER COLUMN status TYPE text",
                "UPDATE gmail_token SET status = 'active' WHERE status IS NULL",
                "ALTER TABLE gmail_token ALTER COLUMN status SET DEFAULT 'active'",
                "ALTER TABLE gmail_token ALTER COLUMN status SET NOT NULL",
            ]
        );
        let bad = Facts {
            bad_status: Offenders {
                count: 1,
                first: vec!["0b7c… ('expired')".into()],
            },
            ..Facts::default()
        };
        assert_eq!(refusal(&shape, &bad).problems[0].column, "status");
    }

    #[test]
    fn not_null_columns_the_service_does_not_fill_lose_it_unless_they_are_the_key() {
        let shape = with(
            with(
                ours(),
                Column::new("Provider", "text", Kind::Text).not_null(),
            ),
            Column::new("kept", "text", Kind::Text)
                .not_null()
                .default("'x'"),
        );
        let shape = with(
            shape,
            Column::new("refresh_token", "text", Kind::Text).not_null(),
        );
        assert_eq!(
            sqls(&shape, &Facts::default()),
            [
                "ALTER TABLE gmail_token ALTER COLUMN \"refresh_token\" DROP NOT NULL",
                "ALTER TABLE gmail_token ALTER COLUMN \"Provider\" DROP NOT NULL",
            ]
        );
        let mut keyed = shape;
        keyed.unique = vec![pk("gmail_token_pkey", &["user_id", "Provider"], true)];
        let r = refusal(&keyed, &Facts::default());
        assert_eq!(r.problems[0].column, "Provider");
    }

    #[test]
    fn a_view_or_foreign_key_on_a_column_whose_type_changes_is_refused_by_name() {
        use crate::store::legacy::shape::Dependent;
        let mut shape = with(
            ours(),
            Column::new("user_id", "text", Kind::Text).not_null(),
        );
        shape.dependents = vec![
            Dependent {
                column: "email".into(),
                what: "view public.emails".into(),
            },
            Dependent {
                column: "user_id".into(),
                what: "view public.old_tokens".into(),
            },
        ];
        let r = refusal(&shape, &Facts::default());
        assert_eq!(r.problems.len(), 1, "{r}");
        assert_eq!(r.problems[0].column, "user_id");
        assert!(
            r.problems[0]
                .what
                .contains("view public.old_tokens uses it"),
            "{r}"
        );
        shape.dependents.remove(1);
        assert_eq!(
            sqls(&shape, &Facts::default()).len(),
            1,
            "email keeps its type"
        );
    }

    #[test]
    fn an_old_check_taking_the_services_name_or_on_its_columns_is_dropped_and_the_services_added() {
        let check = |name: &str, definition: &str, columns: &[&str]| Check {
            name: name.into(),
            definition: definition.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        };
        let mut shape = ours();
        shape.checks = vec![
            // What `status text CHECK (status IN ('active', 'expired'))` becomes.
            check(
                STATUS_CHECK,
                "CHECK ((status = ANY (ARRAY['active'::text, 'expired'::text])))",
                &["status"],
            ),
            check(
                "has_refresh",
                "CHECK ((refresh_token IS NOT NULL))",
                &["refresh_token"],
            ),
            check(
                "provider_known",
                "CHECK ((provider = 'google'::text))",
                &["provider"],
            ),
        ];
        let facts = Facts::default();
        assert_eq!(
            plan(&shape, &facts).unwrap().steps,
            [
                Step {
                    sql: "ALTER TABLE gmail_token DROP CONSTRAINT \"gmail_token_status_check\"".into(),
                    touches: Touches::Schema,
                },
                Step {
                    sql: "ALTER TABLE gmail_token DROP CONSTRAINT \"has_refresh\"".into(),
                    touches: Touches::Schema,
                },
                Step {
                    sql: "ALTER TABLE gmail_token ADD CONSTRAINT gmail_token_status_check CHECK (status IN ('active', 'reauth_required', 'revoked'))".into(),
                    touches: Touches::Checks(3),
                },
            ],
            "a check on a column the service never writes stays"
        );
    }

    #[test]
    fn blank_emails_and_google_account_ids_become_null() {
        let mut facts = Facts::default();
        facts.blank.insert("email".into(), 2);
        facts.blank.insert("google_sub".into(), 0);
        assert_eq!(
            plan(&ours(), &facts).unwrap().steps,
            [Step {
                sql: "UPDATE gmail_token SET email = NULL WHERE email ~ '^\\s*$'".into(),
                touches: Touches::Updates(2),
            }]
        );
    }

    #[test]
    fn a_char_status_is_rewritten_and_a_varchar_one_is_not() {
        for (ty, touches) in [
            ("character(20)", Touches::Rewrites(3)),
            ("character varying(20)", Touches::Schema),
        ] {
            let shape = with(
                ours(),
                Column::new("status", ty, Kind::TextLike)
                    .not_null()
                    .default("'active'::bpchar"),
            );
            let steps = plan(&shape, &Facts::default()).unwrap().steps;
            assert_eq!(
                steps,
                [Step {
                    sql: "ALTER TABLE gmail_token ALTER COLUMN status TYPE text".into(),
                    touches,
                }],
                "{ty}"
            );
        }
    }

    #[test]
    fn values_and_names_from_the_table_cannot_forge_lines() {
        let forged = "x\n  - user_id: forged";
        let mut shape = with(ours(), Column::new(forged, "text", Kind::Text).not_null());
        shape.unique = vec![pk("gmail_token_pkey", &["user_id", forged], true)];
        let facts = Facts {
            bad_status: Offenders {
                count: 1,
                first: vec![format!("0b7c… ('{forged}')")],
            },
            ..Facts::default()
        };
        let text = refusal(&shape, &facts).to_text();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("x\\n  - user_id: forged"), "{text}");
        let shown = shape.to_text();
        assert_eq!(shown.lines().count(), shape.columns.len() + 3, "{shown}");
        let plan = Plan {
            steps: vec![Step {
                sql: format!(
                    "ALTER TABLE gmail_token ALTER COLUMN {} DROP NOT NULL",
                    ident(forged)
                ),
                touches: Touches::Schema,
            }],
        };
        assert_eq!(plan.to_text().lines().count(), 2, "{}", plan.to_text());
    }

    #[test]
    fn migrations_split_into_one_line_statements_keeping_function_bodies() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE t (\n  a int\n);\nCREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NULL;\nEND\n$$ LANGUAGE plpgsql;\n";
        assert_eq!(
            crate::store::legacy::preview::statements(sql),
            [
                "CREATE TABLE t ( a int )",
                "CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN NULL; END $$ LANGUAGE plpgsql",
            ]
        );
    }
}
