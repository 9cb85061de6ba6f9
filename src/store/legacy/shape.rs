//! What the live `gmail_token` table looks like, and what its rows hold, as
//! far as adopting it is concerned: plain data, read from the catalog and the
//! rows by [`super::inspect`] and [`super::facts`].

/// A column's type, as adoption sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Uuid,
    /// `text`.
    Text,
    /// `varchar(n)`, `char(n)`, `citext`, `name`: text, once it is `text`.
    TextLike,
    Timestamptz,
    /// `timestamp without time zone`: its values are taken as UTC.
    Timestamp,
    Jsonb,
    Json,
    /// `text[]` or `varchar[]`.
    TextArray,
    /// Anything else (`integer`, `bytea`, `date`, an enum, …).
    Other,
}

impl Kind {
    /// From `pg_type.typname`.
    pub fn from_type_name(typname: &str) -> Self {
        match typname {
            "uuid" => Self::Uuid,
            "text" => Self::Text,
            "varchar" | "bpchar" | "citext" | "name" => Self::TextLike,
            "timestamptz" => Self::Timestamptz,
            "timestamp" => Self::Timestamp,
            "jsonb" => Self::Jsonb,
            "json" => Self::Json,
            "_text" | "_varchar" => Self::TextArray,
            _ => Self::Other,
        }
    }

    pub(crate) fn is_text(self) -> bool {
        matches!(self, Self::Text | Self::TextLike)
    }

    pub(crate) fn is_time(self) -> bool {
        matches!(self, Self::Timestamptz | Self::Timestamp)
    }
}

/// One column of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// As PostgreSQL prints it (`character varying(36)`).
    pub type_name: String,
    pub kind: Kind,
    pub not_null: bool,
    /// The default expression; identity and generated columns count as
    /// having one.
    pub default: Option<String>,
}

impl Column {
    /// A column for tests and fixtures: nullable, no default.
    pub fn new(name: &str, type_name: &str, kind: Kind) -> Self {
        Self {
            name: name.into(),
            type_name: type_name.into(),
            kind,
            not_null: false,
            default: None,
        }
    }

    pub fn not_null(mut self) -> Self {
        self.not_null = true;
        self
    }

    pub fn default(mut self, expr: &str) -> Self {
        self.default = Some(expr.into());
        self
    }
}

/// A unique index (or primary key) of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueIndex {
    pub name: String,
    pub primary: bool,
    /// Its columns; empty when it indexes an expression.
    pub columns: Vec<String>,
    /// Has a `WHERE` (it cannot serve `ON CONFLICT (user_id)`).
    pub partial: bool,
}

/// The live `gmail_token` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shape {
    pub columns: Vec<Column>,
    pub unique: Vec<UniqueIndex>,
    /// Other constraints (CHECK, FOREIGN KEY, …), as `name: definition`.
    pub constraints: Vec<String>,
    /// The CHECK constraints, with the columns they use.
    pub checks: Vec<Check>,
    pub rows: i64,
    /// Views and foreign keys that use a column: they stop a type change.
    pub dependents: Vec<Dependent>,
}

/// A CHECK constraint of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// As `pg_get_constraintdef` prints it.
    pub definition: String,
    /// The columns it uses.
    pub columns: Vec<String>,
}

/// A view or a foreign key using a column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    pub column: String,
    /// `view public.old_tokens`, `foreign key users_token_fk on users`.
    pub what: String,
}

impl Shape {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub(crate) fn primary_key(&self) -> Option<&UniqueIndex> {
        self.unique.iter().find(|i| i.primary)
    }

    /// Is there a unique index `ON CONFLICT (user_id)` can use?
    pub(crate) fn user_id_is_unique(&self) -> bool {
        self.unique
            .iter()
            .any(|i| !i.partial && i.columns == ["user_id"])
    }
}

/// Rows that stop the adoption: how many, and the first few (user ids).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offenders {
    pub count: i64,
    pub first: Vec<String>,
}

impl Offenders {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What the rows hold: what the shape alone cannot say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// Rows whose `user_id` is NULL.
    pub null_user_ids: i64,
    /// `user_id` values that are not UUIDs (a text column).
    pub not_uuid: Offenders,
    /// Users with more than one row (by UUID, so `ABC…` and `abc…` are one).
    pub duplicates: Offenders,
    /// `status` values the service does not know (`user_id (value)`).
    pub bad_status: Offenders,
    /// Blank (empty or whitespace) `email` / `google_sub`, by column.
    pub blank: std::collections::BTreeMap<String, i64>,
    pub null_status: i64,
    pub null_created_at: i64,
    pub null_updated_at: i64,
    /// Rows whose `expires_at` is NULL and whose old expiry column is not.
    pub expiry_to_fill: i64,
    /// Text timestamp columns: values that are not timestamps, by column.
    pub bad_times: std::collections::BTreeMap<String, Offenders>,
}
