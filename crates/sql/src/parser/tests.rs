//! Parser tests: statements, identifiers, literals, precedence, lambdas, errors, and the QTT corpus.

use super::*;
use crate::ast::*;
use crate::types::{SqlType, StructField};

fn one(sql: &str) -> Statement {
    let mut stmts = parse_statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(stmts.len(), 1, "{sql}");
    stmts.remove(0).statement
}

fn query(sql: &str) -> Query {
    match one(sql) {
        Statement::Query(q) => *q,
        other => panic!("not a query: {other:?}"),
    }
}

fn expr(sql: &str) -> Expr {
    parse_expression(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn col(name: &str) -> Expr {
    Expr::column(name)
}

fn int(i: i64) -> Expr {
    Expr::Literal(Literal::Integer(i))
}

fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(l),
        right: Box::new(r),
    }
}

fn err(sql: &str) -> ParseError {
    match parse_statements(sql) {
        Ok(s) => panic!("{sql} parsed: {s:?}"),
        Err(e) => e,
    }
}

fn secs(value: u64) -> Duration {
    Duration {
        value,
        unit: TimeUnit::Seconds,
    }
}

// ----- scripts and statement text -----

#[test]
fn statement_text_and_positions() {
    let sql = "  -- comment\n  SET 'a'='b';\n/* x */ SHOW STREAMS ;  DROP TABLE t";
    let stmts = parse_statements(sql).unwrap();
    assert_eq!(stmts.len(), 3);
    assert_eq!(stmts[0].text, "SET 'a'='b';");
    assert_eq!((stmts[0].line, stmts[0].column), (2, 3));
    assert_eq!(stmts[1].text, "SHOW STREAMS ;");
    assert_eq!((stmts[1].line, stmts[1].column), (3, 9));
    assert_eq!(stmts[2].text, "DROP TABLE t");
    assert_eq!(
        stmts[2].statement,
        Statement::DropSource {
            kind: SourceKind::Table,
            name: "T".into(),
            if_exists: false,
            delete_topic: false
        }
    );
}

#[test]
fn empty_script_and_stray_semicolons() {
    assert!(parse_statements("").unwrap().is_empty());
    assert!(parse_statements(" ; -- x\n;").unwrap().is_empty());
}

#[test]
fn missing_semicolon_between_statements_is_an_error() {
    let e = err("SHOW STREAMS SHOW TABLES;");
    assert_eq!((e.line, e.column), (1, 14));
    assert!(
        e.message.starts_with("Syntax Error\nExpecting ';'"),
        "{}",
        e.message
    );
}

// ----- CREATE -----

#[test]
fn create_stream_with_columns_and_properties() {
    let s = one(
        "create or replace stream IF NOT EXISTS s (id BIGINT KEY, `Name` varchar, \
         h ARRAY<STRUCT<`key` STRING, value BYTES>> HEADERS, h2 BYTES HEADER('k'), \
         m MAP<STRING, ARRAY<DECIMAL(4, 2)>>, t my_type) \
         with (kafka_topic='t', value_format='JSON', partitions=2, \"quoted\"=true, 'x.y'=-1.5);",
    );
    let Statement::CreateSource(c) = s else {
        panic!("{s:?}")
    };
    assert_eq!(c.kind, SourceKind::Stream);
    assert!(c.or_replace && c.if_not_exists && !c.is_source);
    assert_eq!(c.name, "S");
    let names: Vec<_> = c.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ID", "Name", "H", "H2", "M", "T"]);
    assert_eq!(c.columns[0].constraint, ColumnConstraint::Key);
    assert_eq!(c.columns[1].ty, SqlType::String);
    assert_eq!(
        c.columns[2].ty,
        SqlType::Array(Box::new(SqlType::Struct(vec![
            StructField::new("key", SqlType::String),
            StructField::new("VALUE", SqlType::Bytes),
        ])))
    );
    assert_eq!(c.columns[2].constraint, ColumnConstraint::Headers);
    assert_eq!(
        c.columns[3].constraint,
        ColumnConstraint::Header("k".into())
    );
    assert_eq!(
        c.columns[4].ty,
        SqlType::Map(
            Box::new(SqlType::String),
            Box::new(SqlType::Array(Box::new(SqlType::decimal(4, 2))))
        )
    );
    assert_eq!(c.columns[5].ty, SqlType::Custom("MY_TYPE".into()));
    assert_eq!(
        c.properties.0,
        vec![
            ("KAFKA_TOPIC".to_string(), Literal::String("t".into())),
            ("VALUE_FORMAT".to_string(), Literal::String("JSON".into())),
            ("PARTITIONS".to_string(), Literal::Integer(2)),
            ("quoted".to_string(), Literal::Boolean(true)),
            ("x.y".to_string(), Literal::Decimal("-1.5".into())),
        ]
    );
    assert_eq!(
        c.properties.get("kafka_topic"),
        Some(&Literal::String("t".into()))
    );
}

#[test]
fn create_source_table_without_columns() {
    let Statement::CreateSource(c) =
        one("CREATE SOURCE TABLE t (k INT PRIMARY KEY) WITH (kafka_topic='x')")
    else {
        panic!()
    };
    assert!(c.is_source);
    assert_eq!(c.kind, SourceKind::Table);
    assert_eq!(c.columns[0].constraint, ColumnConstraint::PrimaryKey);
    let Statement::CreateSource(c) = one("CREATE TABLE t WITH (kafka_topic='x', format='AVRO');")
    else {
        panic!()
    };
    assert!(c.columns.is_empty());
}

