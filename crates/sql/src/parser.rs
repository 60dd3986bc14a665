//! Statement and expression parser for ksqlDB's SQL dialect.
//!
//! The grammar is ksqlDB's `SqlBase.g4`, hand-written as recursive descent over sqlparser's tokens
//! (see [`lexer`]): statements in [`statement`], expressions in [`expr`]. Writing it by hand rather
//! than bending a sqlparser dialect keeps ksqlDB's quirks exact: non-reserved keywords that work as
//! identifiers, `-1` being a literal (so `-2147483648` is an INT), GROUP BY taking value
//! expressions only, lambdas only as trailing function arguments, and so on.
//!
//! Errors carry ksqlDB's position convention (1-based line and column of the offending token) and
//! message shapes, because clients and the conformance tests match on them:
//! `line 1:29: Syntax Error\nExpecting {'STRING', INTEGER_VALUE}\nStatement: ...`.

mod expr;
mod lexer;
mod statement;
#[cfg(test)]
mod tests;

use crate::ast::{ColumnDef, Expr, ParsedStatement};
use crate::types::SqlType;
use lexer::{Sym, Tok, TokKind};
use std::collections::HashMap;

/// A parse error with the 1-based position of the offending token.
///
/// `message` starts with `Syntax Error` for grammar errors (followed by a detail line and the
/// statement text, as ksqlDB prints them); other messages are ksqlDB's "prepare" errors, raised
/// while building the AST (bad numeric literals, illegal source names, ...). See
/// [`ParseError::ksql_message`] for the exact text ksqlDB reports for each kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}:{column}: {message}")]
pub struct ParseError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Messages ksqlDB raises while building the AST, with the position in the message.
const LOCATED_PREPARE_ERRORS: &[&str] = &[
    "Invalid numeric literal",
    "Number overflows DOUBLE",
    "Not a number",
    "Expected single character escape",
];

/// Messages ksqlDB raises while building the AST, without a position.
const UNLOCATED_PREPARE_ERRORS: &[&str] = &["Value must be integer"];

impl ParseError {
    /// The message exactly as ksqlDB words it for this kind of error:
    /// `line L:C: Syntax Error\n...` for grammar errors,
    /// `Failed to prepare statement: line L:C: Invalid numeric literal: ...` for errors ksqlDB
    /// raises while building its AST, and the bare message for the rest.
    pub fn ksql_message(&self) -> String {
        if LOCATED_PREPARE_ERRORS
            .iter()
            .any(|p| self.message.starts_with(p))
        {
            format!("Failed to prepare statement: {self}")
        } else if UNLOCATED_PREPARE_ERRORS
            .iter()
            .any(|p| self.message.starts_with(p))
        {
            format!("Failed to prepare statement: {}", self.message)
        } else if self.message.starts_with("Syntax Error") {
            self.to_string()
        } else {
            self.message.clone()
        }
    }
}

/// Parses a script of `;`-terminated statements (the final `;` may be omitted). Accepts the
/// server statements plus the test-only ones (`RUN SCRIPT`, `ASSERT VALUES`, `ASSERT NULL VALUES`,
/// `ASSERT STREAM|TABLE`); use [`parse_server_statements`] where ksqlDB's server grammar applies.
pub fn parse_statements(sql: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    Parser::new(sql, true)?.parse_script()
}

/// Like [`parse_statements`], but rejects the test-only statements with the errors ksqlDB's
/// server gives (`Unknown statement 'RUN'`, `Syntax error at or near 'VALUES' ...`).
pub fn parse_server_statements(sql: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    Parser::new(sql, false)?.parse_script()
}

/// Parses a single expression (the whole input must be one expression).
pub fn parse_expression(sql: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(sql, true)?;
    let e = p.parse_expr()?;
    p.expect_eof()?;
    Ok(e)
}

