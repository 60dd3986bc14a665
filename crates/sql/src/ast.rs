//! The typed AST of ksqlDB's SQL dialect.
//!
//! Identifiers are stored already normalised: unquoted names are upper-cased, quoted (back-tick or
//! double-quote) names keep their case. Every statement keeps its own source text, because ksqlDB
//! echoes it back (`statementText`, `queryString`) and errors point into it.

use crate::types::SqlType;
use std::fmt;

/// A parsed statement with the exact text it was parsed from (including the trailing `;`) and its
/// position in the script (1-based line and column of its first token).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    pub statement: Statement,
    pub text: String,
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Stream,
    Table,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name [(cols)] [WITH (...)]`
    CreateSource(CreateSource),
    /// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (...)] AS SELECT ...`
    CreateAsSelect(CreateAsSelect),
    /// `INSERT INTO target [WITH (...)] SELECT ...`
    InsertInto {
        target: String,
        properties: Properties,
        query: Box<Query>,
    },
    /// `INSERT INTO target [(c1, ...)] VALUES (v1, ...)`
    InsertValues {
        target: String,
        columns: Option<Vec<String>>,
        values: Vec<Expr>,
    },
    /// `ALTER STREAM|TABLE name ADD [COLUMN] c type [, ADD [COLUMN] ...]`
    AlterSource {
        kind: SourceKind,
        name: String,
        add_columns: Vec<ColumnDef>,
    },
    /// `DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]`
    DropSource {
        kind: SourceKind,
        name: String,
        if_exists: bool,
        delete_topic: bool,
    },
    /// `CREATE TYPE [IF NOT EXISTS] name AS type`
    CreateType {
        name: String,
        ty: SqlType,
        if_not_exists: bool,
    },
    /// `DROP TYPE [IF EXISTS] name`
    DropType { name: String, if_exists: bool },
    /// `CREATE SOURCE|SINK CONNECTOR [IF NOT EXISTS] name WITH ('k'='v', ...)`
    CreateConnector {
        name: String,
        source: bool,
        if_not_exists: bool,
        properties: Properties,
    },
    /// `DROP CONNECTOR [IF EXISTS] name`
    DropConnector { name: String, if_exists: bool },
    /// A SELECT: a push query when `emit` is set, a pull query otherwise.
    Query(Box<Query>),
    /// `SHOW|LIST ...`
    Show(Show),
    /// `DESCRIBE name [EXTENDED]`, `DESCRIBE STREAMS|TABLES [EXTENDED]`
    Describe {
        target: DescribeTarget,
        extended: bool,
    },
    /// `DESCRIBE FUNCTION name`
    DescribeFunction { name: String },
    /// `DESCRIBE CONNECTOR name`
    DescribeConnector { name: String },
    /// `EXPLAIN query_id` or `EXPLAIN <statement>`
    Explain(ExplainTarget),
    /// `TERMINATE query_id | ALL`; `None` means ALL.
    Terminate { query_id: Option<String> },
    /// `PAUSE query_id | ALL`
    Pause { query_id: Option<String> },
    /// `RESUME query_id | ALL`
    Resume { query_id: Option<String> },
    /// `SET 'name' = 'value'`
    Set { name: String, value: String },
    /// `UNSET 'name'`
    Unset { name: String },
    /// `ALTER SYSTEM 'name' = 'value'`
    AlterSystem { name: String, value: String },
    /// `DEFINE name = 'value'`
    Define { name: String, value: String },
    /// `UNDEFINE name`
    Undefine { name: String },
    /// `PRINT topic [FROM BEGINNING] [INTERVAL|SAMPLE n] [LIMIT n]`
    Print {
        topic: String,
        from_beginning: bool,
        interval: Option<u64>,
        limit: Option<u64>,
    },
    /// `RUN SCRIPT 'path'`
    RunScript { path: String },
    /// `ASSERT [NOT EXISTS] TOPIC name [WITH (...)] [TIMEOUT n unit]`
    AssertTopic {
        topic: String,
        exists: bool,
        properties: Properties,
        timeout: Option<Duration>,
    },
    /// `ASSERT [NOT EXISTS] SCHEMA [SUBJECT name] [ID n] [TIMEOUT n unit]`
    AssertSchema {
        subject: Option<String>,
        id: Option<i64>,
        exists: bool,
        timeout: Option<Duration>,
    },
    /// Test-only `ASSERT VALUES src [(cols)] VALUES (...)`
    AssertValues {
        source: String,
        columns: Option<Vec<String>>,
        values: Vec<Expr>,
    },
    /// Test-only `ASSERT NULL VALUES src [(cols)] KEY (...)`
    AssertNullValues {
        source: String,
        columns: Option<Vec<String>>,
        keys: Vec<Expr>,
    },
    /// Test-only `ASSERT STREAM|TABLE src (cols) WITH (...)`
    AssertSource {
        kind: SourceKind,
        name: String,
        elements: Vec<ColumnDef>,
        properties: Properties,
    },
}

