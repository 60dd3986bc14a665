//! What statements return, and how the CLI shows it (ksqlDB's tabular rendering).

use crate::runner::{PushQuery, Running};
use runnel_connect::kafka::TopicInfo;
use runnel_plan::catalog::Source;
use runnel_sql::SourceKind;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct QuerySummary {
    pub id: String,
    pub statement: String,
    pub sink: String,
    pub sink_topic: String,
    pub state: String,
    pub processed: u64,
    pub failed: u64,
}

/// The result of one statement (the REST API maps these to ksqlDB's `@type` entities).
pub enum StatementOutput {
    /// `currentStatus`: DDL, INSERT, TERMINATE, SET, ...
    Status {
        statement: String,
        command_id: String,
        message: String,
        query_id: Option<String>,
    },
    /// `warning_entity`
    Warning { statement: String, message: String },
    /// `streams` / `tables`
    Sources {
        statement: String,
        kind: SourceKind,
        sources: Vec<Arc<Source>>,
    },
    /// `kafka_topics`
    Topics {
        statement: String,
        topics: Vec<TopicInfo>,
    },
    /// `queries`
    Queries {
        statement: String,
        queries: Vec<QuerySummary>,
    },
    /// `properties` (also variables and types as name/value pairs)
    Properties {
        statement: String,
        properties: Vec<(String, String)>,
    },
    /// `sourceDescription`(s): source, reading queries, writing queries
    Descriptions {
        statement: String,
        extended: bool,
        sources: Vec<(Arc<Source>, Vec<QuerySummary>, Vec<QuerySummary>)>,
    },
    /// Free text (EXPLAIN, DESCRIBE FUNCTION, SHOW FUNCTIONS).
    Text(String),
    /// A running push query.
    Push(PushQuery),
    /// The rows of a pull query.
    Pull(crate::pull::PullResult),
    /// A running PRINT.
    Print {
        lines: Receiver<String>,
        running: Running,
    },
    /// The outputs of RUN SCRIPT.
    Script(Vec<StatementOutput>),
}

impl std::fmt::Debug for StatementOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl StatementOutput {
    pub fn status(statement: &str, command_id: String, message: String) -> Self {
        StatementOutput::Status {
            statement: statement.to_string(),
            command_id,
            message,
            query_id: None,
        }
    }

    pub fn warning(statement: &str, message: String) -> Self {
        StatementOutput::Warning {
            statement: statement.to_string(),
            message,
        }
    }

