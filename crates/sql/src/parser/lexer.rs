//! Tokens for the ksqlDB grammar, produced by sqlparser's tokenizer with a small custom dialect.
//!
//! sqlparser's tokenizer already knows the operators ksqlDB needs (`->`, `=>`, `:=`, `||`, `<>`,
//! `!=`), `''`-escaped strings, back-tick and double-quote identifiers with doubled-quote escapes,
//! and `--` / `/* */` comments. The dialect below narrows identifiers to ksqlDB's lexer rules
//! (`[A-Z_][A-Z0-9_@]*`, plus digit-led `DIGIT_IDENTIFIER`s such as `1ABC`). What remains is done
//! here: whitespace and comments are dropped, `>>` / `<<` are split (ksqlDB has no shift operators,
//! and `ARRAY<ARRAY<INT>>` must close two types), and every token gets its byte range so a
//! statement's exact source text can be cut out of the script.

use super::ParseError;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// ksqlDB's lexical rules for identifiers, expressed as a sqlparser dialect.
#[derive(Debug)]
struct KsqlDialect;

impl Dialect for KsqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_' || ch == '@'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"' || ch == '`'
    }

    /// ksqlDB's `DIGIT_IDENTIFIER`: `1ABC` is one identifier, not `1` followed by `ABC`.
    fn supports_numeric_prefix(&self) -> bool {
        true
    }
}

/// Punctuation and operators of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    Comma,
    Period,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Semi,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Concat,
    Eq,
    Neq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `->`
    Arrow,
    /// `=>`
    Lambda,
    /// `:=`
    Assign,
}

impl Sym {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Sym::Comma => ",",
            Sym::Period => ".",
            Sym::LParen => "(",
            Sym::RParen => ")",
            Sym::LBracket => "[",
            Sym::RBracket => "]",
            Sym::Semi => ";",
            Sym::Plus => "+",
            Sym::Minus => "-",
            Sym::Star => "*",
            Sym::Slash => "/",
            Sym::Percent => "%",
            Sym::Concat => "||",
            Sym::Eq => "=",
            Sym::Neq => "<>",
            Sym::Lt => "<",
            Sym::LtEq => "<=",
            Sym::Gt => ">",
            Sym::GtEq => ">=",
            Sym::Arrow => "->",
            Sym::Lambda => "=>",
            Sym::Assign => ":=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokKind {
    /// An identifier or keyword. `value` is the source text for unquoted words and the unescaped
    /// content for quoted ones.
    Word {
        value: String,
        quoted: bool,
    },
    /// A single-quoted string literal, unescaped.
    Str(String),
    /// A numeric literal as written (`12`, `1.5`, `.5`, `1.5E3`).
    Num(String),
    Sym(Sym),
    /// Anything the grammar has no use for (`#`, `::`, `$1`, ...): always a syntax error.
    Other,
    Eof,
}

/// A token with its 1-based position and its byte range in the script.
#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub kind: TokKind,
    pub line: u64,
    pub col: u64,
    pub start: usize,
    pub end: usize,
}

/// Converts sqlparser's (line, column) locations into byte offsets. Tokens arrive in order, so the
/// cursor only moves forward and the whole conversion is linear in the script length.
struct OffsetCursor<'a> {
    sql: &'a str,
    line: u64,
    col: u64,
    byte: usize,
}

impl<'a> OffsetCursor<'a> {
    fn new(sql: &'a str) -> Self {
        OffsetCursor {
            sql,
            line: 1,
            col: 1,
            byte: 0,
        }
    }

    fn seek(&mut self, line: u64, col: u64) -> usize {
        while (self.line, self.col) < (line, col) {
            let Some(ch) = self.sql[self.byte..].chars().next() else {
                break;
            };
            self.byte += ch.len_utf8();
            if ch == '\n' {
                self.line += 1;
                self.col = 1;
            } else if ch == '\r' {
                // sqlparser counts `\r\n` (and a lone `\r`) as one line break.
                if self.sql[self.byte..].starts_with('\n') {
                    self.byte += 1;
                }
                self.line += 1;
                self.col = 1;
            } else {
                self.col += 1;
            }
        }
        self.byte
    }
}