#[test]
fn create_as_select() {
    let Statement::CreateAsSelect(c) = one(
        "CREATE TABLE IF NOT EXISTS out WITH (value_format='AVRO') AS SELECT k, COUNT(*) AS cnt \
         FROM s WINDOW TUMBLING (SIZE 10 SECONDS, RETENTION 2 DAYS, GRACE PERIOD 1 MINUTE) \
         WHERE v > 0 GROUP BY k HAVING COUNT(*) > 1 EMIT FINAL;",
    ) else {
        panic!()
    };
    assert_eq!(
        (c.kind, c.name.as_str(), c.if_not_exists),
        (SourceKind::Table, "OUT", true)
    );
    let q = c.query;
    assert_eq!(q.select.len(), 2);
    assert_eq!(
        q.select[1],
        SelectItem::Expr {
            expr: Expr::Function {
                name: "COUNT".into(),
                args: vec![],
                star: true
            },
            alias: Some("CNT".into())
        }
    );
    assert_eq!(
        q.window,
        Some(WindowSpec {
            kind: WindowKind::Tumbling { size: secs(10) },
            retention: Some(Duration {
                value: 2,
                unit: TimeUnit::Days
            }),
            grace: Some(Duration {
                value: 1,
                unit: TimeUnit::Minutes
            }),
        })
    );
    assert_eq!(q.group_by, vec![col("K")]);
    assert!(q.having.is_some());
    assert_eq!(q.emit, Some(Emit::Final));
}

#[test]
fn create_type_and_connectors() {
    assert_eq!(
        one("CREATE TYPE IF NOT EXISTS address AS STRUCT<number INTEGER, street VARCHAR>;"),
        Statement::CreateType {
            name: "ADDRESS".into(),
            ty: SqlType::Struct(vec![
                StructField::new("NUMBER", SqlType::Int),
                StructField::new("STREET", SqlType::String)
            ]),
            if_not_exists: true
        }
    );
    assert_eq!(
        one("DROP TYPE IF EXISTS address;"),
        Statement::DropType {
            name: "ADDRESS".into(),
            if_exists: true
        }
    );
    let Statement::CreateConnector {
        name,
        source,
        if_not_exists,
        properties,
    } = one("CREATE SOURCE CONNECTOR `jdbc` WITH ('connector.class'='X', \"tasks.max\"='1');")
    else {
        panic!()
    };
    assert_eq!(
        (name.as_str(), source, if_not_exists),
        ("jdbc", true, false)
    );
    assert_eq!(properties.0[0].0, "connector.class");
    assert_eq!(properties.0[1].0, "tasks.max");
    assert!(matches!(
        one("CREATE SINK CONNECTOR IF NOT EXISTS c WITH ('a'='b')"),
        Statement::CreateConnector {
            source: false,
            if_not_exists: true,
            ..
        }
    ));
    assert_eq!(
        one("DROP CONNECTOR IF EXISTS c"),
        Statement::DropConnector {
            name: "C".into(),
            if_exists: true
        }
    );
}

// ----- DML -----

#[test]
fn insert_statements() {
    let Statement::InsertInto {
        target,
        properties,
        query,
    } = one("INSERT INTO out WITH (QUERY_ID='q1') SELECT * FROM s EMIT CHANGES;")
    else {
        panic!()
    };
    assert_eq!(target, "OUT");
    assert_eq!(
        properties.get("QUERY_ID"),
        Some(&Literal::String("q1".into()))
    );
    assert_eq!(query.select, vec![SelectItem::Wildcard]);
    assert_eq!(
        one("INSERT INTO s (a, `b`) VALUES (1, 'x');"),
        Statement::InsertValues {
            target: "S".into(),
            columns: Some(vec!["A".into(), "b".into()]),
            values: vec![int(1), Expr::Literal(Literal::String("x".into()))]
        }
    );
    assert_eq!(
        one("INSERT INTO s VALUES ();"),
        Statement::InsertValues {
            target: "S".into(),
            columns: None,
            values: vec![]
        }
    );
}

#[test]
fn alter_and_drop() {
    assert_eq!(
        one("ALTER STREAM s ADD COLUMN c1 INT, ADD c2 ARRAY<STRING>, ADD COLUMN INT;"),
        Statement::AlterSource {
            kind: SourceKind::Stream,
            name: "S".into(),
            add_columns: vec![
                ColumnDef {
                    name: "C1".into(),
                    ty: SqlType::Int,
                    constraint: ColumnConstraint::None
                },
                ColumnDef {
                    name: "C2".into(),
                    ty: SqlType::Array(Box::new(SqlType::String)),
                    constraint: ColumnConstraint::None
                },
                ColumnDef {
                    name: "COLUMN".into(),
                    ty: SqlType::Int,
                    constraint: ColumnConstraint::None
                },
            ]
        }
    );
    assert_eq!(
        one("DROP STREAM IF EXISTS s DELETE TOPIC;"),
        Statement::DropSource {
            kind: SourceKind::Stream,
            name: "S".into(),
            if_exists: true,
            delete_topic: true
        }
    );
}

// ----- queries -----