/// `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name [(cols)] [WITH (...)]`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    /// `CREATE SOURCE STREAM/TABLE`: read-only.
    pub is_source: bool,
    pub columns: Vec<ColumnDef>,
    pub properties: Properties,
}

/// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (...)] AS SELECT ...`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateAsSelect {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub properties: Properties,
    pub query: Box<Query>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub constraint: ColumnConstraint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnConstraint {
    None,
    /// `KEY` (streams)
    Key,
    /// `PRIMARY KEY` (tables)
    PrimaryKey,
    /// `HEADERS`: all headers as `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`
    Headers,
    /// `HEADER('k')`: the last header with key `k`, as BYTES
    Header(String),
}

/// WITH (...) properties in source order. Names are upper-cased (they are case-insensitive).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties(pub Vec<(String, Literal)>);

impl Properties {
    /// The value of a property, looked up without regard to case.
    pub fn get(&self, name: &str) -> Option<&Literal> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `SELECT ... FROM ... [WINDOW ...] [WHERE ...] [GROUP BY ...] [PARTITION BY ...] [HAVING ...]
/// [EMIT CHANGES|FINAL] [LIMIT n]`
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: From,
    pub window: Option<WindowSpec>,
    pub where_clause: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Changes,
    Final,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`
    Wildcard,
    /// `alias.*`
    QualifiedWildcard(String),
    /// `expr [AS alias]`
    Expr { expr: Expr, alias: Option<String> },
    /// `expr->*`: all fields of a struct-typed expression, each as its own column.
    StructWildcard(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct From {
    pub source: AliasedSource,
    pub joins: Vec<Join>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasedSource {
    pub name: String,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub source: AliasedSource,
    pub within: Option<Within>,
    pub grace: Option<Duration>,
    pub on: Expr,
}

/// `WITHIN n unit` (before == after) or `WITHIN (before, after)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    pub before: Duration,
    pub after: Duration,
}

