//! Splitting typed or scripted text into `;`-terminated statements, the way the ksql CLI does:
//! a `;` inside a string literal, a quoted identifier or a comment does not end a statement.
//!
//! This is deliberately lexical (no parsing): the CLI only needs to know where statements end,
//! whether the input so far is complete, and the first words of each statement (to handle its
//! local commands and to route queries to `/query`). The server parses every statement
//! itself and reports syntax errors with ksqlDB's messages.

/// One statement of a script, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    pub line: usize,
}

/// The result of splitting: complete statements and the unterminated rest (trimmed; empty when
/// the input ended with a `;` or held only blanks and comments).
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    pub statements: Vec<Piece>,
    pub rest: Option<Piece>,
}

/// Splits `text` at every `;` outside literals, quoted identifiers and comments.
pub fn split(text: &str) -> Split {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Split::default();
    let mut current = String::new();
    let mut start_line: Option<usize> = None;
    let mut line = 1usize;
    let mut i = 0;
    // Whether `current` holds anything besides blanks and comments.
    let mut has_content = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' | '`' => {
                // A quoted run: the same quote doubled is an escaped quote.
                if start_line.is_none() {
                    start_line = Some(line);
                }
                has_content = true;
                current.push(c);
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    current.push(d);
                    if d == '\n' {
                        line += 1;
                    }
                    i += 1;
                    if d == c {
                        if chars.get(i) == Some(&c) {
                            current.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
                continue;
            }
            // Comments before a statement are dropped (so the statement's text starts with
            // its first word); comments inside it are kept.
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    if has_content {
                        current.push(chars[i]);
                    }
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                let start = i;
                i += 2;
                while i < chars.len() {
                    if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        i += 2;
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if has_content {
                    current.extend(&chars[start..i.min(chars.len())]);
                }
                continue;
            }
            ';' => {
                current.push(';');
                if has_content {
                    out.statements.push(Piece {
                        text: current.trim().to_string(),
                        line: start_line.unwrap_or(line),
                    });
                }
                current.clear();
                has_content = false;
                start_line = None;
            }
            '\n' => {
                line += 1;
                current.push(c);
            }
            c => {
                if !c.is_whitespace() {
                    has_content = true;
                    if start_line.is_none() {
                        start_line = Some(line);
                    }
                }
                current.push(c);
            }
        }
        i += 1;
    }
    if has_content {
        out.rest = Some(Piece {
            text: current.trim().to_string(),
            line: start_line.unwrap_or(line),
        });
    }
    out
}

/// The first `n` whitespace-separated words of a statement outside comments, upper-cased (for
/// recognising the statement's kind, not for reading its arguments).
pub fn leading_words(text: &str, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() && words.len() < n {
        let c = chars[i];
        if c.is_whitespace() || c == ';' {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != ';' {
                i += 1;
            }
            words.push(chars[start..i].iter().collect::<String>().to_uppercase());
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Split) -> Vec<&str> {
        s.statements.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let s = split(
            "CREATE STREAM s (a STRING) WITH (kafka_topic='a;b');\n\
             -- a comment; still a comment\n\
             SELECT `x;y`, \"q;\" FROM s /* ; */ EMIT CHANGES;\n\
             INSERT INTO s VALUES ('it''s; fine');",
        );
        assert_eq!(
            texts(&s),
            vec![
                "CREATE STREAM s (a STRING) WITH (kafka_topic='a;b');",
                "SELECT `x;y`, \"q;\" FROM s /* ; */ EMIT CHANGES;",
                "INSERT INTO s VALUES ('it''s; fine');",
            ]
        );
        assert_eq!(
            s.statements.iter().map(|p| p.line).collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        assert_eq!(s.rest, None);
    }

    #[test]
    fn unterminated_input_is_the_rest() {
        let s = split("SHOW STREAMS; CREATE STREAM x (\n  a INT");
        assert_eq!(texts(&s), vec!["SHOW STREAMS;"]);
        assert_eq!(
            s.rest,
            Some(Piece {
                text: "CREATE STREAM x (\n  a INT".into(),
                line: 1
            })
        );
        // An open string keeps the statement open even past a `;`.
        let s = split("INSERT INTO s VALUES ('a;\n");
        assert!(s.statements.is_empty());
        assert!(s.rest.is_some());
        // Comments before a statement are not part of it.
        let s = split("-- deploy\n/* v2 */ DEFINE x = 'a'; -- done\n");
        assert_eq!(texts(&s), vec!["DEFINE x = 'a';"]);
        assert_eq!(s.statements[0].line, 2);
        // Blanks and comments alone are nothing.
        assert_eq!(split("  -- note\n /* x */ ;; \n"), Split::default());
    }

    #[test]
    fn leading_words_skip_comments() {
        assert_eq!(
            leading_words("-- hi\n /* x */ select * from s;", 2),
            vec!["SELECT", "*"]
        );
        assert_eq!(leading_words("exit", 3), vec!["EXIT"]);
        assert_eq!(
            leading_words("Run Script 'f';", 3),
            vec!["RUN", "SCRIPT", "'F'"]
        );
    }
}