/// Tokenizes a script. The returned vector always ends with an `Eof` token.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Tok>, ParseError> {
    let dialect = KsqlDialect;
    let raw = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| ParseError {
            line: e.location.line.max(1),
            column: e.location.column.max(1),
            message: format!("Syntax Error\n{}", e.message),
        })?;
    let mut cursor = OffsetCursor::new(sql);
    let mut out = Vec::with_capacity(raw.len() + 1);
    for t in raw {
        let (line, col) = (t.span.start.line, t.span.start.column);
        let kind = match t.token {
            Token::Whitespace(_) => continue,
            Token::Word(w) => TokKind::Word {
                value: w.value,
                quoted: w.quote_style.is_some(),
            },
            Token::SingleQuotedString(s) => TokKind::Str(s),
            Token::Number(n, _) => TokKind::Num(n),
            Token::Comma => TokKind::Sym(Sym::Comma),
            Token::Period => TokKind::Sym(Sym::Period),
            Token::LParen => TokKind::Sym(Sym::LParen),
            Token::RParen => TokKind::Sym(Sym::RParen),
            Token::LBracket => TokKind::Sym(Sym::LBracket),
            Token::RBracket => TokKind::Sym(Sym::RBracket),
            Token::SemiColon => TokKind::Sym(Sym::Semi),
            Token::Plus => TokKind::Sym(Sym::Plus),
            Token::Minus => TokKind::Sym(Sym::Minus),
            Token::Mul => TokKind::Sym(Sym::Star),
            Token::Div => TokKind::Sym(Sym::Slash),
            Token::Mod => TokKind::Sym(Sym::Percent),
            Token::StringConcat => TokKind::Sym(Sym::Concat),
            Token::Eq => TokKind::Sym(Sym::Eq),
            Token::Neq => TokKind::Sym(Sym::Neq),
            Token::Lt => TokKind::Sym(Sym::Lt),
            Token::LtEq => TokKind::Sym(Sym::LtEq),
            Token::Gt => TokKind::Sym(Sym::Gt),
            Token::GtEq => TokKind::Sym(Sym::GtEq),
            Token::Arrow => TokKind::Sym(Sym::Arrow),
            Token::RArrow => TokKind::Sym(Sym::Lambda),
            Token::Assignment => TokKind::Sym(Sym::Assign),
            Token::ShiftRight | Token::ShiftLeft => {
                let sym = if t.token == Token::ShiftRight {
                    Sym::Gt
                } else {
                    Sym::Lt
                };
                let start = cursor.seek(line, col);
                for i in 0..2 {
                    out.push(Tok {
                        kind: TokKind::Sym(sym),
                        line,
                        col: col + i,
                        start: start + i as usize,
                        end: start + i as usize + 1,
                    });
                }
                continue;
            }
            _ => TokKind::Other,
        };
        let start = cursor.seek(line, col);
        let end = cursor.seek(t.span.end.line, t.span.end.column);
        out.push(Tok {
            kind,
            line,
            col,
            start,
            end,
        });
    }
    cursor.seek(u64::MAX, u64::MAX);
    let (line, col) = (cursor.line, cursor.col);
    out.push(Tok {
        kind: TokKind::Eof,
        line,
        col,
        start: sql.len(),
        end: sql.len(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<TokKind> {
        tokenize(sql).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn word(v: &str, quoted: bool) -> TokKind {
        TokKind::Word {
            value: v.into(),
            quoted,
        }
    }

    #[test]
    fn operators() {
        assert_eq!(
            kinds("-> => := || != <> >= <="),
            vec![
                TokKind::Sym(Sym::Arrow),
                TokKind::Sym(Sym::Lambda),
                TokKind::Sym(Sym::Assign),
                TokKind::Sym(Sym::Concat),
                TokKind::Sym(Sym::Neq),
                TokKind::Sym(Sym::Neq),
                TokKind::Sym(Sym::GtEq),
                TokKind::Sym(Sym::LtEq),
                TokKind::Eof
            ]
        );
    }

    #[test]
    fn identifiers_and_strings() {
        assert_eq!(
            kinds("a@b `x``y` \"q\"\"r\" 'it''s' 1abc"),
            vec![
                word("a@b", false),
                word("x`y", true),
                word("q\"r", true),
                TokKind::Str("it's".into()),
                word("1abc", false),
                TokKind::Eof
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("1 1.5 .5 1.5E3 1e-2"),
            vec![
                TokKind::Num("1".into()),
                TokKind::Num("1.5".into()),
                TokKind::Num(".5".into()),
                TokKind::Num("1.5E3".into()),
                TokKind::Num("1e-2".into()),
                TokKind::Eof
            ]
        );
    }

    #[test]
    fn shifts_are_split_and_positions_are_bytes() {
        let toks = tokenize("é<<x>>").unwrap();
        let syms: Vec<_> = toks
            .iter()
            .map(|t| (t.kind.clone(), t.col, t.start))
            .collect();
        assert_eq!(syms[0].0, TokKind::Other);
        assert_eq!(syms[1], (TokKind::Sym(Sym::Lt), 2, 2));
        assert_eq!(syms[2], (TokKind::Sym(Sym::Lt), 3, 3));
        assert_eq!(syms[3], (word("x", false), 4, 4));
        assert_eq!(syms[4], (TokKind::Sym(Sym::Gt), 5, 5));
        assert_eq!(syms[5], (TokKind::Sym(Sym::Gt), 6, 6));
    }

    #[test]
    fn comments_are_dropped() {
        let toks = tokenize("-- hi\n/* x */ a -- y").unwrap();
        assert_eq!(toks.len(), 2);
        assert_eq!(
            (toks[0].line, toks[0].col, toks[0].start, toks[0].end),
            (2, 9, 14, 15)
        );
    }
}
