//! The metastore: streams, tables and custom types known to an engine.
//!
//! A source's schema is a list of columns, each a key, value or header column, in declaration
//! order. Pseudo-columns (`ROWTIME`, `ROWPARTITION`, `ROWOFFSET`, `WINDOWSTART`, `WINDOWEND`) are not
//! stored: the planner adds them when it builds a query's input row.

use runnel_sql::{SourceKind, SqlType};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    Key,
    Value,
    /// `HEADERS`: every header as `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`.
    Headers,
    /// `HEADER('k')`: the last header with this key.
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    pub kind: ColumnKind,
}

impl Column {
    pub fn new(name: impl Into<String>, ty: SqlType, kind: ColumnKind) -> Self {
        Column {
            name: name.into(),
            ty,
            kind,
        }
    }

    pub fn is_key(&self) -> bool {
        self.kind == ColumnKind::Key
    }

    pub fn is_header(&self) -> bool {
        matches!(self.kind, ColumnKind::Headers | ColumnKind::Header(_))
    }
}

/// A source's logical schema.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub columns: Vec<Column>,
}

impl Schema {
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.is_key())
    }

    /// Columns stored in the record value (not key, not headers).
    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Value)
    }

    pub fn header_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.is_header())
    }

    pub fn find(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Schema {
    /// The schema as ksqlDB prints it: ``  `K` STRING KEY, `V` INTEGER  ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ksqlDB lists key columns first.
        let ordered = self
            .key_columns()
            .chain(self.columns.iter().filter(|c| !c.is_key()));
        for (i, c) in ordered.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{}` {}", c.name, c.ty)?;
            match &c.kind {
                ColumnKind::Key => f.write_str(" KEY")?,
                ColumnKind::Value => {}
                ColumnKind::Headers => f.write_str(" HEADERS")?,
                ColumnKind::Header(k) => write!(f, " HEADER('{k}')")?,
            }
        }
        Ok(())
    }
}

/// A serialization format with its options, as declared (`VALUE_FORMAT='JSON'`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatInfo {
    /// Upper-case format name: `JSON`, `DELIMITED`, `KAFKA`, `NONE`, ...
    pub format: String,
    /// `WRAP_SINGLE_VALUE` (values only); `None` = the format's default.
    pub wrap_single_value: Option<bool>,
    /// `KEY_DELIMITER` / `VALUE_DELIMITER` for DELIMITED.
    pub delimiter: Option<char>,
}

impl FormatInfo {
    pub fn new(format: impl Into<String>) -> Self {
        FormatInfo {
            format: format.into().to_ascii_uppercase(),
            wrap_single_value: None,
            delimiter: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    Tumbling,
    Hopping,
    Session,
}

impl WindowType {
    pub fn name(&self) -> &'static str {
        match self {
            WindowType::Tumbling => "TUMBLING",
            WindowType::Hopping => "HOPPING",
            WindowType::Session => "SESSION",
        }
    }
}

/// The window of a windowed source's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    pub window_type: WindowType,
    /// Size in ms for time windows; `None` for sessions.
    pub size_ms: Option<i64>,
}

/// Where record timestamps come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampColumn {
    pub column: String,
    /// `TIMESTAMP_FORMAT` for STRING columns (Java DateTimeFormatter pattern).
    pub format: Option<String>,
}

/// A stream or table in the metastore.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub schema: Schema,
    pub key_format: FormatInfo,
    pub value_format: FormatInfo,
    pub timestamp: Option<TimestampColumn>,
    pub window: Option<WindowInfo>,
    /// `CREATE SOURCE ...`: read-only.
    pub is_source: bool,
    /// The statement that created it.
    pub statement: String,
    /// The persistent query that writes it (CSAS/CTAS), if any.
    pub created_by: Option<String>,
    /// Partitions of the topic when known.
    pub partitions: Option<i32>,
    pub replicas: Option<i16>,
}

/// Streams, tables and types, by upper-case or quoted name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    sources: BTreeMap<String, Arc<Source>>,
    types: BTreeMap<String, SqlType>,
}

impl Catalog {
    pub fn source(&self, name: &str) -> Option<&Arc<Source>> {
        self.sources.get(name)
    }

    pub fn sources(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.sources.values()
    }

    pub fn put_source(&mut self, source: Source) -> Arc<Source> {
        let source = Arc::new(source);
        self.sources.insert(source.name.clone(), source.clone());
        source
    }

    pub fn remove_source(&mut self, name: &str) -> Option<Arc<Source>> {
        self.sources.remove(name)
    }

    pub fn custom_type(&self, name: &str) -> Option<&SqlType> {
        self.types.get(name)
    }

    pub fn types(&self) -> impl Iterator<Item = (&String, &SqlType)> {
        self.types.iter()
    }

    pub fn put_type(&mut self, name: String, ty: SqlType) {
        self.types.insert(name, ty);
    }

    pub fn remove_type(&mut self, name: &str) -> Option<SqlType> {
        self.types.remove(name)
    }

    /// Replaces `SqlType::Custom` aliases by their definitions, recursively.
    pub fn resolve_type(&self, ty: &SqlType) -> Result<SqlType, String> {
        Ok(match ty {
            SqlType::Custom(name) => match self.types.get(name) {
                Some(t) => self.resolve_type(t)?,
                None => return Err(format!("Unknown type: {name}")),
            },
            SqlType::Array(inner) => SqlType::Array(Box::new(self.resolve_type(inner)?)),
            SqlType::Map(k, v) => SqlType::Map(
                Box::new(self.resolve_type(k)?),
                Box::new(self.resolve_type(v)?),
            ),
            SqlType::Struct(fields) => SqlType::Struct(
                fields
                    .iter()
                    .map(|f| {
                        Ok(runnel_sql::StructField::new(
                            f.name.clone(),
                            self.resolve_type(&f.ty)?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}