#[test]
fn joins_and_aliases() {
    let q = query(
        "SELECT a.id, b.* FROM s1 AS a LEFT OUTER JOIN s2 b WITHIN (1 SECOND, 2 SECONDS) GRACE \
         PERIOD 3 SECONDS ON a.id = b.id INNER JOIN t3 ON a.x = t3.x FULL JOIN t4 ON TRUE \
         RIGHT JOIN t5 WITHIN 5 SECONDS ON a.y = t5.y EMIT CHANGES LIMIT 10;",
    );
    assert_eq!(
        q.select[0],
        SelectItem::Expr {
            expr: Expr::Column {
                qualifier: Some("A".into()),
                name: "ID".into()
            },
            alias: None
        }
    );
    assert_eq!(q.select[1], SelectItem::QualifiedWildcard("B".into()));
    assert_eq!(
        q.from.source,
        AliasedSource {
            name: "S1".into(),
            alias: Some("A".into())
        }
    );
    let kinds: Vec<_> = q.from.joins.iter().map(|j| j.kind).collect();
    assert_eq!(
        kinds,
        [
            JoinKind::Left,
            JoinKind::Inner,
            JoinKind::Full,
            JoinKind::Right
        ]
    );
    assert_eq!(q.from.joins[0].source.alias.as_deref(), Some("B"));
    assert_eq!(
        q.from.joins[0].within,
        Some(Within {
            before: secs(1),
            after: secs(2)
        })
    );
    assert_eq!(q.from.joins[0].grace, Some(secs(3)));
    assert_eq!(
        q.from.joins[3].within,
        Some(Within {
            before: secs(5),
            after: secs(5)
        })
    );
    assert_eq!(q.emit, Some(Emit::Changes));
    assert_eq!(q.limit, Some(10));
}

#[test]
fn non_reserved_words_as_alias_versus_clauses() {
    let q = query("SELECT * FROM s PARTITION BY x;");
    assert_eq!(q.from.source.alias, None);
    assert_eq!(q.partition_by, vec![col("X")]);
    let q = query("SELECT * FROM s EMIT CHANGES;");
    assert_eq!(q.from.source.alias, None);
    let q = query("SELECT * FROM s session EMIT CHANGES;");
    assert_eq!(q.from.source.alias.as_deref(), Some("SESSION"));
}

#[test]
fn windows() {
    let q = query(
        "SELECT * FROM s WINDOW HOPPING (SIZE 30 SECONDS, ADVANCE BY 10 SECONDS) GROUP BY k;",
    );
    assert_eq!(
        q.window.unwrap().kind,
        WindowKind::Hopping {
            size: secs(30),
            advance: secs(10)
        }
    );
    let q = query(
        "SELECT * FROM s WINDOW SESSION (5 MINUTES, GRACE PERIOD 0 MILLISECONDS) GROUP BY k;",
    );
    let w = q.window.unwrap();
    assert_eq!(
        w.kind,
        WindowKind::Session {
            gap: Duration {
                value: 5,
                unit: TimeUnit::Minutes
            }
        }
    );
    assert_eq!(
        w.grace,
        Some(Duration {
            value: 0,
            unit: TimeUnit::Milliseconds
        })
    );
}

#[test]
fn group_by_forms() {
    assert_eq!(
        query("SELECT * FROM s GROUP BY (a, b);").group_by,
        vec![col("A"), col("B")]
    );
    assert_eq!(query("SELECT * FROM s GROUP BY ();").group_by, vec![]);
    assert_eq!(
        query("SELECT * FROM s GROUP BY (a) + 1, b;").group_by,
        vec![bin(BinaryOp::Add, col("A"), int(1)), col("B")]
    );
    assert_eq!(
        query("SELECT * FROM s GROUP BY (a);").group_by,
        vec![col("A")]
    );
    let e = err("CREATE STREAM x (i INT);\nCREATE TABLE OUTPUT AS SELECT f1, f2, COUNT(*) FROM TEST GROUP BY f3, (f2, f1);");
    assert!(
        e.to_string()
            .contains("line 2:74: Syntax Error\nmissing ')' at ','"),
        "{e}"
    );
    let e = err("CREATE TABLE OUTPUT AS SELECT COUNT(*) FROM TEST GROUP BY DATA AND ID;");
    assert!(e.to_string().contains("Syntax Error"), "{e}");
}

#[test]
fn struct_wildcard_select_item() {
    let q = query("SELECT v1->a->*, I.`V1`->* FROM INPUT I;");
    assert_eq!(
        q.select[0],
        SelectItem::StructWildcard(Expr::Dereference {
            base: Box::new(col("V1")),
            field: "A".into()
        })
    );
    assert_eq!(
        q.select[1],
        SelectItem::StructWildcard(Expr::Column {
            qualifier: Some("I".into()),
            name: "V1".into()
        })
    );
}

// ----- metadata and admin statements -----

#[test]
fn show_and_list() {
    let cases = [
        ("SHOW STREAMS EXTENDED", Show::Streams { extended: true }),
        ("LIST TABLES", Show::Tables { extended: false }),
        (
            "SHOW ALL TOPICS EXTENDED",
            Show::Topics {
                all: true,
                extended: true,
            },
        ),
        (
            "show topics",
            Show::Topics {
                all: false,
                extended: false,
            },
        ),
        ("SHOW QUERIES", Show::Queries { extended: false }),
        ("SHOW PROPERTIES", Show::Properties),
        ("SHOW FUNCTIONS", Show::Functions),
        ("SHOW TYPES", Show::Types),
        ("SHOW VARIABLES", Show::Variables),
        ("SHOW CONNECTORS", Show::Connectors { kind: None }),
        (
            "SHOW SOURCE CONNECTORS",
            Show::Connectors {
                kind: Some(ConnectorKind::Source),
            },
        ),
        (
            "LIST SINK CONNECTORS",
            Show::Connectors {
                kind: Some(ConnectorKind::Sink),
            },
        ),
        ("SHOW CONNECTOR PLUGINS", Show::ConnectorPlugins),
    ];
    for (sql, show) in cases {
        assert_eq!(one(sql), Statement::Show(show), "{sql}");
    }
}