/// Parses a SQL type such as `ARRAY<STRUCT<A INT, \`b\` DECIMAL(4, 2)>>`.
pub fn parse_type(sql: &str) -> Result<SqlType, ParseError> {
    let mut p = Parser::new(sql, true)?;
    let t = p.parse_type()?;
    p.expect_eof()?;
    Ok(t)
}

/// Parses a comma-separated column list with optional constraints, such as the logical schema
/// strings ksqlDB prints and its tests use: `` `ID` BIGINT KEY, NAME STRING ``.
pub fn parse_columns(sql: &str) -> Result<Vec<ColumnDef>, ParseError> {
    let mut p = Parser::new(sql, true)?;
    let mut cols = Vec::new();
    if !p.at_eof() {
        loop {
            cols.push(p.parse_column_def()?);
            if !p.eat_sym(Sym::Comma) {
                break;
            }
        }
    }
    p.expect_eof()?;
    Ok(cols)
}

/// Replaces `${name}` with the variable's value (textual, before parsing). Names are
/// case-insensitive, as in ksqlDB; `$${name}` escapes a reference and yields `${name}`.
/// A reference to an undefined variable is an error.
pub fn substitute_variables(
    sql: &str,
    vars: &HashMap<String, String>,
) -> Result<String, ParseError> {
    let upper: HashMap<String, &String> = vars.iter().map(|(k, v)| (k.to_uppercase(), v)).collect();
    let mut out = String::with_capacity(sql.len());
    let (mut line, mut column) = (1u64, 1u64);
    let mut rest = sql;
    while let Some(ch) = rest.chars().next() {
        if rest.starts_with("$${") {
            // An escaped reference: drop one `$` and copy the rest through verbatim.
            rest = &rest[1..];
            column += 1;
            let copied = rest.find('}').map_or(rest.len(), |close| close + 1);
            out.push_str(&rest[..copied]);
            column += rest[..copied].chars().count() as u64;
            rest = &rest[copied..];
            continue;
        }
        if rest.starts_with("${") {
            if let Some(close) = rest.find('}') {
                let name = &rest[2..close];
                let valid = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@');
                if valid {
                    let Some(value) = upper.get(&name.to_uppercase()) else {
                        return Err(ParseError {
                            line,
                            column,
                            message: format!("Undefined variable: '{name}'"),
                        });
                    };
                    out.push_str(value);
                    column += rest[..=close].chars().count() as u64;
                    rest = &rest[close + 1..];
                    continue;
                }
            }
        }
        out.push(ch);
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
        rest = &rest[ch.len_utf8()..];
    }
    Ok(out)
}

/// Words that ksqlDB's lexer makes keywords and its grammar does not list as `nonReserved`: they
/// cannot be used as unquoted identifiers.
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "AS",
    "ALL",
    "DISTINCT",
    "WHERE",
    "WITHIN",
    "WINDOW",
    "GROUP",
    "BY",
    "HAVING",
    "LIMIT",
    "AT",
    "OR",
    "AND",
    "IN",
    "NOT",
    "EXISTS",
    "BETWEEN",
    "LIKE",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "MILLISECOND",
    "YEARS",
    "MONTHS",
    "DAYS",
    "HOURS",
    "MINUTES",
    "SECONDS",
    "MILLISECONDS",
    "TUMBLING",
    "HOPPING",
    "SIZE",
    "ADVANCE",
    "RETENTION",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "JOIN",
    "FULL",
    "OUTER",
    "INNER",
    "LEFT",
    "RIGHT",
    "ON",
    "WITH",
    "VALUES",
    "CREATE",
    "TABLE",
    "TOPIC",
    "STREAM",
    "STREAMS",
    "INSERT",
    "DELETE",
    "INTO",
    "DESCRIBE",
    "EXTENDED",
    "PRINT",
    "CAST",
    "LIST",
    "TOPICS",
    "QUERY",
    "QUERIES",
    "TERMINATE",
    "LOAD",
    "DROP",
    "TO",
    "RENAME",
    "SAMPLE",
    "EXPORT",
    "CATALOG",
    "PROPERTIES",
    "BEGINNING",
    "UNSET",
    "RUN",
    "SCRIPT",
    "DECIMAL",
    "CONNECTOR",
    "CONNECTORS",
    "NAMESPACE",
    "MATERIALIZED",
    "VIEW",
];