    /// Text for a terminal: messages as lines, lists as aligned tables.
    pub fn render(&self) -> String {
        match self {
            StatementOutput::Status { message, .. } => {
                if message.is_empty() {
                    String::new()
                } else {
                    table(&["Message"], &[vec![message.clone()]])
                }
            }
            StatementOutput::Warning { message, .. } => format!("WARNING: {message}\n"),
            StatementOutput::Sources { kind, sources, .. } => {
                let name = if *kind == SourceKind::Stream {
                    "Stream Name"
                } else {
                    "Table Name"
                };
                let rows: Vec<Vec<String>> = sources
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.topic.clone(),
                            s.key_format.format.clone(),
                            s.value_format.format.clone(),
                            s.window.is_some().to_string(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        name,
                        "Kafka Topic",
                        "Key Format",
                        "Value Format",
                        "Windowed",
                    ],
                    &rows,
                )
            }
            StatementOutput::Topics { topics, .. } => {
                let rows: Vec<Vec<String>> = topics
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.partitions.to_string(),
                            t.replicas.to_string(),
                        ]
                    })
                    .collect();
                table(&["Kafka Topic", "Partitions", "Partition Replicas"], &rows)
            }
            StatementOutput::Queries { queries, .. } => {
                let rows: Vec<Vec<String>> = queries
                    .iter()
                    .map(|q| {
                        vec![
                            q.id.clone(),
                            "PERSISTENT".into(),
                            q.state.clone(),
                            q.sink.clone(),
                            q.sink_topic.clone(),
                            q.statement.clone(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "Query ID",
                        "Query Type",
                        "Status",
                        "Sink Name",
                        "Sink Kafka Topic",
                        "Query String",
                    ],
                    &rows,
                )
            }
            StatementOutput::Properties { properties, .. } => {
                let rows: Vec<Vec<String>> = properties
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()])
                    .collect();
                table(&["Property", "Value"], &rows)
            }
            StatementOutput::Descriptions {
                sources, extended, ..
            } => {
                let mut out = String::new();
                for (s, readers, writers) in sources {
                    out.push_str(&format!("\nName                 : {}\n", s.name));
                    if *extended {
                        out.push_str(&format!("Type                 : {}\n", s.kind));
                        if let Some(t) = &s.timestamp {
                            out.push_str(&format!("Timestamp field      : {}\n", t.column));
                        }
                        out.push_str(&format!("Key format           : {}\n", s.key_format.format));
                        out.push_str(&format!(
                            "Value format         : {}\n",
                            s.value_format.format
                        ));
                        out.push_str(&format!(
                            "Kafka topic          : {} (partitions: {}, replication: {})\n",
                            s.topic,
                            s.partitions.unwrap_or(1),
                            s.replicas.unwrap_or(1)
                        ));
                        out.push_str(&format!("Statement            : {}\n", s.statement));
                    }
                    let mut rows = vec![vec![
                        "ROWTIME".to_string(),
                        "BIGINT           (system)".to_string(),
                    ]];
                    for c in s
                        .schema
                        .key_columns()
                        .chain(s.schema.columns.iter().filter(|c| !c.is_key()))
                    {
                        let suffix = match &c.kind {
                            runnel_plan::ColumnKind::Key => if s.kind == SourceKind::Table {
                                "(primary key)"
                            } else {
                                "(key)"
                            }
                            .to_string(),
                            runnel_plan::ColumnKind::Value => String::new(),
                            runnel_plan::ColumnKind::Headers => "(headers)".into(),
                            runnel_plan::ColumnKind::Header(k) => format!("(header('{k}'))"),
                        };
                        rows.push(vec![
                            c.name.clone(),
                            format!("{:<16} {suffix}", c.ty.to_string())
                                .trim_end()
                                .to_string(),
                        ]);
                    }
                    out.push_str(&table(&["Field", "Type"], &rows));
                    if *extended {
                        out.push_str("\nQueries that read from this STREAM\n-----------------------------------\n");
                        for q in readers {
                            out.push_str(&format!("{} ({}) : {}\n", q.id, q.state, q.statement));
                        }
                        out.push_str("\nQueries that write from this STREAM\n-----------------------------------\n");
                        for q in writers {
                            out.push_str(&format!("{} ({}) : {}\n", q.id, q.state, q.statement));
                        }
                    }
                }
                out
            }
            StatementOutput::Text(t) => format!("{t}\n"),
            StatementOutput::Push(p) => format!("Push query {} started\n", p.query_id),
            StatementOutput::Pull(p) => {
                let headers: Vec<&str> = p.columns.iter().map(|(n, _)| n.as_str()).collect();
                let rows: Vec<Vec<String>> = p
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|v| v.to_string()).collect())
                    .collect();
                let mut out = table(&headers, &rows);
                if let Some(m) = &p.final_message {
                    out.push_str(m);
                    out.push('\n');
                }
                out
            }
            StatementOutput::Print { .. } => String::new(),
            StatementOutput::Script(outputs) => outputs.iter().map(|o| o.render()).collect(),
        }
    }
}

/// An aligned table in the ksql CLI's style.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            s.push_str(&format!(" {:<w$} |", c, w = widths[i]));
        }
        s.push('\n');
        s
    };
    let sep: String = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let mut out = sep.clone();
    out.push_str(&line(headers.to_vec()));
    out.push_str(&sep);
    for row in rows {
        out.push_str(&line(row.iter().map(|s| s.as_str()).collect()));
    }
    out.push_str(&sep);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_are_aligned() {
        let t = super::table(&["A", "Long header"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "+-----+-------------+\n| A   | Long header |\n+-----+-------------+\n| xyz | 1           |\n+-----+-------------+\n");
    }
}