/// A duration written as `n UNIT` (`10 SECONDS`). `millis` is the value in milliseconds; `text` keeps
/// how it was written, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    pub value: u64,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl Duration {
    pub fn millis(&self) -> i64 {
        let factor: i64 = match self.unit {
            TimeUnit::Milliseconds => 1,
            TimeUnit::Seconds => 1_000,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        };
        (self.value as i64).saturating_mul(factor)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            TimeUnit::Milliseconds => "MILLISECONDS",
            TimeUnit::Seconds => "SECONDS",
            TimeUnit::Minutes => "MINUTES",
            TimeUnit::Hours => "HOURS",
            TimeUnit::Days => "DAYS",
        };
        write!(f, "{} {}", self.value, unit)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub retention: Option<Duration>,
    pub grace: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowKind {
    Tumbling { size: Duration },
    Hopping { size: Duration, advance: Duration },
    Session { gap: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Show {
    Streams { extended: bool },
    Tables { extended: bool },
    Topics { all: bool, extended: bool },
    Queries { extended: bool },
    Properties,
    Functions,
    Types,
    Variables,
    Connectors { kind: Option<ConnectorKind> },
    ConnectorPlugins,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Source,
    Sink,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DescribeTarget {
    Source(String),
    Streams,
    Tables,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    QueryId(String),
    Statement(Box<ParsedStatement>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    /// An integer literal; typed INT when it fits in 32 bits, else BIGINT.
    Integer(i64),
    /// A literal with a decimal point and no exponent (`1.50`): typed DECIMAL, text kept exactly.
    Decimal(String),
    /// A literal with an exponent (`1.5E3`): typed DOUBLE.
    Double(f64),
    String(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Boolean(b) => f.write_str(if *b { "true" } else { "false" }),
            Literal::Integer(i) => write!(f, "{i}"),
            Literal::Decimal(s) => f.write_str(s),
            Literal::Double(d) => write!(f, "{d:E}"),
            Literal::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    /// `||`
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(&self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }

    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }

    pub fn is_arithmetic(&self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Subtract
                | BinaryOp::Multiply
                | BinaryOp::Divide
                | BinaryOp::Modulo
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Minus,
    Plus,
    Not,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column, optionally qualified by a source name or alias (`t.col`).
    Column {
        qualifier: Option<String>,
        name: String,
    },
    Literal(Literal),
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    IsDistinctFrom {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
    },
    /// Searched (`operand == None`) or simple `CASE`.
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_result: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        ty: SqlType,
    },
    /// A function call. Names are upper-cased. `COUNT(*)` has `star == true` and no args.
    Function {
        name: String,
        args: Vec<Expr>,
        star: bool,
    },
    /// `base[index]`: 1-based for arrays (negative counts from the end), key lookup for maps.
    Subscript {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    /// `base->field`
    Dereference {
        base: Box<Expr>,
        field: String,
    },
    /// `ARRAY[e1, e2, ...]`
    Array(Vec<Expr>),
    /// `MAP(k1 := v1, ...)`
    Map(Vec<(Expr, Expr)>),
    /// `STRUCT(name := v, ...)`
    Struct(Vec<(String, Expr)>),
    /// `x => body` or `(x, y) => body`
    Lambda {
        params: Vec<String>,
        body: Box<Expr>,
    },
    /// A lambda parameter reference inside a lambda body.
    LambdaVariable(String),
    /// `expr AT TIME ZONE 'zone'`
    AtTimeZone {
        expr: Box<Expr>,
        zone: String,
    },
}

impl Expr {
    pub fn column(name: impl Into<String>) -> Expr {
        Expr::Column {
            qualifier: None,
            name: name.into(),
        }
    }
}

/// Writes an identifier as ksqlDB's formatter does: bare when it reads back the same unquoted,
/// back-ticked otherwise.
fn write_ident(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '@');
    if plain {
        f.write_str(name)
    } else {
        write!(f, "`{}`", name.replace('`', "``"))
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    /// Formats the expression the way ksqlDB's formatter does (identifiers back-ticked, operators
    /// parenthesised), which is also how generated column names are derived from it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column { qualifier, name } => {
                if let Some(q) = qualifier {
                    write_ident(f, q)?;
                    f.write_str(".")?;
                }
                write_ident(f, name)
            }
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Unary { op, expr } => match op {
                UnaryOp::Minus => write!(f, "-{expr}"),
                UnaryOp::Plus => write!(f, "+{expr}"),
                UnaryOp::Not => write!(f, "(NOT {expr})"),
            },
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => {
                write!(
                    f,
                    "({left} IS {}DISTINCT FROM {right})",
                    if *negated { "NOT " } else { "" }
                )
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "({expr} {}BETWEEN {low} AND {high})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                write_list(f, list)?;
                f.write_str("))")
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                write!(
                    f,
                    "({expr} {}LIKE {pattern}",
                    if *negated { "NOT " } else { "" }
                )?;
                if let Some(c) = escape {
                    write!(f, " ESCAPE '{c}'")?;
                }
                f.write_str(")")
            }
            Expr::Case {
                operand,
                whens,
                else_result,
            } => {
                f.write_str("(CASE")?;
                if let Some(op) = operand {
                    write!(f, " {op}")?;
                }
                for (w, t) in whens {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(e) = else_result {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END)")
            }
            Expr::Cast { expr, ty } => write!(f, "CAST({expr} AS {ty})"),
            Expr::Function { name, args, star } => {
                write!(f, "{name}(")?;
                if *star {
                    f.write_str("*")?;
                }
                write_list(f, args)?;
                f.write_str(")")
            }
            Expr::Subscript { base, index } => write!(f, "{base}[{index}]"),
            Expr::Dereference { base, field } => write!(f, "{base}->{field}"),
            Expr::Array(items) => {
                f.write_str("ARRAY[")?;
                write_list(f, items)?;
                f.write_str("]")
            }
            Expr::Map(entries) => {
                f.write_str("MAP(")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}:={v}")?;
                }
                f.write_str(")")
            }
            Expr::Struct(fields) => {
                f.write_str("STRUCT(")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}:={v}")?;
                }
                f.write_str(")")
            }
            Expr::Lambda { params, body } => {
                if params.len() == 1 {
                    write!(f, "{} => {body}", params[0])
                } else {
                    write!(f, "({}) => {body}", params.join(", "))
                }
            }
            Expr::LambdaVariable(name) => f.write_str(name),
            Expr::AtTimeZone { expr, zone } => write!(f, "{expr} AT TIME ZONE '{zone}'"),
        }
    }
}

