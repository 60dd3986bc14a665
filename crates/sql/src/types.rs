//! ksqlDB's SQL types.
//!
//! These are the 13 base types of ksqlDB (`SqlBaseType`) plus the containers. The same enum is used by
//! the parser (column definitions, CAST targets) and by the planner. `Custom` is an unresolved
//! `CREATE TYPE` alias: it only appears in freshly parsed ASTs and the analyzer replaces it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    Boolean,
    /// 32-bit signed integer (`INT` / `INTEGER`).
    Int,
    /// 64-bit signed integer.
    Bigint,
    /// IEEE-754 double.
    Double,
    /// Fixed precision decimal, `1 <= precision`, `0 <= scale <= precision`.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// `STRING` / `VARCHAR`.
    String,
    Bytes,
    /// Days since the epoch.
    Date,
    /// Milliseconds of the day.
    Time,
    /// Milliseconds since the epoch, no zone.
    Timestamp,
    Array(Box<SqlType>),
    Map(Box<SqlType>, Box<SqlType>),
    Struct(Vec<StructField>),
    /// A `CREATE TYPE` alias not yet resolved (parser output only).
    Custom(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructField {
    pub name: String,
    pub ty: SqlType,
}

impl StructField {
    pub fn new(name: impl Into<String>, ty: SqlType) -> Self {
        StructField {
            name: name.into(),
            ty,
        }
    }
}

impl SqlType {
    pub fn decimal(precision: u8, scale: u8) -> Self {
        SqlType::Decimal { precision, scale }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Int | SqlType::Bigint | SqlType::Double | SqlType::Decimal { .. }
        )
    }

    pub fn is_integral(&self) -> bool {
        matches!(self, SqlType::Int | SqlType::Bigint)
    }

    /// True for the types that have no inner types.
    pub fn is_primitive(&self) -> bool {
        !matches!(
            self,
            SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_)
        )
    }

    /// The base type name as ksqlDB prints it in `DESCRIBE` (`INTEGER`, `STRUCT`, ...).
    pub fn base_name(&self) -> &'static str {
        match self {
            SqlType::Boolean => "BOOLEAN",
            SqlType::Int => "INTEGER",
            SqlType::Bigint => "BIGINT",
            SqlType::Double => "DOUBLE",
            SqlType::Decimal { .. } => "DECIMAL",
            SqlType::String => "STRING",
            SqlType::Bytes => "BYTES",
            SqlType::Date => "DATE",
            SqlType::Time => "TIME",
            SqlType::Timestamp => "TIMESTAMP",
            SqlType::Array(_) => "ARRAY",
            SqlType::Map(..) => "MAP",
            SqlType::Struct(_) => "STRUCT",
            SqlType::Custom(_) => "CUSTOM",
        }
    }

    /// The decimal precision and scale a numeric type widens to (`INT` is `DECIMAL(10, 0)`,
    /// `BIGINT` is `DECIMAL(19, 0)`), as ksqlDB's implicit casts do.
    pub fn as_decimal(&self) -> Option<(u8, u8)> {
        match self {
            SqlType::Int => Some((10, 0)),
            SqlType::Bigint => Some((19, 0)),
            SqlType::Decimal { precision, scale } => Some((*precision, *scale)),
            _ => None,
        }
    }
}

impl fmt::Display for SqlType {
    /// The type as ksqlDB writes it in schemas: `INTEGER`, `DECIMAL(4, 2)`, `ARRAY<STRING>`,
    /// ``STRUCT<`A` INTEGER, `B` STRING>``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::Array(inner) => write!(f, "ARRAY<{inner}>"),
            SqlType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            SqlType::Struct(fields) => {
                write!(f, "STRUCT<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "`{}` {}", field.name, field.ty)?;
                }
                write!(f, ">")
            }
            SqlType::Custom(name) => write!(f, "{name}"),
            other => f.write_str(other.base_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_ksqldb() {
        let t = SqlType::Struct(vec![
            StructField::new("A", SqlType::Int),
            StructField::new("b", SqlType::Array(Box::new(SqlType::decimal(4, 2)))),
        ]);
        assert_eq!(
            t.to_string(),
            "STRUCT<`A` INTEGER, `b` ARRAY<DECIMAL(4, 2)>>"
        );
        assert_eq!(
            SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Bigint)).to_string(),
            "MAP<STRING, BIGINT>"
        );
    }
}