#[test]
fn describe_explain_and_query_control() {
    assert_eq!(
        one("DESCRIBE s EXTENDED"),
        Statement::Describe {
            target: DescribeTarget::Source("S".into()),
            extended: true
        }
    );
    assert_eq!(
        one("DESCRIBE EXTENDED s"),
        Statement::Describe {
            target: DescribeTarget::Source("S".into()),
            extended: true
        }
    );
    assert_eq!(
        one("DESCRIBE TABLES"),
        Statement::Describe {
            target: DescribeTarget::Tables,
            extended: false
        }
    );
    assert_eq!(
        one("DESCRIBE `TABLES`"),
        Statement::Describe {
            target: DescribeTarget::Source("TABLES".into()),
            extended: false
        }
    );
    assert_eq!(
        one("DESCRIBE STREAMS EXTENDED"),
        Statement::Describe {
            target: DescribeTarget::Streams,
            extended: true
        }
    );
    assert_eq!(
        one("DESCRIBE FUNCTION concat"),
        Statement::DescribeFunction {
            name: "CONCAT".into()
        }
    );
    assert_eq!(
        one("DESCRIBE FUNCTION"),
        Statement::Describe {
            target: DescribeTarget::Source("FUNCTION".into()),
            extended: false
        }
    );
    assert_eq!(
        one("DESCRIBE CONNECTOR c"),
        Statement::DescribeConnector { name: "C".into() }
    );
    assert_eq!(
        one("EXPLAIN CSAS_OUT_0;"),
        Statement::Explain(ExplainTarget::QueryId("CSAS_OUT_0".into()))
    );
    let Statement::Explain(ExplainTarget::Statement(inner)) =
        one("EXPLAIN SELECT * FROM s EMIT CHANGES;")
    else {
        panic!()
    };
    assert_eq!(inner.text, "SELECT * FROM s EMIT CHANGES;");
    assert!(matches!(inner.statement, Statement::Query(_)));
    assert_eq!(
        one("TERMINATE q1"),
        Statement::Terminate {
            query_id: Some("Q1".into())
        }
    );
    assert_eq!(
        one("TERMINATE ALL"),
        Statement::Terminate { query_id: None }
    );
    assert_eq!(one("PAUSE ALL"), Statement::Pause { query_id: None });
    assert_eq!(
        one("RESUME `q`"),
        Statement::Resume {
            query_id: Some("q".into())
        }
    );
}

#[test]
fn properties_and_variables() {
    assert_eq!(
        one("SET 'auto.offset.reset'='earliest';"),
        Statement::Set {
            name: "auto.offset.reset".into(),
            value: "earliest".into()
        }
    );
    assert_eq!(one("UNSET 'a'"), Statement::Unset { name: "a".into() });
    assert_eq!(
        one("ALTER SYSTEM 'a' = 'b'"),
        Statement::AlterSystem {
            name: "a".into(),
            value: "b".into()
        }
    );
    assert_eq!(
        one("DEFINE topicName = '''t''';"),
        Statement::Define {
            name: "topicName".into(),
            value: "'t'".into()
        }
    );
    assert_eq!(
        one("UNDEFINE topicName"),
        Statement::Undefine {
            name: "topicName".into()
        }
    );
}

#[test]
fn print_run_and_asserts() {
    assert_eq!(
        one("PRINT 'My_Topic' FROM BEGINNING INTERVAL 2 LIMIT 5;"),
        Statement::Print {
            topic: "My_Topic".into(),
            from_beginning: true,
            interval: Some(2),
            limit: Some(5)
        }
    );
    assert_eq!(
        one("PRINT myTopic;"),
        Statement::Print {
            topic: "myTopic".into(),
            from_beginning: false,
            interval: None,
            limit: None
        }
    );
    assert_eq!(
        one("RUN SCRIPT '/x.sql';"),
        Statement::RunScript {
            path: "/x.sql".into()
        }
    );
    assert_eq!(
        one("ASSERT NOT EXISTS TOPIC 'Foo' WITH (partitions=1) TIMEOUT 3 SECONDS;"),
        Statement::AssertTopic {
            topic: "Foo".into(),
            exists: false,
            properties: Properties(vec![("PARTITIONS".into(), Literal::Integer(1))]),
            timeout: Some(secs(3))
        }
    );
    assert_eq!(
        one("ASSERT SCHEMA SUBJECT 'x-value' ID 3;"),
        Statement::AssertSchema {
            subject: Some("x-value".into()),
            id: Some(3),
            exists: true,
            timeout: None
        }
    );
    assert_eq!(
        one("ASSERT VALUES out (id, v) VALUES (1, 'a');"),
        Statement::AssertValues {
            source: "OUT".into(),
            columns: Some(vec!["ID".into(), "V".into()]),
            values: vec![int(1), Expr::Literal(Literal::String("a".into()))]
        }
    );
    assert_eq!(
        one("ASSERT NULL VALUES out (id) KEY (1);"),
        Statement::AssertNullValues {
            source: "OUT".into(),
            columns: Some(vec!["ID".into()]),
            keys: vec![int(1)]
        }
    );
    assert!(matches!(
        one("ASSERT TABLE out (id INT PRIMARY KEY, v STRING) WITH (kafka_topic='out');"),
        Statement::AssertSource { kind: SourceKind::Table, ref elements, .. } if elements.len() == 2
    ));
}

#[test]
fn server_grammar_rejects_test_statements() {
    let e = parse_server_statements("RUN SCRIPT 'foo';").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1:1: Syntax Error\nUnknown statement 'RUN'"
    );
    let e = parse_server_statements("ASSERT VALUES foo (id INT) VALUES (123);").unwrap_err();
    assert!(
        e.to_string()
            .contains("Syntax error at or near 'VALUES' at line 1:8"),
        "{e}"
    );
    assert!(parse_server_statements("ASSERT TOPIC t;").is_ok());
}