pub(crate) fn is_reserved(upper: &str) -> bool {
    RESERVED.contains(&upper)
}

/// The parser state: the token stream of the whole script and a cursor into it.
pub(crate) struct Parser<'a> {
    sql: &'a str,
    toks: Vec<Tok>,
    pos: usize,
    /// Index of the first token of the statement being parsed (for error messages).
    stmt_start: usize,
    /// Whether the test-only statements are accepted.
    test_statements: bool,
    /// Lambda parameters in scope (innermost last).
    lambda_params: Vec<String>,
    /// Current expression nesting depth (bounded to protect the stack).
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(sql: &'a str, test_statements: bool) -> Result<Self, ParseError> {
        Ok(Parser {
            sql,
            toks: lexer::tokenize(sql)?,
            pos: 0,
            stmt_start: 0,
            test_statements,
            lambda_params: Vec::new(),
            depth: 0,
        })
    }

    // ----- token access -----

    fn tok(&self) -> &Tok {
        self.peek_tok(0)
    }

    fn peek_tok(&self, n: usize) -> &Tok {
        let last = self.toks.len() - 1;
        &self.toks[(self.pos + n).min(last)]
    }

    fn kind(&self) -> &TokKind {
        &self.tok().kind
    }

    fn peek_kind(&self, n: usize) -> &TokKind {
        &self.peek_tok(n).kind
    }

    fn advance(&mut self) {
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
    }

    fn at_eof(&self) -> bool {
        matches!(self.kind(), TokKind::Eof)
    }

    /// The upper-cased text of the token `n` ahead if it is an unquoted word.
    fn peek_word(&self, n: usize) -> Option<String> {
        match self.peek_kind(n) {
            TokKind::Word {
                value,
                quoted: false,
            } => Some(value.to_uppercase()),
            _ => None,
        }
    }

    fn peek_is_kw(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_kind(n), TokKind::Word { value, quoted: false } if value.eq_ignore_ascii_case(kw))
    }

    fn at_kw(&self, kw: &str) -> bool {
        self.peek_is_kw(0, kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.missing(&format!("'{kw}'")))
        }
    }

    fn peek_is_sym(&self, n: usize, sym: Sym) -> bool {
        matches!(self.peek_kind(n), TokKind::Sym(s) if *s == sym)
    }

    fn at_sym(&self, sym: Sym) -> bool {
        self.peek_is_sym(0, sym)
    }

    fn eat_sym(&mut self, sym: Sym) -> bool {
        if self.at_sym(sym) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: Sym) -> Result<(), ParseError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.missing(&format!("'{}'", sym.text())))
        }
    }

    fn expect_eof(&self) -> Result<(), ParseError> {
        if self.at_eof() {
            Ok(())
        } else {
            Err(self.expecting("<EOF>"))
        }
    }

    // ----- identifiers -----

    /// Whether the token `n` ahead can be an identifier: a quoted word, or an unquoted word that
    /// is not a reserved keyword.
    fn peek_is_identifier(&self, n: usize) -> bool {
        match self.peek_kind(n) {
            TokKind::Word { quoted: true, .. } => true,
            TokKind::Word {
                value,
                quoted: false,
            } => !is_reserved(&value.to_uppercase()),
            _ => false,
        }
    }

    /// ksqlDB's `identifier`: unquoted names are upper-cased, quoted names are kept as written.
    fn parse_identifier(&mut self) -> Result<String, ParseError> {
        self.parse_identifier_cased(false)
    }

    /// `identifier` with ksqlDB's `caseSensitive` flag: when set, unquoted names keep their case
    /// too (topic names in `PRINT`).
    fn parse_identifier_cased(&mut self, case_sensitive: bool) -> Result<String, ParseError> {
        if !self.peek_is_identifier(0) {
            return Err(self.expecting("IDENTIFIER"));
        }
        let name = match self.kind() {
            TokKind::Word {
                value,
                quoted: true,
            } => value.clone(),
            TokKind::Word {
                value,
                quoted: false,
            } if case_sensitive => value.clone(),
            TokKind::Word { value, .. } => value.to_uppercase(),
            _ => return Err(self.expecting("IDENTIFIER")),
        };
        self.advance();
        Ok(name)
    }

    /// ksqlDB's `sourceName`: an identifier that must also be a valid Kafka Streams store name.
    fn parse_source_name(&mut self) -> Result<String, ParseError> {
        let (line, col) = (self.tok().line, self.tok().col);
        let name = self.parse_identifier()?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ParseError {
                line,
                column: col,
                message: format!(
                    "Illegal argument at Line: {line}, Col: {col}. Source names may only contain \
                     alphanumeric values, '_' or '-'. Got: '{name}'"
                ),
            });
        }
        Ok(name)
    }

    /// A single-quoted string literal.
    fn parse_string(&mut self) -> Result<String, ParseError> {
        match self.kind() {
            TokKind::Str(s) => {
                let s = s.clone();
                self.advance();
                Ok(s)
            }
            _ => Err(self.expecting("STRING")),
        }
    }

    // ----- errors -----

    /// The offending token as ANTLR displays it.
    fn tok_text(&self, tok: &Tok) -> String {
        match tok.kind {
            TokKind::Eof => "<EOF>".to_string(),
            _ => self
                .sql
                .get(tok.start..tok.end)
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The text of the statement being parsed, from its first token up to and including the next
    /// `;` at or after the current token (or the end of the script).
    fn current_statement_text(&self) -> String {
        let start = self.toks.get(self.stmt_start).map_or(0, |t| t.start);
        let end = self.toks[self.pos..]
            .iter()
            .find(|t| matches!(t.kind, TokKind::Sym(Sym::Semi) | TokKind::Eof))
            .map_or(self.sql.len(), |t| t.end);
        self.sql
            .get(start..end.max(start))
            .unwrap_or_default()
            .to_string()
    }

    /// A syntax error at the current token. Reserved keywords where they cannot go get ksqlDB's
    /// "at or near" wording; otherwise the detail line says what was expected.
    fn syntax_error(&self, detail: String) -> ParseError {
        let tok = self.tok();
        let text = self.tok_text(tok);
        let detail = match &tok.kind {
            TokKind::Word {
                value,
                quoted: false,
            } if is_reserved(&value.to_uppercase()) => {
                format!(
                    "Syntax error at or near '{text}' at line {}:{}",
                    tok.line, tok.col
                )
            }
            _ => detail,
        };
        let statement = self.current_statement_text();
        let message = if statement.is_empty() {
            format!("Syntax Error\n{detail}")
        } else {
            format!("Syntax Error\n{detail}\nStatement: {statement}")
        };
        ParseError {
            line: tok.line,
            column: tok.col,
            message,
        }
    }

    /// The current token is not what the grammar allows here; `expected` lists what it allows,
    /// in ANTLR's notation (`'('`, `IDENTIFIER`, `{',', ')'}`).
    fn expecting(&self, expected: &str) -> ParseError {
        self.syntax_error(format!("Expecting {expected}"))
    }

    /// A specific token is missing before the current one.
    fn missing(&self, expected: &str) -> ParseError {
        let text = self.tok_text(self.tok());
        self.syntax_error(format!("missing {expected} at '{text}'"))
    }

    /// A non-syntax error located at a token.
    fn error_at(&self, tok: &Tok, message: String) -> ParseError {
        ParseError {
            line: tok.line,
            column: tok.col,
            message,
        }
    }
}
