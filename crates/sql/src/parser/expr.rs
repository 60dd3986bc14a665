//! Expressions, following the layering of ksqlDB's grammar:
//!
//! * `expression` = `booleanExpression`: `OR` < `AND` < prefix `NOT` < `predicated`;
//! * `predicated` = one `valueExpression` with at most one predicate (comparison, `BETWEEN`, `IN`,
//!   `LIKE`, `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`) — so `a = b = c` is a syntax error;
//! * `valueExpression` (a Pratt parser): `||` < `+ -` < `* / %` < unary `- +` < `AT TIME ZONE`;
//! * `primaryExpression`: literals, `CASE`, `CAST`, constructors, calls, columns, and the postfix
//!   subscript `[i]` and dereference `->f`.
//!
//! GROUP BY, PARTITION BY and VALUES lists take value expressions only, as in ksqlDB.

use super::lexer::{Sym, Tok, TokKind};
use super::statement::time_unit;
use super::{is_reserved, ParseError, Parser};
use crate::ast::{BinaryOp, Expr, Literal, UnaryOp};

/// Binding powers of the value-expression operators.
const BP_CONCAT: u8 = 10;
const BP_ADD: u8 = 20;
const BP_MUL: u8 = 30;
const BP_UNARY: u8 = 40;
const BP_AT_TIME_ZONE: u8 = 50;

/// How deeply expressions may nest (parentheses, NOT and sign chains, lambda bodies, ...).
const MAX_DEPTH: usize = 100;