// ----- identifiers -----

#[test]
fn identifier_case_rules() {
    assert_eq!(expr("abc"), col("ABC"));
    assert_eq!(expr("`aBc`"), col("aBc"));
    assert_eq!(expr("\"aBc\""), col("aBc"));
    assert_eq!(expr("`a``b`"), col("a`b"));
    assert_eq!(expr("\"a\"\"b\""), col("a\"b"));
    assert_eq!(expr("a@b"), col("A@B"));
    assert_eq!(expr("1abc"), col("1ABC"));
    // Non-reserved keywords are identifiers.
    for w in [
        "timestamp",
        "date",
        "session",
        "type",
        "source",
        "partitions",
        "key",
        "id",
    ] {
        assert_eq!(expr(w), col(&w.to_uppercase()), "{w}");
    }
    assert_eq!(expr("ROWTIME"), col("ROWTIME"));
    assert_eq!(
        expr("t.`c`"),
        Expr::Column {
            qualifier: Some("T".into()),
            name: "c".into()
        }
    );
}

#[test]
fn reserved_words_are_not_identifiers() {
    let e = parse_expression("select").unwrap_err();
    assert!(
        e.message
            .contains("Syntax error at or near 'select' at line 1:1"),
        "{e}"
    );
    let e = err("CREATE STREAM INPUT (ROWKEY INT KEY, COL0 NULL) WITH (kafka_topic='t');");
    assert!(e.to_string().contains("Syntax Error"), "{e}");
}

#[test]
fn key_constraints_match_the_source_kind() {
    let e = err("CREATE TABLE INPUT (ID INT KEY, NAME STRING) WITH (kafka_topic='input');");
    assert_eq!(
        e.ksql_message(),
        "Line: 1, Col: 21: Column `ID` is a 'KEY' column: please use 'PRIMARY KEY' for tables."
    );
    let e = err("CREATE STREAM INPUT (ID INT PRIMARY KEY) WITH (kafka_topic='input');");
    assert!(e
        .message
        .contains("Col: 22: Column `ID` is a 'PRIMARY KEY' column: please use 'KEY' for streams."));
}

#[test]
fn source_names_are_validated() {
    let e = err("CREATE STREAM `a.b` (x INT) WITH (kafka_topic='t');");
    assert_eq!((e.line, e.column), (1, 15));
    assert!(e
        .message
        .contains("Source names may only contain alphanumeric values, '_' or '-'. Got: 'a.b'"));
}

// ----- literals -----

#[test]
fn literals() {
    assert_eq!(expr("1"), int(1));
    assert_eq!(expr("-2147483648"), int(-2_147_483_648));
    assert_eq!(expr("- 5"), int(-5));
    assert_eq!(expr("9223372036854775807"), int(i64::MAX));
    assert_eq!(expr("-9223372036854775808"), int(i64::MIN));
    assert_eq!(expr("1.50"), Expr::Literal(Literal::Decimal("1.50".into())));
    assert_eq!(expr(".5"), Expr::Literal(Literal::Decimal(".5".into())));
    assert_eq!(expr("-0.5"), Expr::Literal(Literal::Decimal("-0.5".into())));
    assert_eq!(expr("1.5E3"), Expr::Literal(Literal::Double(1500.0)));
    assert_eq!(expr("1e-2"), Expr::Literal(Literal::Double(0.01)));
    assert_eq!(
        expr("'it''s'"),
        Expr::Literal(Literal::String("it's".into()))
    );
    assert_eq!(expr("TRUE"), Expr::Literal(Literal::Boolean(true)));
    assert_eq!(expr("false"), Expr::Literal(Literal::Boolean(false)));
    assert_eq!(expr("null"), Expr::Literal(Literal::Null));
    assert_eq!(
        expr("-x"),
        Expr::Unary {
            op: UnaryOp::Minus,
            expr: Box::new(col("X"))
        }
    );
    assert_eq!(expr("a -1"), bin(BinaryOp::Subtract, col("A"), int(1)));
}

#[test]
fn numeric_literal_errors() {
    let e = err("CREATE STREAM INPUT (K STRING KEY) WITH (kafka_topic='t');\nCREATE STREAM OUTPUT AS select K, id, 9223372036854775808 FROM INPUT;");
    assert_eq!(
        e.ksql_message(),
        "Failed to prepare statement: line 2:40: Invalid numeric literal: 9223372036854775808"
    );
    let e = err("SELECT -9223372036854775809 FROM s;");
    assert!(e
        .message
        .contains("Invalid numeric literal: -9223372036854775809"));
    let e = err("CREATE STREAM OUTPUT AS select K, id, 1.7976931348623159E308 FROM INPUT;");
    assert_eq!(
        e.ksql_message(),
        "Failed to prepare statement: line 1:40: Number overflows DOUBLE: 1.7976931348623159E308"
    );
    let e = err("SELECT -1.7976931348623160E308 FROM s;");
    assert!(e
        .message
        .contains("Number overflows DOUBLE: -1.7976931348623160E308"));
}

#[test]
fn limit_errors() {
    let e = err("SELECT * FROM riderLocations LIMIT -1;");
    assert!(e
        .ksql_message()
        .starts_with("Pull queries don't support negative integers in the LIMIT clause."));
    let e = err("SELECT * FROM riderLocations LIMIT 2.5;");
    assert_eq!(
        e.ksql_message(),
        "Failed to prepare statement: Value must be integer for command: LIMIT"
    );
    let e = err("SELECT * FROM riderLocations LIMIT heh;");
    assert!(e.to_string().starts_with("line 1:36: Syntax Error"), "{e}");
}

