//! ksqlDB's SQL dialect: lexical rules, statements and expressions, parsed into a typed AST.
//!
//! The statement parser is our own, built on sqlparser's tokenizer (re-exported by DataFusion), because
//! ksqlDB's grammar (`SqlBase.g4`) differs from every sqlparser dialect in ways that matter for
//! compatibility: `->` struct dereference, `=>` lambdas, `:=` in `MAP(...)`/`STRUCT(...)`
//! constructors, 1-based subscripts, DECIMAL-typed decimal literals, non-reserved keywords and
//! `${var}` substitution.

pub mod ast;
pub mod parser;
pub mod types;

pub use ast::*;
pub use parser::{parse_expression, parse_statements, substitute_variables, ParseError};
pub use types::{SqlType, StructField};
