//! Statements: the script loop, DDL/DML, queries, and the metadata/admin commands.

use super::lexer::{Sym, TokKind};
use super::{ParseError, Parser};
use crate::ast::*;
use crate::types::SqlType;

/// ksqlDB's `windowUnit`.
pub(super) fn time_unit(upper: &str) -> Option<TimeUnit> {
    Some(match upper {
        "MILLISECOND" | "MILLISECONDS" => TimeUnit::Milliseconds,
        "SECOND" | "SECONDS" => TimeUnit::Seconds,
        "MINUTE" | "MINUTES" => TimeUnit::Minutes,
        "HOUR" | "HOURS" => TimeUnit::Hours,
        "DAY" | "DAYS" => TimeUnit::Days,
        _ => return None,
    })
}

impl Parser<'_> {
    /// `statements: (statement ';')* EOF`, with the final `;` optional.
    pub(super) fn parse_script(&mut self) -> Result<Vec<ParsedStatement>, ParseError> {
        let mut out = Vec::new();
        loop {
            while self.eat_sym(Sym::Semi) {}
            if self.at_eof() {
                return Ok(out);
            }
            self.stmt_start = self.pos;
            let first = self.tok().clone();
            let statement = self.parse_statement()?;
            let end = if self.at_sym(Sym::Semi) {
                let end = self.tok().end;
                self.advance();
                end
            } else if self.at_eof() {
                self.toks[self.pos.saturating_sub(1)].end
            } else {
                return Err(self.expecting("';'"));
            };
            out.push(ParsedStatement {
                statement,
                text: self
                    .sql
                    .get(first.start..end)
                    .unwrap_or_default()
                    .to_string(),
                line: first.line,
                column: first.col,
            });
        }
    }

    pub(super) fn parse_statement(&mut self) -> Result<Statement, ParseError> {
        let Some(word) = self.peek_word(0) else {
            return Err(self.unknown_statement());
        };
        match word.as_str() {
            "SELECT" => Ok(Statement::Query(Box::new(self.parse_query()?))),
            "SHOW" | "LIST" => self.parse_show(),
            "DESCRIBE" => self.parse_describe(),
            "PRINT" => self.parse_print(),
            "TERMINATE" | "PAUSE" | "RESUME" => {
                self.advance();
                let query_id = if self.eat_kw("ALL") {
                    None
                } else {
                    Some(self.parse_identifier()?)
                };
                Ok(match word.as_str() {
                    "TERMINATE" => Statement::Terminate { query_id },
                    "PAUSE" => Statement::Pause { query_id },
                    _ => Statement::Resume { query_id },
                })
            }
            "SET" => {
                self.advance();
                let (name, value) = self.parse_string_assignment()?;
                Ok(Statement::Set { name, value })
            }
            "UNSET" => {
                self.advance();
                Ok(Statement::Unset {
                    name: self.parse_string()?,
                })
            }
            "DEFINE" => {
                self.advance();
                let name = self.parse_variable_name()?;
                self.expect_sym(Sym::Eq)?;
                Ok(Statement::Define {
                    name,
                    value: self.parse_string()?,
                })
            }
            "UNDEFINE" => {
                self.advance();
                Ok(Statement::Undefine {
                    name: self.parse_variable_name()?,
                })
            }
            "ALTER" => self.parse_alter(),
            "CREATE" => self.parse_create(),
            "INSERT" => self.parse_insert(),
            "DROP" => self.parse_drop(),
            "EXPLAIN" => self.parse_explain(),
            "ASSERT" => self.parse_assert(),
            "RUN" if self.test_statements => {
                self.advance();
                self.expect_kw("SCRIPT")?;
                Ok(Statement::RunScript {
                    path: self.parse_string()?,
                })
            }
            _ => Err(self.unknown_statement()),
        }
    }

    /// ksqlDB names the statement's first word and nothing else here.
    fn unknown_statement(&self) -> ParseError {
        let tok = self.tok();
        let text = self.tok_text(tok);
        self.error_at(tok, format!("Syntax Error\nUnknown statement '{text}'"))
    }

    /// `STRING '=' STRING`
    fn parse_string_assignment(&mut self) -> Result<(String, String), ParseError> {
        let name = self.parse_string()?;
        self.expect_sym(Sym::Eq)?;
        let value = self.parse_string()?;
        Ok((name, value))
    }

    /// `variableName: IDENTIFIER`, kept as written.
    fn parse_variable_name(&mut self) -> Result<String, ParseError> {
        match self.kind() {
            TokKind::Word {
                value,
                quoted: false,
            } if !super::is_reserved(&value.to_uppercase()) => {
                let v = value.clone();
                self.advance();
                Ok(v)
            }
            _ => Err(self.expecting("IDENTIFIER")),
        }
    }

    // ----- SHOW / DESCRIBE / PRINT / EXPLAIN -----

    fn parse_show(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let word = self.peek_word(0).unwrap_or_default();
        let show = match word.as_str() {
            "PROPERTIES" => {
                self.advance();
                Show::Properties
            }
            "ALL" | "TOPICS" => {
                let all = self.eat_kw("ALL");
                self.expect_kw("TOPICS")?;
                Show::Topics {
                    all,
                    extended: self.eat_kw("EXTENDED"),
                }
            }
            "STREAMS" => {
                self.advance();
                Show::Streams {
                    extended: self.eat_kw("EXTENDED"),
                }
            }
            "TABLES" => {
                self.advance();
                Show::Tables {
                    extended: self.eat_kw("EXTENDED"),
                }
            }
            "QUERIES" => {
                self.advance();
                Show::Queries {
                    extended: self.eat_kw("EXTENDED"),
                }
            }
            "FUNCTIONS" => {
                self.advance();
                Show::Functions
            }
            "TYPES" => {
                self.advance();
                Show::Types
            }
            "VARIABLES" => {
                self.advance();
                Show::Variables
            }
            "SOURCE" | "SINK" | "CONNECTORS" => {
                let kind = if self.eat_kw("SOURCE") {
                    Some(ConnectorKind::Source)
                } else if self.eat_kw("SINK") {
                    Some(ConnectorKind::Sink)
                } else {
                    None
                };
                self.expect_kw("CONNECTORS")?;
                Show::Connectors { kind }
            }
            "CONNECTOR" => {
                self.advance();
                self.expect_kw("PLUGINS")?;
                Show::ConnectorPlugins
            }
            _ => {
                return Err(self.expecting(
                    "{'PROPERTIES', 'ALL', 'TOPICS', 'STREAMS', 'TABLES', 'QUERIES', \
                     'FUNCTIONS', 'TYPES', 'VARIABLES', 'SOURCE', 'SINK', 'CONNECTORS', \
                     'CONNECTOR'}",
                ))
            }
        };
        Ok(Statement::Show(show))
    }

    fn parse_describe(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        if self.eat_kw("STREAMS") {
            return Ok(Statement::Describe {
                target: DescribeTarget::Streams,
                extended: self.eat_kw("EXTENDED"),
            });
        }
        // `TABLES` is non-reserved: `DESCRIBE TABLES` lists tables unless it is quoted.
        if self.at_kw("TABLES") {
            self.advance();
            return Ok(Statement::Describe {
                target: DescribeTarget::Tables,
                extended: self.eat_kw("EXTENDED"),
            });
        }
        if self.at_kw("FUNCTION") && self.peek_is_identifier(1) {
            self.advance();
            return Ok(Statement::DescribeFunction {
                name: self.parse_identifier()?,
            });
        }
        if self.eat_kw("CONNECTOR") {
            return Ok(Statement::DescribeConnector {
                name: self.parse_identifier()?,
            });
        }
        // Older grammars put EXTENDED before the name; accept both orders.
        let mut extended = self.eat_kw("EXTENDED");
        let name = self.parse_source_name()?;
        extended |= self.eat_kw("EXTENDED");
        Ok(Statement::Describe {
            target: DescribeTarget::Source(name),
            extended,
        })
    }

    /// `PRINT (identifier | STRING) [FROM BEGINNING] [(INTERVAL | SAMPLE) n] [LIMIT n]`. The topic
    /// name is case-sensitive even when unquoted.
    fn parse_print(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let topic = self.parse_resource_name()?;
        let mut from_beginning = false;
        if self.eat_kw("FROM") {
            self.expect_kw("BEGINNING")?;
            from_beginning = true;
        }
        let interval = if self.eat_kw("INTERVAL") || self.eat_kw("SAMPLE") {
            Some(self.parse_unsigned("INTERVAL", "PRINT statements")?)
        } else {
            None
        };
        let limit = if self.eat_kw("LIMIT") {
            Some(self.parse_unsigned("LIMIT", "PRINT statements")?)
        } else {
            None
        };
        Ok(Statement::Print {
            topic,
            from_beginning,
            interval,
            limit,
        })
    }

    /// `resourceName: identifier | STRING`, case kept.
    fn parse_resource_name(&mut self) -> Result<String, ParseError> {
        if matches!(self.kind(), TokKind::Str(_)) {
            self.parse_string()
        } else {
            self.parse_identifier_cased(true)
        }
    }

    /// A non-negative integer count (`LIMIT`, `INTERVAL`). `kind` names the statement kind in
    /// the error for negative counts ("Pull queries don't support negative integers ...").
    fn parse_unsigned(&mut self, what: &str, kind: &str) -> Result<u64, ParseError> {
        let tok = self.tok().clone();
        let negative = self.at_sym(Sym::Minus) && matches!(self.peek_kind(1), TokKind::Num(_));
        if negative {
            self.advance();
        }
        let TokKind::Num(text) = self.kind().clone() else {
            return Err(self.expecting("INTEGER_VALUE"));
        };
        self.advance();
        if text.contains(['.', 'e', 'E']) {
            return Err(self.error_at(&tok, format!("Value must be integer for command: {what}")));
        }
        if negative {
            return Err(self.error_at(
                &tok,
                format!(
                    "{kind} don't support negative integers in the {what} clause. See \
                     https://cnfl.io/queries for more info."
                ),
            ));
        }
        text.parse::<u64>()
            .ok()
            .filter(|v| *v <= i32::MAX as u64)
            .ok_or_else(|| self.error_at(&tok, format!("Invalid numeric literal: {text}")))
    }

    /// `EXPLAIN (statement | query_id)`
    fn parse_explain(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let ends_after_one = matches!(self.peek_kind(1), TokKind::Eof | TokKind::Sym(Sym::Semi));
        if ends_after_one && self.peek_is_identifier(0) {
            return Ok(Statement::Explain(ExplainTarget::QueryId(
                self.parse_identifier()?,
            )));
        }
        let first = self.tok().clone();
        let outer_start = self.stmt_start;
        self.stmt_start = self.pos;
        let statement = self.parse_statement()?;
        self.stmt_start = outer_start;
        // The inner statement's text runs to the end of the outer one, including its `;`.
        let end = if self.at_sym(Sym::Semi) {
            self.tok().end
        } else {
            self.toks[self.pos.saturating_sub(1)].end
        };
        Ok(Statement::Explain(ExplainTarget::Statement(Box::new(
            ParsedStatement {
                statement,
                text: self
                    .sql
                    .get(first.start..end)
                    .unwrap_or_default()
                    .to_string(),
                line: first.line,
                column: first.col,
            },
        ))))
    }

    // ----- DDL -----

    fn parse_create(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let or_replace = if self.eat_kw("OR") {
            self.expect_kw("REPLACE")?;
            true
        } else {
            false
        };
        if !or_replace {
            if (self.at_kw("SOURCE") || self.at_kw("SINK")) && self.peek_is_kw(1, "CONNECTOR") {
                return self.parse_create_connector();
            }
            if self.eat_kw("TYPE") {
                let if_not_exists = self.parse_if_not_exists()?;
                let name = self.parse_identifier()?;
                self.expect_kw("AS")?;
                let ty = self.parse_type()?;
                return Ok(Statement::CreateType {
                    name,
                    ty,
                    if_not_exists,
                });
            }
        }
        let is_source = self.eat_kw("SOURCE");
        let kind = self.parse_source_kind()?;
        let if_not_exists = self.parse_if_not_exists()?;
        let name = self.parse_source_name()?;
        let columns = if self.at_sym(Sym::LParen) {
            Some(self.parse_table_elements(Some(kind))?)
        } else {
            None
        };
        let properties = self.parse_optional_with()?;
        if columns.is_none() && !is_source && self.eat_kw("AS") {
            let query = self.parse_query()?;
            return Ok(Statement::CreateAsSelect(CreateAsSelect {
                kind,
                name,
                or_replace,
                if_not_exists,
                properties,
                query: Box::new(query),
            }));
        }
        Ok(Statement::CreateSource(CreateSource {
            kind,
            name,
            or_replace,
            if_not_exists,
            is_source,
            columns: columns.unwrap_or_default(),
            properties,
        }))
    }

    fn parse_create_connector(&mut self) -> Result<Statement, ParseError> {
        let source = self.eat_kw("SOURCE");
        if !source {
            self.expect_kw("SINK")?;
        }
        self.expect_kw("CONNECTOR")?;
        let if_not_exists = self.parse_if_not_exists()?;
        let name = self.parse_identifier()?;
        self.expect_kw("WITH")?;
        let properties = self.parse_properties()?;
        Ok(Statement::CreateConnector {
            name,
            source,
            if_not_exists,
            properties,
        })
    }

    fn parse_source_kind(&mut self) -> Result<SourceKind, ParseError> {
        if self.eat_kw("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat_kw("TABLE") {
            Ok(SourceKind::Table)
        } else {
            Err(self.expecting("{'STREAM', 'TABLE'}"))
        }
    }

    fn parse_if_not_exists(&mut self) -> Result<bool, ParseError> {
        if self.at_kw("IF") && self.peek_is_kw(1, "NOT") {
            self.advance();
            self.advance();
            self.expect_kw("EXISTS")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn parse_if_exists(&mut self) -> Result<bool, ParseError> {
        if self.at_kw("IF") && self.peek_is_kw(1, "EXISTS") {
            self.advance();
            self.advance();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// `'(' tableElement (',' tableElement)* ')'`. For a stream or table, the key constraint must
    /// match the source kind (`KEY` for streams, `PRIMARY KEY` for tables), as ksqlDB checks while
    /// building its AST.
    fn parse_table_elements(
        &mut self,
        kind: Option<SourceKind>,
    ) -> Result<Vec<ColumnDef>, ParseError> {
        self.expect_sym(Sym::LParen)?;
        let mut cols = Vec::new();
        loop {
            let tok = self.tok().clone();
            let col = self.parse_column_def()?;
            let wrong = match (kind, &col.constraint) {
                (Some(SourceKind::Table), ColumnConstraint::Key) => {
                    Some(("KEY", "PRIMARY KEY", "tables"))
                }
                (Some(SourceKind::Stream), ColumnConstraint::PrimaryKey) => {
                    Some(("PRIMARY KEY", "KEY", "streams"))
                }
                _ => None,
            };
            if let Some((used, wanted, kinds)) = wrong {
                return Err(self.error_at(
                    &tok,
                    format!(
                        "Line: {}, Col: {}: Column `{}` is a '{used}' column: please use \
                         '{wanted}' for {kinds}.",
                        tok.line, tok.col, col.name
                    ),
                ));
            }
            cols.push(col);
            if self.eat_sym(Sym::RParen) {
                return Ok(cols);
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ')'}"));
            }
        }
    }

    /// `identifier type [[PRIMARY] KEY | HEADERS | HEADER '(' STRING ')']`
    pub(super) fn parse_column_def(&mut self) -> Result<ColumnDef, ParseError> {
        let name = self.parse_identifier()?;
        let ty = self.parse_type()?;
        let constraint = if self.eat_kw("PRIMARY") {
            self.expect_kw("KEY")?;
            ColumnConstraint::PrimaryKey
        } else if self.eat_kw("KEY") {
            ColumnConstraint::Key
        } else if self.eat_kw("HEADERS") {
            ColumnConstraint::Headers
        } else if self.at_kw("HEADER") && self.peek_is_sym(1, Sym::LParen) {
            self.advance();
            self.advance();
            let key = self.parse_string()?;
            self.expect_sym(Sym::RParen)?;
            ColumnConstraint::Header(key)
        } else {
            ColumnConstraint::None
        };
        Ok(ColumnDef {
            name,
            ty,
            constraint,
        })
    }

    /// `[WITH tableProperties]`
    fn parse_optional_with(&mut self) -> Result<Properties, ParseError> {
        if self.eat_kw("WITH") {
            self.parse_properties()
        } else {
            Ok(Properties::default())
        }
    }

    /// `'(' (identifier | STRING) '=' literal (',' ...)* ')'`. Identifier names follow the
    /// identifier case rules; quoted string names are kept exactly (connector configs are
    /// case-sensitive).
    fn parse_properties(&mut self) -> Result<Properties, ParseError> {
        self.expect_sym(Sym::LParen)?;
        let mut props = Vec::new();
        loop {
            let name = if matches!(self.kind(), TokKind::Str(_)) {
                self.parse_string()?
            } else {
                self.parse_identifier()?
            };
            self.expect_sym(Sym::Eq)?;
            let value = self.parse_literal()?;
            props.push((name, value));
            if self.eat_sym(Sym::RParen) {
                return Ok(Properties(props));
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ')'}"));
            }
        }
    }

    fn parse_drop(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        if self.eat_kw("CONNECTOR") {
            let if_exists = self.parse_if_exists()?;
            return Ok(Statement::DropConnector {
                if_exists,
                name: self.parse_identifier()?,
            });
        }
        if self.eat_kw("TYPE") {
            let if_exists = self.parse_if_exists()?;
            return Ok(Statement::DropType {
                if_exists,
                name: self.parse_identifier()?,
            });
        }
        let kind = match self.parse_source_kind() {
            Ok(k) => k,
            Err(_) => return Err(self.expecting("{'STREAM', 'TABLE', 'CONNECTOR', 'TYPE'}")),
        };
        let if_exists = self.parse_if_exists()?;
        let name = self.parse_source_name()?;
        let delete_topic = if self.eat_kw("DELETE") {
            self.expect_kw("TOPIC")?;
            true
        } else {
            false
        };
        Ok(Statement::DropSource {
            kind,
            name,
            if_exists,
            delete_topic,
        })
    }

    /// `ALTER SYSTEM 'k' = 'v'` or `ALTER STREAM|TABLE name ADD [COLUMN] c type [, ...]`
    fn parse_alter(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        if self.eat_kw("SYSTEM") {
            let (name, value) = self.parse_string_assignment()?;
            return Ok(Statement::AlterSystem { name, value });
        }
        let kind = match self.parse_source_kind() {
            Ok(k) => k,
            Err(_) => return Err(self.expecting("{'SYSTEM', 'STREAM', 'TABLE'}")),
        };
        let name = self.parse_source_name()?;
        let mut add_columns = Vec::new();
        loop {
            self.expect_kw("ADD")?;
            // `COLUMN` is non-reserved: in `ADD COLUMN INT` it is the column's name.
            if self.at_kw("COLUMN")
                && self.peek_is_identifier(1)
                && !matches!(
                    self.peek_kind(2),
                    TokKind::Sym(Sym::Comma | Sym::Semi | Sym::Lt | Sym::LParen) | TokKind::Eof
                )
            {
                self.advance();
            }
            let col = self.parse_identifier()?;
            let ty = self.parse_type()?;
            add_columns.push(ColumnDef {
                name: col,
                ty,
                constraint: ColumnConstraint::None,
            });
            if !self.eat_sym(Sym::Comma) {
                break;
            }
        }
        Ok(Statement::AlterSource {
            kind,
            name,
            add_columns,
        })
    }

    // ----- DML -----

    fn parse_insert(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        self.expect_kw("INTO")?;
        let target = self.parse_source_name()?;
        if self.at_kw("WITH") || self.at_kw("SELECT") {
            let properties = self.parse_optional_with()?;
            let query = self.parse_query()?;
            return Ok(Statement::InsertInto {
                target,
                properties,
                query: Box::new(query),
            });
        }
        let columns = self.parse_optional_columns()?;
        if !self.eat_kw("VALUES") {
            return Err(if columns.is_some() {
                self.missing("'VALUES'")
            } else {
                self.expecting("{'WITH', 'SELECT', '(', 'VALUES'}")
            });
        }
        let values = self.parse_values()?;
        Ok(Statement::InsertValues {
            target,
            columns,
            values,
        })
    }

    /// `['(' identifier (',' identifier)* ')']`
    fn parse_optional_columns(&mut self) -> Result<Option<Vec<String>>, ParseError> {
        if !self.eat_sym(Sym::LParen) {
            return Ok(None);
        }
        let mut cols = vec![self.parse_identifier()?];
        while self.eat_sym(Sym::Comma) {
            cols.push(self.parse_identifier()?);
        }
        self.expect_sym(Sym::RParen)?;
        Ok(Some(cols))
    }

    /// `values: '(' (valueExpression (',' valueExpression)*)? ')'`
    fn parse_values(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect_sym(Sym::LParen)?;
        let mut values = Vec::new();
        if self.eat_sym(Sym::RParen) {
            return Ok(values);
        }
        loop {
            values.push(self.parse_value_expr()?);
            if self.eat_sym(Sym::RParen) {
                return Ok(values);
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ')'}"));
            }
        }
    }

    // ----- ASSERT -----

    fn parse_assert(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let test_only = self.at_kw("VALUES")
            || (self.at_kw("NULL") && self.peek_is_kw(1, "VALUES"))
            || self.at_kw("STREAM")
            || self.at_kw("TABLE");
        if test_only && self.test_statements {
            return self.parse_test_assert();
        }
        let exists = if self.at_kw("NOT") {
            self.advance();
            self.expect_kw("EXISTS")?;
            false
        } else {
            true
        };
        if self.eat_kw("TOPIC") {
            let topic = self.parse_resource_name()?;
            let properties = self.parse_optional_with()?;
            let timeout = self.parse_optional_timeout()?;
            return Ok(Statement::AssertTopic {
                topic,
                exists,
                properties,
                timeout,
            });
        }
        if self.eat_kw("SCHEMA") {
            let subject = if self.eat_kw("SUBJECT") {
                Some(self.parse_resource_name()?)
            } else {
                None
            };
            let id = if self.eat_kw("ID") {
                let tok = self.tok().clone();
                match self.parse_literal()? {
                    Literal::Integer(i) => Some(i),
                    _ => {
                        return Err(self.error_at(&tok, "ID must be an integer".to_string()));
                    }
                }
            } else {
                None
            };
            let timeout = self.parse_optional_timeout()?;
            return Ok(Statement::AssertSchema {
                subject,
                id,
                exists,
                timeout,
            });
        }
        Err(self.expecting("{'NOT', 'TOPIC', 'SCHEMA'}"))
    }

    fn parse_optional_timeout(&mut self) -> Result<Option<Duration>, ParseError> {
        if self.eat_kw("TIMEOUT") {
            Ok(Some(self.parse_duration()?))
        } else {
            Ok(None)
        }
    }

    /// The test-only `ASSERT VALUES | NULL VALUES | STREAM | TABLE` statements.
    fn parse_test_assert(&mut self) -> Result<Statement, ParseError> {
        if self.eat_kw("VALUES") {
            let source = self.parse_source_name()?;
            let columns = self.parse_optional_columns()?;
            self.expect_kw("VALUES")?;
            let values = self.parse_values()?;
            return Ok(Statement::AssertValues {
                source,
                columns,
                values,
            });
        }
        if self.eat_kw("NULL") {
            self.expect_kw("VALUES")?;
            let source = self.parse_source_name()?;
            let columns = self.parse_optional_columns()?;
            self.expect_kw("KEY")?;
            let keys = self.parse_values()?;
            return Ok(Statement::AssertNullValues {
                source,
                columns,
                keys,
            });
        }
        let kind = self.parse_source_kind()?;
        let name = self.parse_source_name()?;
        let elements = if self.at_sym(Sym::LParen) {
            self.parse_table_elements(Some(kind))?
        } else {
            Vec::new()
        };
        let properties = self.parse_optional_with()?;
        Ok(Statement::AssertSource {
            kind,
            name,
            elements,
            properties,
        })
    }

    // ----- durations -----

    /// `number windowUnit`, e.g. `10 SECONDS`.
    pub(super) fn parse_duration(&mut self) -> Result<Duration, ParseError> {
        let tok = self.tok().clone();
        let TokKind::Num(text) = self.kind().clone() else {
            return Err(self.expecting("INTEGER_VALUE"));
        };
        let value = text
            .parse::<u64>()
            .map_err(|_| self.error_at(&tok, format!("Invalid numeric literal: {text}")))?;
        self.advance();
        let unit = self.peek_word(0).and_then(|w| time_unit(&w));
        let Some(unit) = unit else {
            return Err(self.expecting(
                "{'DAY', 'HOUR', 'MINUTE', 'SECOND', 'MILLISECOND', 'DAYS', 'HOURS', 'MINUTES', \
                 'SECONDS', 'MILLISECONDS'}",
            ));
        };
        self.advance();
        Ok(Duration { value, unit })
    }

    // ----- queries -----

    /// `SELECT items FROM relation [WINDOW ...] [WHERE e] [GROUP BY ...] [PARTITION BY ...]
    /// [HAVING e] [EMIT CHANGES|FINAL] [LIMIT n]`
    pub(super) fn parse_query(&mut self) -> Result<Query, ParseError> {
        self.expect_kw("SELECT")?;
        let mut select = vec![self.parse_select_item()?];
        while self.eat_sym(Sym::Comma) {
            select.push(self.parse_select_item()?);
        }
        self.expect_kw("FROM")?;
        let from = self.parse_from()?;
        let window = if self.eat_kw("WINDOW") {
            Some(self.parse_window()?)
        } else {
            None
        };
        let where_clause = if self.eat_kw("WHERE") {
            Some(self.parse_expr()?)
        } else {
            None
        };
        let group_by = if self.at_kw("GROUP") {
            self.advance();
            self.expect_kw("BY")?;
            self.parse_grouping_list()?
        } else {
            Vec::new()
        };
        let partition_by = if self.at_kw("PARTITION") && self.peek_is_kw(1, "BY") {
            self.advance();
            self.advance();
            self.parse_grouping_list()?
        } else {
            Vec::new()
        };
        let having = if self.eat_kw("HAVING") {
            Some(self.parse_expr()?)
        } else {
            None
        };
        let emit = if self.at_kw("EMIT") {
            self.advance();
            if self.eat_kw("CHANGES") {
                Some(Emit::Changes)
            } else if self.eat_kw("FINAL") {
                Some(Emit::Final)
            } else {
                return Err(self.expecting("{'CHANGES', 'FINAL'}"));
            }
        } else {
            None
        };
        let limit = if self.eat_kw("LIMIT") {
            let kind = if emit.is_some() {
                "Push queries"
            } else {
                "Pull queries"
            };
            Some(self.parse_unsigned("LIMIT", kind)?)
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            window,
            where_clause,
            group_by,
            partition_by,
            having,
            emit,
            limit,
        })
    }

    fn parse_select_item(&mut self) -> Result<SelectItem, ParseError> {
        if self.eat_sym(Sym::Star) {
            return Ok(SelectItem::Wildcard);
        }
        if self.peek_is_identifier(0)
            && self.peek_is_sym(1, Sym::Period)
            && self.peek_is_sym(2, Sym::Star)
        {
            let q = self.parse_identifier()?;
            self.advance();
            self.advance();
            return Ok(SelectItem::QualifiedWildcard(q));
        }
        let start = self.tok().clone();
        let expr = self.parse_expr()?;
        if self.at_sym(Sym::Arrow) && self.peek_is_sym(1, Sym::Star) {
            let primary = !matches!(
                expr,
                Expr::Binary { .. }
                    | Expr::Unary { .. }
                    | Expr::IsNull { .. }
                    | Expr::IsDistinctFrom { .. }
                    | Expr::Between { .. }
                    | Expr::InList { .. }
                    | Expr::Like { .. }
                    | Expr::AtTimeZone { .. }
            ) || matches!(start.kind, TokKind::Sym(Sym::LParen));
            if !primary {
                self.advance();
                return Err(self.expecting("IDENTIFIER"));
            }
            self.advance();
            self.advance();
            return Ok(SelectItem::StructWildcard(expr));
        }
        let alias = if self.eat_kw("AS") || self.peek_is_identifier(0) {
            Some(self.parse_identifier()?)
        } else {
            None
        };
        Ok(SelectItem::Expr { expr, alias })
    }

    fn parse_from(&mut self) -> Result<From, ParseError> {
        let source = self.parse_aliased_source()?;
        let mut joins = Vec::new();
        loop {
            let kind = if self.eat_kw("JOIN") {
                JoinKind::Inner
            } else if self.at_kw("INNER") {
                self.advance();
                self.expect_kw("JOIN")?;
                JoinKind::Inner
            } else if self.at_kw("LEFT") || self.at_kw("RIGHT") || self.at_kw("FULL") {
                let kind = match self.peek_word(0).as_deref() {
                    Some("LEFT") => JoinKind::Left,
                    Some("RIGHT") => JoinKind::Right,
                    _ => JoinKind::Full,
                };
                self.advance();
                self.eat_kw("OUTER");
                self.expect_kw("JOIN")?;
                kind
            } else {
                break;
            };
            let source = self.parse_aliased_source()?;
            let (within, grace) = if self.eat_kw("WITHIN") {
                let within = if self.eat_sym(Sym::LParen) {
                    let before = self.parse_duration()?;
                    self.expect_sym(Sym::Comma)?;
                    let after = self.parse_duration()?;
                    self.expect_sym(Sym::RParen)?;
                    Within { before, after }
                } else {
                    let d = self.parse_duration()?;
                    Within {
                        before: d.clone(),
                        after: d,
                    }
                };
                (Some(within), self.parse_optional_grace()?)
            } else {
                (None, None)
            };
            self.expect_kw("ON")?;
            let on = self.parse_expr()?;
            joins.push(Join {
                kind,
                source,
                within,
                grace,
                on,
            });
        }
        Ok(From { source, joins })
    }

    fn parse_optional_grace(&mut self) -> Result<Option<Duration>, ParseError> {
        if self.at_kw("GRACE") && self.peek_is_kw(1, "PERIOD") {
            self.advance();
            self.advance();
            Ok(Some(self.parse_duration()?))
        } else {
            Ok(None)
        }
    }

    /// `sourceName [[AS] alias]`. A non-reserved word after the name is an alias unless it starts
    /// the next clause (`PARTITION BY`, `EMIT CHANGES`).
    fn parse_aliased_source(&mut self) -> Result<AliasedSource, ParseError> {
        let name = self.parse_source_name()?;
        let starts_clause = (self.at_kw("PARTITION") && self.peek_is_kw(1, "BY"))
            || (self.at_kw("EMIT")
                && (self.peek_is_kw(1, "CHANGES") || self.peek_is_kw(1, "FINAL")));
        let alias = if self.eat_kw("AS") || (self.peek_is_identifier(0) && !starts_clause) {
            Some(self.parse_source_name()?)
        } else {
            None
        };
        Ok(AliasedSource { name, alias })
    }

    /// `[name] TUMBLING (...) | HOPPING (...) | SESSION (...)`
    fn parse_window(&mut self) -> Result<WindowSpec, ParseError> {
        let is_kind =
            |w: Option<String>| matches!(w.as_deref(), Some("TUMBLING" | "HOPPING" | "SESSION"));
        // An optional window name (ignored by ksqlDB apart from being accepted).
        if !is_kind(self.peek_word(0)) && is_kind(self.peek_word(1)) {
            self.advance();
        }
        let word = self.peek_word(0).unwrap_or_default();
        let kind = match word.as_str() {
            "TUMBLING" => {
                self.advance();
                self.expect_sym(Sym::LParen)?;
                self.expect_kw("SIZE")?;
                WindowKind::Tumbling {
                    size: self.parse_duration()?,
                }
            }
            "HOPPING" => {
                self.advance();
                self.expect_sym(Sym::LParen)?;
                self.expect_kw("SIZE")?;
                let size = self.parse_duration()?;
                self.expect_sym(Sym::Comma)?;
                self.expect_kw("ADVANCE")?;
                self.expect_kw("BY")?;
                WindowKind::Hopping {
                    size,
                    advance: self.parse_duration()?,
                }
            }
            "SESSION" => {
                self.advance();
                self.expect_sym(Sym::LParen)?;
                WindowKind::Session {
                    gap: self.parse_duration()?,
                }
            }
            _ => return Err(self.expecting("{'TUMBLING', 'HOPPING', 'SESSION'}")),
        };
        let mut retention = None;
        let mut grace = None;
        while self.eat_sym(Sym::Comma) {
            if retention.is_none() && grace.is_none() && self.eat_kw("RETENTION") {
                retention = Some(self.parse_duration()?);
            } else if grace.is_none() && self.at_kw("GRACE") {
                self.advance();
                self.expect_kw("PERIOD")?;
                grace = Some(self.parse_duration()?);
            } else {
                return Err(self.expecting(if grace.is_none() && retention.is_none() {
                    "{'RETENTION', 'GRACE'}"
                } else {
                    "'GRACE'"
                }));
            }
        }
        self.expect_sym(Sym::RParen)?;
        Ok(WindowSpec {
            kind,
            retention,
            grace,
        })
    }

    /// `groupBy` / `partitionBy`: `valueExpression (',' valueExpression)*` or a parenthesised
    /// (possibly empty) list of value expressions.
    fn parse_grouping_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        if self.at_sym(Sym::LParen) {
            let save = self.pos;
            if let Ok(list) = self.try_parenthesised_list() {
                // Only a list when nothing continues it as an expression (`(a) + 1`, `(a), b`).
                let ends_clause = matches!(self.kind(), TokKind::Sym(Sym::Semi) | TokKind::Eof)
                    || ["PARTITION", "HAVING", "EMIT", "LIMIT"]
                        .iter()
                        .any(|k| self.at_kw(k));
                if ends_clause && list.len() != 1 {
                    return Ok(list);
                }
            }
            self.pos = save;
        }
        let mut list = vec![self.parse_value_expr()?];
        while self.eat_sym(Sym::Comma) {
            list.push(self.parse_value_expr()?);
        }
        Ok(list)
    }

    fn try_parenthesised_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect_sym(Sym::LParen)?;
        let mut list = Vec::new();
        if self.eat_sym(Sym::RParen) {
            return Ok(list);
        }
        loop {
            list.push(self.parse_value_expr()?);
            if self.eat_sym(Sym::RParen) {
                return Ok(list);
            }
            self.expect_sym(Sym::Comma)?;
        }
    }

    // ----- types -----

    /// ksqlDB's `type`: `ARRAY<t>`, `MAP<k, v>`, `STRUCT<name t, ...>`, `DECIMAL(p, s)`, or a base
    /// type name with optional ignored parameters (`VARCHAR(10)`); unknown names are custom types.
    pub(super) fn parse_type(&mut self) -> Result<SqlType, ParseError> {
        let word = self.peek_word(0);
        let mut ty = match word.as_deref() {
            Some("ARRAY") if self.peek_is_sym(1, Sym::Lt) => {
                self.advance();
                self.advance();
                let inner = self.parse_type()?;
                self.expect_sym(Sym::Gt)?;
                SqlType::Array(Box::new(inner))
            }
            Some("MAP") if self.peek_is_sym(1, Sym::Lt) => {
                self.advance();
                self.advance();
                let k = self.parse_type()?;
                self.expect_sym(Sym::Comma)?;
                let v = self.parse_type()?;
                self.expect_sym(Sym::Gt)?;
                SqlType::Map(Box::new(k), Box::new(v))
            }
            Some("STRUCT") if self.peek_is_sym(1, Sym::Neq) => {
                self.advance();
                self.advance();
                SqlType::Struct(Vec::new())
            }
            Some("STRUCT") if self.peek_is_sym(1, Sym::Lt) => {
                self.advance();
                self.advance();
                let mut fields = Vec::new();
                if !self.eat_sym(Sym::Gt) {
                    loop {
                        let name = self.parse_identifier()?;
                        let ty = self.parse_type()?;
                        fields.push(crate::types::StructField { name, ty });
                        if self.eat_sym(Sym::Gt) {
                            break;
                        }
                        if !self.eat_sym(Sym::Comma) {
                            return Err(self.expecting("{',', '>'}"));
                        }
                    }
                }
                SqlType::Struct(fields)
            }
            Some("DECIMAL") => {
                self.advance();
                self.expect_sym(Sym::LParen)?;
                let precision = self.parse_type_number()?;
                self.expect_sym(Sym::Comma)?;
                let scale = self.parse_type_number()?;
                self.expect_sym(Sym::RParen)?;
                SqlType::Decimal { precision, scale }
            }
            _ => {
                let quoted = matches!(self.kind(), TokKind::Word { quoted: true, .. });
                let name = self.parse_identifier()?;
                let ty = base_type(&name, quoted);
                if self.eat_sym(Sym::LParen) {
                    loop {
                        let ok = matches!(self.kind(), TokKind::Num(n) if n.bytes().all(|b| b.is_ascii_digit()))
                            || self.at_kw("STRING");
                        if !ok {
                            return Err(self.expecting("{'STRING', INTEGER_VALUE}"));
                        }
                        self.advance();
                        if self.eat_sym(Sym::RParen) {
                            break;
                        }
                        if !self.eat_sym(Sym::Comma) {
                            return Err(self.expecting("{',', ')'}"));
                        }
                    }
                }
                ty
            }
        };
        // `type ARRAY`: the postfix array form of the grammar.
        while self.at_kw("ARRAY") && !self.peek_is_sym(1, Sym::Lt) {
            self.advance();
            ty = SqlType::Array(Box::new(ty));
        }
        Ok(ty)
    }

    fn parse_type_number(&mut self) -> Result<u8, ParseError> {
        let tok = self.tok().clone();
        let TokKind::Num(text) = self.kind().clone() else {
            return Err(self.expecting("INTEGER_VALUE"));
        };
        self.advance();
        text.parse::<u8>()
            .map_err(|_| self.error_at(&tok, format!("Invalid DECIMAL precision or scale: {text}")))
    }
}

/// Maps a base type name to its type; anything else is a `CREATE TYPE` alias.
fn base_type(name: &str, quoted: bool) -> SqlType {
    let key = if quoted {
        name.to_string()
    } else {
        name.to_uppercase()
    };
    match key.as_str() {
        "BOOLEAN" => SqlType::Boolean,
        "INT" | "INTEGER" => SqlType::Int,
        "BIGINT" => SqlType::Bigint,
        "DOUBLE" => SqlType::Double,
        "STRING" | "VARCHAR" => SqlType::String,
        "BYTES" => SqlType::Bytes,
        "DATE" => SqlType::Date,
        "TIME" => SqlType::Time,
        "TIMESTAMP" => SqlType::Timestamp,
        _ => SqlType::Custom(key),
    }
}