// ----- expressions -----

#[test]
fn precedence() {
    assert_eq!(
        expr("a + b * c"),
        bin(
            BinaryOp::Add,
            col("A"),
            bin(BinaryOp::Multiply, col("B"), col("C"))
        )
    );
    assert_eq!(
        expr("a - b - c"),
        bin(
            BinaryOp::Subtract,
            bin(BinaryOp::Subtract, col("A"), col("B")),
            col("C")
        )
    );
    assert_eq!(
        expr("a || b + c"),
        bin(
            BinaryOp::Concat,
            col("A"),
            bin(BinaryOp::Add, col("B"), col("C"))
        )
    );
    assert_eq!(
        expr("a OR b AND NOT c = 1"),
        bin(
            BinaryOp::Or,
            col("A"),
            bin(
                BinaryOp::And,
                col("B"),
                Expr::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(bin(BinaryOp::Eq, col("C"), int(1)))
                }
            )
        )
    );
    assert_eq!(
        expr("-a * b"),
        bin(
            BinaryOp::Multiply,
            Expr::Unary {
                op: UnaryOp::Minus,
                expr: Box::new(col("A"))
            },
            col("B")
        )
    );
    assert_eq!(
        expr("(a + b) % 2 <> 0"),
        bin(
            BinaryOp::NotEq,
            bin(
                BinaryOp::Modulo,
                bin(BinaryOp::Add, col("A"), col("B")),
                int(2)
            ),
            int(0)
        )
    );
    assert_eq!(expr("a != b"), bin(BinaryOp::NotEq, col("A"), col("B")));
    // A predicate takes value expressions on both sides: comparisons don't chain.
    assert!(parse_expression("a = b = c").is_err());
}

#[test]
fn predicates() {
    assert_eq!(
        expr("a IS NOT NULL"),
        Expr::IsNull {
            expr: Box::new(col("A")),
            negated: true
        }
    );
    assert_eq!(
        expr("a IS DISTINCT FROM b"),
        Expr::IsDistinctFrom {
            left: Box::new(col("A")),
            right: Box::new(col("B")),
            negated: false
        }
    );
    assert_eq!(
        expr("a NOT BETWEEN 1 AND 2 + 1"),
        Expr::Between {
            expr: Box::new(col("A")),
            low: Box::new(int(1)),
            high: Box::new(bin(BinaryOp::Add, int(2), int(1))),
            negated: true
        }
    );
    assert_eq!(
        expr("a NOT IN (1, b)"),
        Expr::InList {
            expr: Box::new(col("A")),
            list: vec![int(1), col("B")],
            negated: true
        }
    );
    assert_eq!(
        expr("a LIKE 'x%' ESCAPE '!'"),
        Expr::Like {
            expr: Box::new(col("A")),
            pattern: Box::new(Expr::Literal(Literal::String("x%".into()))),
            escape: Some('!'),
            negated: false
        }
    );
    assert!(parse_expression("a LIKE 'x' ESCAPE 'ab'")
        .unwrap_err()
        .message
        .contains("Expected single character escape but got: ab"));
    assert_eq!(
        expr("ts AT TIME ZONE 'UTC'"),
        Expr::AtTimeZone {
            expr: Box::new(col("TS")),
            zone: "UTC".into()
        }
    );
    let e = err("SELECT * FROM INPUT WHERE ID IN ( );");
    assert!(e.to_string().contains("Syntax Error"));
}

#[test]
fn access_and_constructors() {
    assert_eq!(
        expr("s->f->g"),
        Expr::Dereference {
            base: Box::new(Expr::Dereference {
                base: Box::new(col("S")),
                field: "F".into()
            }),
            field: "G".into()
        }
    );
    assert_eq!(
        expr("a[1]['k']"),
        Expr::Subscript {
            base: Box::new(Expr::Subscript {
                base: Box::new(col("A")),
                index: Box::new(int(1))
            }),
            index: Box::new(Expr::Literal(Literal::String("k".into())))
        }
    );
    assert_eq!(expr("ARRAY[1, -2]"), Expr::Array(vec![int(1), int(-2)]));
    assert_eq!(expr("ARRAY[]"), Expr::Array(vec![]));
    assert_eq!(
        expr("MAP('a' := 1)"),
        Expr::Map(vec![(Expr::Literal(Literal::String("a".into())), int(1))])
    );
    assert_eq!(
        expr("STRUCT(a := 1, `b` := x)"),
        Expr::Struct(vec![("A".into(), int(1)), ("b".into(), col("X"))])
    );
    assert_eq!(
        expr("CAST(x AS DECIMAL(5, 2))"),
        Expr::Cast {
            expr: Box::new(col("X")),
            ty: SqlType::decimal(5, 2)
        }
    );
    assert_eq!(
        expr("CASE x WHEN 1 THEN 'a' ELSE 'b' END"),
        Expr::Case {
            operand: Some(Box::new(col("X"))),
            whens: vec![(int(1), Expr::Literal(Literal::String("a".into())))],
            else_result: Some(Box::new(Expr::Literal(Literal::String("b".into()))))
        }
    );
    assert_eq!(
        expr("CASE WHEN x > 1 THEN 1 END"),
        Expr::Case {
            operand: None,
            whens: vec![(bin(BinaryOp::Gt, col("X"), int(1)), int(1))],
            else_result: None
        }
    );
    assert_eq!(
        expr("now()"),
        Expr::Function {
            name: "NOW".into(),
            args: vec![],
            star: false
        }
    );
    assert_eq!(
        expr("TIMESTAMPADD(SECONDS, 5, ts)"),
        Expr::Function {
            name: "TIMESTAMPADD".into(),
            args: vec![col("SECONDS"), int(5), col("TS")],
            star: false
        }
    );
}