impl Expr {
    /// Rebuilds this expression with each direct child replaced by `f(child)`.
    pub fn try_map_children<E>(
        &self,
        f: &mut impl FnMut(&Expr) -> Result<Expr, E>,
    ) -> Result<Expr, E> {
        fn bx<E>(f: &mut impl FnMut(&Expr) -> Result<Expr, E>, e: &Expr) -> Result<Box<Expr>, E> {
            Ok(Box::new(f(e)?))
        }
        Ok(match self {
            Expr::Column { .. } | Expr::Literal(_) | Expr::LambdaVariable(_) => self.clone(),
            Expr::Unary { op, expr } => Expr::Unary {
                op: *op,
                expr: bx(f, expr)?,
            },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: bx(f, left)?,
                right: bx(f, right)?,
            },
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: bx(f, expr)?,
                negated: *negated,
            },
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => Expr::IsDistinctFrom {
                left: bx(f, left)?,
                right: bx(f, right)?,
                negated: *negated,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: bx(f, expr)?,
                low: bx(f, low)?,
                high: bx(f, high)?,
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: bx(f, expr)?,
                list: list.iter().map(&mut *f).collect::<Result<_, E>>()?,
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => Expr::Like {
                expr: bx(f, expr)?,
                pattern: bx(f, pattern)?,
                escape: *escape,
                negated: *negated,
            },
            Expr::Case {
                operand,
                whens,
                else_result,
            } => Expr::Case {
                operand: operand.as_deref().map(|e| bx(f, e)).transpose()?,
                whens: whens
                    .iter()
                    .map(|(w, t)| Ok((f(w)?, f(t)?)))
                    .collect::<Result<_, E>>()?,
                else_result: else_result.as_deref().map(|e| bx(f, e)).transpose()?,
            },
            Expr::Cast { expr, ty } => Expr::Cast {
                expr: bx(f, expr)?,
                ty: ty.clone(),
            },
            Expr::Function { name, args, star } => Expr::Function {
                name: name.clone(),
                args: args.iter().map(&mut *f).collect::<Result<_, E>>()?,
                star: *star,
            },
            Expr::Subscript { base, index } => Expr::Subscript {
                base: bx(f, base)?,
                index: bx(f, index)?,
            },
            Expr::Dereference { base, field } => Expr::Dereference {
                base: bx(f, base)?,
                field: field.clone(),
            },
            Expr::Array(items) => Expr::Array(items.iter().map(&mut *f).collect::<Result<_, E>>()?),
            Expr::Map(entries) => Expr::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((f(k)?, f(v)?)))
                    .collect::<Result<_, E>>()?,
            ),
            Expr::Struct(fields) => Expr::Struct(
                fields
                    .iter()
                    .map(|(n, v)| Ok((n.clone(), f(v)?)))
                    .collect::<Result<_, E>>()?,
            ),
            Expr::Lambda { params, body } => Expr::Lambda {
                params: params.clone(),
                body: bx(f, body)?,
            },
            Expr::AtTimeZone { expr, zone } => Expr::AtTimeZone {
                expr: bx(f, expr)?,
                zone: zone.clone(),
            },
        })
    }
}