impl Parser<'_> {
    /// `expression`
    pub(super) fn parse_expr(&mut self) -> Result<Expr, ParseError> {
        self.nested(Self::parse_or)
    }

    /// Runs a parse step one nesting level deeper, refusing input nested so deeply that the
    /// recursion could exhaust the stack (ksqlDB gives up on such statements too).
    fn nested(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        if self.depth >= MAX_DEPTH {
            let tok = self.tok().clone();
            return Err(self.error_at(
                &tok,
                "Error processing statement: Statement is too large to parse. This may be caused \
                 by having too many nested expressions in the statement."
                    .to_string(),
            ));
        }
        self.depth += 1;
        let result = step(self);
        self.depth -= 1;
        result
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.parse_and()?;
        while self.eat_kw("OR") {
            let right = self.parse_and()?;
            left = binary(BinaryOp::Or, left, right);
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.parse_not()?;
        while self.eat_kw("AND") {
            let right = self.parse_not()?;
            left = binary(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn parse_not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_kw("NOT") {
            let expr = self.nested(Self::parse_not)?;
            return Ok(Expr::Unary {
                op: UnaryOp::Not,
                expr: Box::new(expr),
            });
        }
        self.parse_predicated()
    }

    /// `valueExpression predicate?`
    fn parse_predicated(&mut self) -> Result<Expr, ParseError> {
        let value = self.parse_value_expr()?;
        let cmp = match self.kind() {
            TokKind::Sym(Sym::Eq) => Some(BinaryOp::Eq),
            TokKind::Sym(Sym::Neq) => Some(BinaryOp::NotEq),
            TokKind::Sym(Sym::Lt) => Some(BinaryOp::Lt),
            TokKind::Sym(Sym::LtEq) => Some(BinaryOp::LtEq),
            TokKind::Sym(Sym::Gt) => Some(BinaryOp::Gt),
            TokKind::Sym(Sym::GtEq) => Some(BinaryOp::GtEq),
            _ => None,
        };
        if let Some(op) = cmp {
            self.advance();
            let right = self.parse_value_expr()?;
            return Ok(binary(op, value, right));
        }
        if self.at_kw("BETWEEN")
            || self.at_kw("IN")
            || self.at_kw("LIKE")
            || self.at_kw("IS")
            || self.at_kw("NOT")
        {
            return self.parse_predicate(value);
        }
        Ok(value)
    }

    /// The non-comparison predicates, after their value: `[NOT] BETWEEN`, `[NOT] IN`,
    /// `[NOT] LIKE`, `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`. (A separate function keeps the
    /// recursive path's stack frames small.)
    fn parse_predicate(&mut self, value: Expr) -> Result<Expr, ParseError> {
        let negated = self.at_kw("NOT")
            && (self.peek_is_kw(1, "BETWEEN")
                || self.peek_is_kw(1, "IN")
                || self.peek_is_kw(1, "LIKE"));
        if negated {
            self.advance();
        }
        if self.eat_kw("BETWEEN") {
            let low = self.parse_value_expr()?;
            self.expect_kw("AND")?;
            let high = self.parse_value_expr()?;
            return Ok(Expr::Between {
                expr: Box::new(value),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            });
        }
        if self.eat_kw("IN") {
            self.expect_sym(Sym::LParen)?;
            let mut list = vec![self.parse_expr()?];
            while self.eat_sym(Sym::Comma) {
                list.push(self.parse_expr()?);
            }
            self.expect_sym(Sym::RParen)?;
            return Ok(Expr::InList {
                expr: Box::new(value),
                list,
                negated,
            });
        }
        if self.eat_kw("LIKE") {
            let pattern = self.parse_value_expr()?;
            let escape = if self.eat_kw("ESCAPE") {
                let tok = self.tok().clone();
                let s = self.parse_string()?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => {
                        return Err(self.error_at(
                            &tok,
                            format!("Expected single character escape but got: {s}"),
                        ))
                    }
                }
            } else {
                None
            };
            return Ok(Expr::Like {
                expr: Box::new(value),
                pattern: Box::new(pattern),
                escape,
                negated,
            });
        }
        if self.eat_kw("IS") {
            let negated = self.eat_kw("NOT");
            if self.eat_kw("NULL") {
                return Ok(Expr::IsNull {
                    expr: Box::new(value),
                    negated,
                });
            }
            if self.eat_kw("DISTINCT") {
                self.expect_kw("FROM")?;
                let right = self.parse_value_expr()?;
                return Ok(Expr::IsDistinctFrom {
                    left: Box::new(value),
                    right: Box::new(right),
                    negated,
                });
            }
            return Err(self.expecting("{'NULL', 'DISTINCT'}"));
        }
        Ok(value)
    }

    /// `valueExpression`
    pub(super) fn parse_value_expr(&mut self) -> Result<Expr, ParseError> {
        self.parse_value(0)
    }

    fn parse_value(&mut self, min_bp: u8) -> Result<Expr, ParseError> {
        let mut left = match self.kind() {
            // `-1` is a literal in ksqlDB's grammar (`number: MINUS? INTEGER_VALUE`), which is
            // what makes `-2147483648` an INT.
            TokKind::Sym(Sym::Minus) if matches!(self.peek_kind(1), TokKind::Num(_)) => {
                self.parse_primary()?
            }
            TokKind::Sym(Sym::Minus) | TokKind::Sym(Sym::Plus) => {
                let op = if self.at_sym(Sym::Minus) {
                    UnaryOp::Minus
                } else {
                    UnaryOp::Plus
                };
                self.advance();
                let expr = self.nested(|p| p.parse_value(BP_UNARY))?;
                Expr::Unary {
                    op,
                    expr: Box::new(expr),
                }
            }
            _ => self.parse_primary()?,
        };
        loop {
            if self.at_kw("AT") {
                if BP_AT_TIME_ZONE < min_bp {
                    break;
                }
                self.advance();
                self.expect_kw("TIME")?;
                self.expect_kw("ZONE")?;
                let zone = self.parse_string()?;
                left = Expr::AtTimeZone {
                    expr: Box::new(left),
                    zone,
                };
                continue;
            }
            let (op, bp) = match self.kind() {
                TokKind::Sym(Sym::Concat) => (BinaryOp::Concat, BP_CONCAT),
                TokKind::Sym(Sym::Plus) => (BinaryOp::Add, BP_ADD),
                TokKind::Sym(Sym::Minus) => (BinaryOp::Subtract, BP_ADD),
                TokKind::Sym(Sym::Star) => (BinaryOp::Multiply, BP_MUL),
                TokKind::Sym(Sym::Slash) => (BinaryOp::Divide, BP_MUL),
                TokKind::Sym(Sym::Percent) => (BinaryOp::Modulo, BP_MUL),
                _ => break,
            };
            if bp < min_bp {
                break;
            }
            self.advance();
            let right = self.parse_value(bp + 1)?;
            left = binary(op, left, right);
        }
        Ok(left)
    }

    /// `primaryExpression`, including its postfix subscript and dereference forms.
    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.parse_primary_base()?;
        loop {
            if self.eat_sym(Sym::LBracket) {
                let index = self.parse_value_expr()?;
                self.expect_sym(Sym::RBracket)?;
                expr = Expr::Subscript {
                    base: Box::new(expr),
                    index: Box::new(index),
                };
            } else if self.at_sym(Sym::Arrow) && !self.peek_is_sym(1, Sym::Star) {
                self.advance();
                let field = self.parse_identifier()?;
                expr = Expr::Dereference {
                    base: Box::new(expr),
                    field,
                };
            } else {
                return Ok(expr);
            }
        }
    }

    fn parse_primary_base(&mut self) -> Result<Expr, ParseError> {
        let word = match self.kind() {
            TokKind::Num(_) | TokKind::Str(_) | TokKind::Sym(Sym::Minus) => {
                return Ok(Expr::Literal(self.parse_literal()?));
            }
            TokKind::Sym(Sym::LParen) => {
                self.advance();
                let e = self.parse_expr()?;
                self.expect_sym(Sym::RParen)?;
                return Ok(e);
            }
            TokKind::Word { quoted: true, .. } => return self.parse_identifier_expr(),
            TokKind::Word { value, .. } => value.to_uppercase(),
            _ => return Err(self.expecting("an expression")),
        };
        match word.as_str() {
            "NULL" | "TRUE" | "FALSE" => Ok(Expr::Literal(self.parse_literal()?)),
            "CASE" => self.parse_case(),
            "CAST" => self.parse_cast(),
            "ARRAY" if self.peek_is_sym(1, Sym::LBracket) => self.parse_array(),
            "MAP" if self.peek_is_sym(1, Sym::LParen) => self.parse_map(),
            "STRUCT" if self.peek_is_sym(1, Sym::LParen) => self.parse_struct(),
            _ if is_reserved(&word) => Err(self.expecting("an expression")),
            _ => self.parse_identifier_expr(),
        }
    }

    /// `CAST '(' expression AS type ')'`
    fn parse_cast(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        self.expect_sym(Sym::LParen)?;
        let expr = self.parse_expr()?;
        self.expect_kw("AS")?;
        let ty = self.parse_type()?;
        self.expect_sym(Sym::RParen)?;
        Ok(Expr::Cast {
            expr: Box::new(expr),
            ty,
        })
    }

    /// `ARRAY '[' (expression (',' expression)*)? ']'`
    fn parse_array(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        self.advance();
        let mut items = Vec::new();
        if self.eat_sym(Sym::RBracket) {
            return Ok(Expr::Array(items));
        }
        loop {
            items.push(self.parse_expr()?);
            if self.eat_sym(Sym::RBracket) {
                return Ok(Expr::Array(items));
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ']'}"));
            }
        }
    }

    /// `MAP '(' (expression ':=' expression (',' ...)*)? ')'`
    fn parse_map(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        self.advance();
        let mut entries = Vec::new();
        if self.eat_sym(Sym::RParen) {
            return Ok(Expr::Map(entries));
        }
        loop {
            let k = self.parse_expr()?;
            self.expect_sym(Sym::Assign)?;
            let v = self.parse_expr()?;
            entries.push((k, v));
            if self.eat_sym(Sym::RParen) {
                return Ok(Expr::Map(entries));
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ')'}"));
            }
        }
    }

    /// `STRUCT '(' (identifier ':=' expression (',' ...)*)? ')'`
    fn parse_struct(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        self.advance();
        let mut fields = Vec::new();
        if self.eat_sym(Sym::RParen) {
            return Ok(Expr::Struct(fields));
        }
        loop {
            let name = self.parse_identifier()?;
            self.expect_sym(Sym::Assign)?;
            let v = self.parse_expr()?;
            fields.push((name, v));
            if self.eat_sym(Sym::RParen) {
                return Ok(Expr::Struct(fields));
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ')'}"));
            }
        }
    }

    /// A column reference (`c`, `t.c`), a lambda variable, or a function call.
    fn parse_identifier_expr(&mut self) -> Result<Expr, ParseError> {
        let name = self.parse_identifier()?;
        if self.eat_sym(Sym::LParen) {
            return self.parse_call(name);
        }
        if self.at_sym(Sym::Period) && self.peek_is_identifier(1) {
            self.advance();
            let column = self.parse_identifier()?;
            return Ok(Expr::Column {
                qualifier: Some(name),
                name: column,
            });
        }
        if self.lambda_params.contains(&name) {
            return Ok(Expr::LambdaVariable(name));
        }
        Ok(Expr::column(name))
    }

    /// The arguments of a call, after its `(`: `*`, or expressions / time units followed by
    /// lambdas.
    fn parse_call(&mut self, name: String) -> Result<Expr, ParseError> {
        if self.at_sym(Sym::Star) && self.peek_is_sym(1, Sym::RParen) {
            self.advance();
            self.advance();
            return Ok(Expr::Function {
                name,
                args: Vec::new(),
                star: true,
            });
        }
        let mut args = Vec::new();
        if self.eat_sym(Sym::RParen) {
            return Ok(Expr::Function {
                name,
                args,
                star: false,
            });
        }
        let mut seen_lambda = false;
        loop {
            if self.lambda_ahead() {
                seen_lambda = true;
                args.push(self.parse_lambda()?);
            } else if seen_lambda {
                return Err(self.expecting("a lambda function"));
            } else if let Some(unit) = self.time_unit_argument() {
                // `functionArgument: windowUnit`, e.g. TIMESTAMPADD(SECONDS, 1, ts): passed on
                // as an unqualified column named after the unit, which the planner resolves.
                self.advance();
                args.push(Expr::column(unit));
            } else {
                args.push(self.parse_expr()?);
            }
            if self.eat_sym(Sym::RParen) {
                return Ok(Expr::Function {
                    name,
                    args,
                    star: false,
                });
            }
            if !self.eat_sym(Sym::Comma) {
                return Err(self.expecting("{',', ')'}"));
            }
        }
    }

    /// A time unit standing alone as a function argument.
    fn time_unit_argument(&self) -> Option<String> {
        let word = self.peek_word(0)?;
        let alone = matches!(self.peek_kind(1), TokKind::Sym(Sym::Comma | Sym::RParen));
        (alone && time_unit(&word).is_some()).then_some(word)
    }

    /// Whether a lambda starts here: `x =>` or `(x, y) =>`.
    fn lambda_ahead(&self) -> bool {
        if self.peek_is_identifier(0) && self.peek_is_sym(1, Sym::Lambda) {
            return true;
        }
        if !self.at_sym(Sym::LParen) {
            return false;
        }
        let mut n = 1;
        loop {
            if !self.peek_is_identifier(n) {
                return false;
            }
            n += 1;
            if self.peek_is_sym(n, Sym::Comma) {
                n += 1;
            } else {
                return self.peek_is_sym(n, Sym::RParen) && self.peek_is_sym(n + 1, Sym::Lambda);
            }
        }
    }

    /// `identifier '=>' expression | '(' identifier (',' identifier)* ')' '=>' expression`; inside
    /// the body, references to the parameters become [`Expr::LambdaVariable`].
    fn parse_lambda(&mut self) -> Result<Expr, ParseError> {
        let mut params = Vec::new();
        if self.eat_sym(Sym::LParen) {
            loop {
                params.push(self.parse_identifier()?);
                if self.eat_sym(Sym::RParen) {
                    break;
                }
                self.expect_sym(Sym::Comma)?;
            }
        } else {
            params.push(self.parse_identifier()?);
        }
        self.expect_sym(Sym::Lambda)?;
        let depth = self.lambda_params.len();
        self.lambda_params.extend(params.iter().cloned());
        let body = self.parse_expr();
        self.lambda_params.truncate(depth);
        Ok(Expr::Lambda {
            params,
            body: Box::new(body?),
        })
    }

    /// `CASE valueExpression? (WHEN e THEN e)+ (ELSE e)? END`
    fn parse_case(&mut self) -> Result<Expr, ParseError> {
        self.advance();
        let operand = if self.at_kw("WHEN") {
            None
        } else {
            Some(Box::new(self.parse_value_expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw("WHEN") {
            let cond = self.parse_expr()?;
            self.expect_kw("THEN")?;
            let result = self.parse_expr()?;
            whens.push((cond, result));
        }
        if whens.is_empty() {
            return Err(self.missing("'WHEN'"));
        }
        let else_result = if self.eat_kw("ELSE") {
            Some(Box::new(self.parse_expr()?))
        } else {
            None
        };
        self.expect_kw("END")?;
        Ok(Expr::Case {
            operand,
            whens,
            else_result,
        })
    }

    /// ksqlDB's `literal`: `NULL`, numbers (with an optional leading `-`), booleans and strings.
    pub(super) fn parse_literal(&mut self) -> Result<Literal, ParseError> {
        let tok = self.tok().clone();
        match &tok.kind {
            TokKind::Str(s) => {
                let s = s.clone();
                self.advance();
                Ok(Literal::String(s))
            }
            TokKind::Word {
                value,
                quoted: false,
            } => {
                let lit = match value.to_uppercase().as_str() {
                    "NULL" => Literal::Null,
                    "TRUE" => Literal::Boolean(true),
                    "FALSE" => Literal::Boolean(false),
                    _ => return Err(self.expecting("a literal")),
                };
                self.advance();
                Ok(lit)
            }
            TokKind::Sym(Sym::Minus) => {
                let TokKind::Num(text) = self.peek_kind(1).clone() else {
                    return Err(self.expecting("a literal"));
                };
                self.advance();
                self.advance();
                self.number_literal(&tok, &format!("-{text}"))
            }
            TokKind::Num(text) => {
                let text = text.clone();
                self.advance();
                self.number_literal(&tok, &text)
            }
            _ => Err(self.expecting("a literal")),
        }
    }

    /// Types a numeric literal as ksqlDB does: exponent → DOUBLE, decimal point → DECIMAL,
    /// otherwise INT/BIGINT. Errors use ksqlDB's column convention for these messages, which
    /// is one past the literal's 1-based column.
    fn number_literal(&self, tok: &Tok, text: &str) -> Result<Literal, ParseError> {
        let err = |message: String| ParseError {
            line: tok.line,
            column: tok.col + 1,
            message,
        };
        if text.contains(['e', 'E']) {
            let v: f64 = text
                .parse()
                .map_err(|_| err(format!("Invalid numeric literal: {text}")))?;
            if v.is_infinite() {
                return Err(err(format!("Number overflows DOUBLE: {text}")));
            }
            if v.is_nan() {
                return Err(err(format!("Not a number: {text}")));
            }
            Ok(Literal::Double(v))
        } else if text.contains('.') {
            Ok(Literal::Decimal(text.to_string()))
        } else {
            text.parse::<i64>()
                .map(Literal::Integer)
                .map_err(|_| err(format!("Invalid numeric literal: {text}")))
        }
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}