#[test]
fn lambdas() {
    assert_eq!(
        expr("TRANSFORM(arr, x => x + y)"),
        Expr::Function {
            name: "TRANSFORM".into(),
            args: vec![
                col("ARR"),
                Expr::Lambda {
                    params: vec!["X".into()],
                    body: Box::new(bin(
                        BinaryOp::Add,
                        Expr::LambdaVariable("X".into()),
                        col("Y")
                    ))
                }
            ],
            star: false
        }
    );
    assert_eq!(
        expr("REDUCE(m, 0, (s, k, v) => s + v)"),
        Expr::Function {
            name: "REDUCE".into(),
            args: vec![
                col("M"),
                int(0),
                Expr::Lambda {
                    params: vec!["S".into(), "K".into(), "V".into()],
                    body: Box::new(bin(
                        BinaryOp::Add,
                        Expr::LambdaVariable("S".into()),
                        Expr::LambdaVariable("V".into())
                    ))
                }
            ],
            star: false
        }
    );
    // Parameters are only in scope inside the body.
    let Expr::Function { args, .. } = expr("F(x, x => x)") else {
        panic!()
    };
    assert_eq!(args[0], col("X"));
    // Lambdas come after all other arguments.
    assert!(parse_expression("F(x => x, x)").is_err());
}

#[test]
fn display_round_trips() {
    for sql in [
        "a + b * c",
        "`x`.`y` = 'it''s' AND NOT b",
        "CASE WHEN a > 1 THEN 'x' ELSE NULL END",
        "CAST(a AS ARRAY<STRUCT<`f` INTEGER>>)",
        "ARRAY[1, 2][1]",
        "MAP('k' := 1.50)",
        "STRUCT(F := s->g)",
        "TRANSFORM(arr, x => x * 2)",
        "REDUCE(arr, 0, (s, x) => s + x)",
        "a IS NOT DISTINCT FROM b OR c NOT IN (1, 2)",
        "a LIKE 'a!%' ESCAPE '!'",
        "a NOT BETWEEN 1 AND 2",
        "COUNT(*) + 1.5E3",
        "ts AT TIME ZONE 'UTC'",
    ] {
        let e = expr(sql);
        let shown = e.to_string();
        assert_eq!(expr(&shown), e, "{sql} -> {shown}");
    }
}

// ----- errors -----

#[test]
fn error_positions_and_messages() {
    let e =
        err("CREATE STREAM INPUT (K INT (KEY)) WITH (kafka_topic='input',value_format='JSON');");
    assert_eq!(
        e.to_string(),
        "line 1:29: Syntax Error\nExpecting {'STRING', INTEGER_VALUE}\nStatement: CREATE STREAM \
         INPUT (K INT (KEY)) WITH (kafka_topic='input',value_format='JSON');"
    );
    let e = err("CREATE STREAM INPUT (K VARCHAR(STRING) (KEY)) WITH (kafka_topic='input',value_format='JSON');");
    assert!(e
        .to_string()
        .starts_with("line 1:40: Syntax Error\nExpecting {',', ')'}\nStatement: CREATE"));
    let e = err("CREATE STREAM TEST (ID STRING KEY, f0 VARCHAR) WITH (kafka_topic='test_topic', value_format='JSON');\nCREATE STREAM OUTPUT AS SELECT ID, cast(f0 as NULL) FROM TEST;");
    assert!(
        e.to_string()
            .contains("Syntax error at or near 'NULL' at line 2:47"),
        "{e}"
    );
    let e = err("FOO BAR;");
    assert_eq!(
        e.to_string(),
        "line 1:1: Syntax Error\nUnknown statement 'FOO'"
    );
    let e = err("SELECT * FROM s WHERE 'unterminated;");
    assert_eq!(e.line, 1);
    assert!(e.message.starts_with("Syntax Error"));
    let e = err("SELECT a, FROM s;");
    assert_eq!((e.line, e.column), (1, 11));
}

#[test]
fn variables() {
    let vars: HashMap<String, String> = [
        ("format".to_string(), "AVRO".to_string()),
        ("Replicas".into(), "3".into()),
    ]
    .into();
    assert_eq!(
        substitute_variables(
            "value_format='${FORMAT}', replicas=${replicas}, x='$${format}'",
            &vars
        )
        .unwrap(),
        "value_format='AVRO', replicas=3, x='${format}'"
    );
    let e = substitute_variables("a\n  ${nope}", &vars).unwrap_err();
    assert_eq!((e.line, e.column), (2, 3));
    assert!(e.message.contains("nope"));
    assert_eq!(
        substitute_variables("cost: $5 {x}", &vars).unwrap(),
        "cost: $5 {x}"
    );
}

#[test]
fn types_and_columns() {
    assert_eq!(
        parse_type("ARRAY<ARRAY<INT>>").unwrap(),
        SqlType::Array(Box::new(SqlType::Array(Box::new(SqlType::Int))))
    );
    assert_eq!(parse_type("STRUCT<>").unwrap(), SqlType::Struct(vec![]));
    assert_eq!(
        parse_type("INT ARRAY").unwrap(),
        SqlType::Array(Box::new(SqlType::Int))
    );
    assert_eq!(parse_type("VARCHAR(10)").unwrap(), SqlType::String);
    let cols = parse_columns("`ID` BIGINT KEY, NAME STRING, ts TIMESTAMP").unwrap();
    assert_eq!(cols.len(), 3);
    assert_eq!(cols[0].constraint, ColumnConstraint::Key);
    assert_eq!(cols[2].ty, SqlType::Timestamp);
}

// ----- the QTT corpus -----

const QTT_DIR: &str = "/work/shared/conformance/ksql-qtt/query-validation-tests";

/// Removes `//` comments and trailing commas (outside strings): some QTT files are JSON5-ish.
fn relax_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    // Trailing commas.
    let mut cleaned = String::with_capacity(out.len());
    let bytes: Vec<char> = out.chars().collect();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            cleaned.push(c);
            if c == '\\' && i + 1 < bytes.len() {
                cleaned.push(bytes[i + 1]);
                i += 1;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            cleaned.push(c);
        } else if c == ',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_whitespace());
            if !matches!(next, Some(']') | Some('}')) {
                cleaned.push(c);
            }
        } else {
            cleaned.push(c);
        }
        i += 1;
    }
    cleaned
}

const REST_DIR: &str = "/work/shared/conformance/ksql-qtt/rest-query-validation-tests";

/// The test cases of every readable conformance file in `dir`, with the file name.
fn conformance_cases(dir: &str) -> Vec<(String, serde_json::Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("{dir} not found; skipping");
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut cases = Vec::new();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&relax_json(&text)) else {
            eprintln!("skipping unparsable {}", path.display());
            continue;
        };
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        for test in json["tests"].as_array().cloned().unwrap_or_default() {
            cases.push((file.clone(), test));
        }
    }
    cases
}

fn case_statements(test: &serde_json::Value) -> Vec<String> {
    test["statements"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str())
        .map(|s| {
            s.replace("{FORMAT}", "JSON")
                .replace("{BIGINT}", "BIGINT")
                .replace("{INTEGER}", "INTEGER")
                .replace("{STRING}", "STRING")
        })
        .collect()
}

/// Every statement ksqlDB accepts in the conformance suites must parse: all statements of QTT
/// cases not expecting a parse failure (other failures happen after parsing), and all but the
/// last statement of REST cases that expect an error.
#[test]
fn conformance_statements_parse() {
    let (mut total, mut failures) = (0, Vec::new());
    let mut check = |file: &str, test: &serde_json::Value, statements: &[String]| {
        for stmt in statements {
            total += 1;
            if let Err(e) = parse_server_statements(stmt) {
                let name = test["name"].as_str().unwrap_or("?");
                failures.push(format!("{file} / {name}: {stmt}\n    {e}"));
            }
        }
    };
    for (file, test) in conformance_cases(QTT_DIR) {
        if test["expectedException"]["type"].as_str()
            == Some("io.confluent.ksql.parser.exception.ParseFailedException")
        {
            continue;
        }
        check(&file, &test, &case_statements(&test));
    }
    for (file, test) in conformance_cases(REST_DIR) {
        let mut statements = case_statements(&test);
        if test.get("expectedError").is_some() {
            statements.pop();
        }
        check(&file, &test, &statements);
    }
    for f in &failures {
        eprintln!("{f}");
    }
    eprintln!(
        "conformance: {} of {total} statements parsed",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance statements failed to parse",
        failures.len()
    );
}

/// Every QTT case that expects a ParseFailedException must fail to parse (as one script, so
/// line numbers match), with the expected message as a substring of ksqlDB's wording.
#[test]
fn qtt_parse_failures_match() {
    let mut failures = Vec::new();
    for (_, test) in conformance_cases(QTT_DIR) {
        let ex = &test["expectedException"];
        if ex["type"].as_str() != Some("io.confluent.ksql.parser.exception.ParseFailedException") {
            continue;
        }
        let expected = ex["message"].as_str().unwrap_or("");
        // WITH-property validation belongs to the planner, not the grammar.
        if expected.contains("should not be set for") {
            continue;
        }
        let script = case_statements(&test).join("\n");
        match parse_server_statements(&script) {
            Ok(_) => failures.push(format!("{}: parsed: {script}", test["name"])),
            Err(e) => {
                let got = e.ksql_message();
                if !got.contains(expected) {
                    failures.push(format!(
                        "{}: expected {expected:?}, got {got:?}",
                        test["name"]
                    ));
                }
            }
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} parse-failure cases differ",
        failures.len()
    );
}

/// Truncated and mangled statements must produce errors, never panics.
#[test]
fn mangled_inputs_do_not_panic() {
    let mut statements: Vec<String> = conformance_cases(QTT_DIR)
        .iter()
        .step_by(25)
        .flat_map(|(_, t)| case_statements(t))
        .collect();
    statements.push("SELECT `a``, \"b, 'c, ${x}, $1, #, ::, 1e, .e5, a->, ->*".to_string());
    for stmt in &statements {
        let chars: Vec<(usize, char)> = stmt.char_indices().collect();
        for (i, _) in &chars {
            let _ = parse_statements(&stmt[..*i]);
            let _ = parse_expression(&stmt[*i..]);
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = parse_expression(&deep).unwrap_err();
    assert!(e.message.contains("Statement is too large to parse"), "{e}");
    let e = parse_expression(&format!("{}x", "NOT ".repeat(10_000))).unwrap_err();
    assert!(e.message.contains("too large"));
    let e = parse_expression(&format!("{}x", "- ".repeat(10_000))).unwrap_err();
    assert!(e.message.contains("too large"));
    assert!(parse_expression(&format!("{}1{}", "(".repeat(99), ")".repeat(99))).is_ok());
}
