//! Rendering server answers as the ksql CLI does: `/ksql` entities as aligned ASCII tables
//! (`OUTPUT TABULAR`, the default) or as indented JSON (`OUTPUT JSON`), and query rows as a boxed
//! table printed one row at a time as they arrive.

use serde_json::Value as Json;

/// `OUTPUT JSON` or `OUTPUT TABULAR`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Tabular,
    Json,
}

/// A ksql-style table: a header line, a rule, the rows, a rule. Trailing blanks are trimmed.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let body: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        body.join("|").trim_end().to_string()
    };
    let total: usize = widths.iter().map(|w| w + 2).sum::<usize>() + widths.len().saturating_sub(1);
    let rule = "-".repeat(total);
    let mut out = String::new();
    out.push_str(&line(&mut headers.iter().copied()));
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

/// A value as a table cell: strings without quotes, everything else as JSON.
pub fn cell(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "null".into(),
        other => other.to_string(),
    }
}

fn str_of<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(Json::as_str).unwrap_or("")
}

fn list<'a>(v: &'a Json, key: &str) -> &'a [Json] {
    v.get(key)
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A schema (`{"type": ..., "fields": ..., "memberSchema": ...}`) as ksqlDB writes types.
fn schema_type(s: &Json) -> String {
    let t = str_of(s, "type");
    match t {
        "ARRAY" => format!(
            "ARRAY<{}>",
            schema_type(s.get("memberSchema").unwrap_or(&Json::Null))
        ),
        "MAP" => format!(
            "MAP<STRING, {}>",
            schema_type(s.get("memberSchema").unwrap_or(&Json::Null))
        ),
        "STRUCT" => {
            let fields: Vec<String> = list(s, "fields")
                .iter()
                .map(|f| {
                    format!(
                        "`{}` {}",
                        str_of(f, "name"),
                        schema_type(f.get("schema").unwrap_or(&Json::Null))
                    )
                })
                .collect();
            format!("STRUCT<{}>", fields.join(", "))
        }
        "DECIMAL" => {
            let p = &s["parameters"];
            format!("DECIMAL({}, {})", cell(&p["precision"]), cell(&p["scale"]))
        }
        "STRING" => "VARCHAR(STRING)".into(),
        other => other.to_string(),
    }
}

/// One `/ksql` entity, rendered.
pub fn entity(e: &Json, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(e).unwrap_or_default() + "\n";
    }
    let mut out = match str_of(e, "@type") {
        "currentStatus" => table(
            &["Message"],
            &[vec![str_of(&e["commandStatus"], "message").to_string()]],
        ),
        "streams" | "tables" => {
            let (key, name) = if str_of(e, "@type") == "streams" {
                ("streams", "Stream Name")
            } else {
                ("tables", "Table Name")
            };
            let rows: Vec<Vec<String>> = list(e, key)
                .iter()
                .map(|s| {
                    vec![
                        str_of(s, "name").into(),
                        str_of(s, "topic").into(),
                        str_of(s, "keyFormat").into(),
                        str_of(s, "valueFormat").into(),
                        cell(&s["isWindowed"]),
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
        "kafka_topics" | "kafka_topics_extended" => {
            let rows: Vec<Vec<String>> = list(e, "topics")
                .iter()
                .map(|t| {
                    let replicas = list(t, "replicaInfo");
                    vec![
                        str_of(t, "name").into(),
                        replicas.len().to_string(),
                        replicas.iter().map(cell).collect::<Vec<_>>().join(" "),
                    ]
                })
                .collect();
            table(&["Kafka Topic", "Partitions", "Partition Replicas"], &rows)
        }
        "queries" => {
            let rows: Vec<Vec<String>> = list(e, "queries")
                .iter()
                .map(|q| {
                    let join = |k: &str| list(q, k).iter().map(cell).collect::<Vec<_>>().join(",");
                    vec![
                        str_of(q, "id").into(),
                        str_of(q, "queryType").into(),
                        str_of(q, "state").into(),
                        join("sinks"),
                        join("sinkKafkaTopics"),
                        str_of(q, "queryString").replace('\n', " "),
                    ]
                })
                .collect();
            let mut t = table(
                &[
                    "Query ID",
                    "Query Type",
                    "Status",
                    "Sink Name",
                    "Sink Kafka Topic",
                    "Query String",
                ],
                &rows,
            );
            t.push_str("For detailed information on a Query run: EXPLAIN <Query ID>;\n");
            t
        }
        "properties" => {
            let rows: Vec<Vec<String>> = list(e, "properties")
                .iter()
                .map(|p| {
                    vec![
                        str_of(p, "name").into(),
                        str_of(p, "scope").into(),
                        str_of(p, "level").into(),
                        cell(&p["value"]),
                    ]
                })
                .collect();
            table(&["Property", "Scope", "Level", "Effective Value"], &rows)
        }
        "variables" => {
            let rows: Vec<Vec<String>> = list(e, "variables")
                .iter()
                .map(|v| vec![str_of(v, "name").into(), cell(&v["value"])])
                .collect();
            table(&["Variable Name", "Value"], &rows)
        }
        "function_names" => {
            let rows: Vec<Vec<String>> = list(e, "functions")
                .iter()
                .map(|f| vec![str_of(f, "name").into(), str_of(f, "category").into()])
                .collect();
            table(&["Function Name", "Category"], &rows)
        }
        "type_list" => {
            let mut rows: Vec<Vec<String>> = e
                .get("types")
                .and_then(Json::as_object)
                .map(|types| {
                    types
                        .iter()
                        .map(|(name, schema)| vec![name.clone(), schema_type(schema)])
                        .collect()
                })
                .unwrap_or_default();
            rows.sort();
            table(&["Type Name", "Schema"], &rows)
        }
        "sourceDescription" => source_description(&e["sourceDescription"]),
        "source_descriptions" => list(e, "sourceDescriptions")
            .iter()
            .map(source_description)
            .collect::<Vec<_>>()
            .join("\n"),
        "queryDescription" => {
            let q = &e["queryDescription"];
            let mut s = String::new();
            if !str_of(q, "id").is_empty() {
                s.push_str(&format!("ID                   : {}\n", str_of(q, "id")));
            }
            s.push_str(&format!(
                "SQL                  : {}\n",
                str_of(q, "statementText")
            ));
            let plan = str_of(q, "executionPlan");
            if !plan.is_empty() {
                s.push_str("\nExecution plan\n--------------\n");
                s.push_str(plan);
                if !plan.ends_with('\n') {
                    s.push('\n');
                }
            }
            s
        }
        "describe_function" => {
            let mut s = format!("Name        : {}\n", str_of(e, "name"));
            s.push_str(&format!("Type        : {}\n", str_of(e, "type")));
            let d = str_of(e, "description");
            if !d.is_empty() {
                s.push_str(&format!("Overview    : {d}\n"));
            }
            s
        }
        "warning_entity" => format!("{}\n", str_of(e, "message")),
        "terminate_query" => format!("Query {} terminated.\n", str_of(e, "queryId")),
        "assert_topic" => format!(
            "Topic {} {}.\n",
            str_of(e, "topicName"),
            if e["exists"].as_bool() == Some(false) {
                "does not exist"
            } else {
                "exists"
            }
        ),
        _ => serde_json::to_string_pretty(e).unwrap_or_default() + "\n",
    };
    for w in list(e, "warnings") {
        let m = str_of(w, "message");
        if !m.is_empty() {
            out.push_str(&format!("WARNING: {m}\n"));
        }
    }
    out
}

fn source_description(d: &Json) -> String {
    let mut s = format!("\nName                 : {}\n", str_of(d, "name"));
    if d.get("extended").and_then(Json::as_bool) == Some(true) {
        s.push_str(&format!("Type                 : {}\n", str_of(d, "type")));
        s.push_str(&format!(
            "Key format           : {}\n",
            str_of(d, "keyFormat")
        ));
        s.push_str(&format!(
            "Value format         : {}\n",
            str_of(d, "valueFormat")
        ));
        s.push_str(&format!(
            "Kafka topic          : {} (partitions: {}, replication: {})\n",
            str_of(d, "topic"),
            cell(&d["partitions"]),
            cell(&d["replication"])
        ));
        let statement = str_of(d, "statement");
        if !statement.is_empty() {
            s.push_str(&format!("Statement            : {statement}\n"));
        }
    }
    let rows: Vec<Vec<String>> = list(d, "fields")
        .iter()
        .map(|f| {
            let mut t = schema_type(f.get("schema").unwrap_or(&Json::Null));
            match str_of(f, "type") {
                "KEY" => t.push_str("  (key)"),
                "HEADER" => {
                    let k = str_of(f, "headerKey");
                    if k.is_empty() {
                        t.push_str("  (headers)");
                    } else {
                        t.push_str(&format!("  (header('{k}'))"));
                    }
                }
                _ => {}
            }
            vec![str_of(f, "name").to_string(), t]
        })
        .collect();
    s.push_str(&table(&["Field", "Type"], &rows));
    if d.get("extended").and_then(Json::as_bool) != Some(true) {
        s.push_str(
            "For runtime statistics and query details run: DESCRIBE <Stream,Table> EXTENDED;\n",
        );
    } else {
        for (title, key) in [
            ("Queries that read from this", "readQueries"),
            ("Queries that write from this", "writeQueries"),
        ] {
            let queries = list(d, key);
            if !queries.is_empty() {
                s.push_str(&format!("\n{title} {}\n", str_of(d, "type")));
                s.push_str(&"-".repeat(title.len() + 7));
                s.push('\n');
                for q in queries {
                    s.push_str(&format!(
                        "{} ({}) : {}\n",
                        str_of(q, "id"),
                        str_of(q, "state"),
                        str_of(q, "queryString").replace('\n', " ")
                    ));
                }
            }
        }
    }
    s
}

/// The boxed table of a query's rows, drawn row by row (the widths are fixed by the header,
/// since rows arrive one at a time).
pub struct RowTable {
    widths: Vec<usize>,
}

impl RowTable {
    /// Column widths share `terminal_width`, but never cut a column name.
    pub fn new(columns: &[String], terminal_width: usize) -> Self {
        let n = columns.len().max(1);
        let share = (terminal_width.saturating_sub(1) / n)
            .saturating_sub(1)
            .clamp(8, 40);
        RowTable {
            widths: columns
                .iter()
                .map(|c| c.chars().count().max(share))
                .collect(),
        }
    }

    pub fn border(&self) -> String {
        let parts: Vec<String> = self.widths.iter().map(|w| "-".repeat(*w)).collect();
        format!("+{}+", parts.join("+"))
    }

    pub fn line(&self, cells: &[String]) -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&self.widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("|{}|", parts.join("|"))
    }

    pub fn header(&self, columns: &[String]) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.border(),
            self.line(columns),
            self.border()
        )
    }

    pub fn row(&self, values: &[Json]) -> String {
        let cells: Vec<String> = values.iter().map(cell).collect();
        format!("{}\n", self.line(&cells))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entities_as_tables() {
        let streams = json!({"@type": "streams", "statementText": "SHOW STREAMS;", "streams": [
            {"type": "STREAM", "name": "RIDERS", "topic": "riders", "keyFormat": "KAFKA",
             "valueFormat": "JSON", "isWindowed": false}], "warnings": []});
        assert_eq!(
            entity(&streams, Format::Tabular),
            " Stream Name | Kafka Topic | Key Format | Value Format | Windowed\n\
             ------------------------------------------------------------------\n \
             RIDERS      | riders      | KAFKA      | JSON         | false\n\
             ------------------------------------------------------------------\n"
        );
        let status = json!({"@type": "currentStatus", "commandStatus": {"status": "SUCCESS",
            "message": "Stream created"}, "warnings": []});
        assert_eq!(
            entity(&status, Format::Tabular),
            " Message\n----------------\n Stream created\n----------------\n"
        );
        let described = json!({"@type": "sourceDescription", "sourceDescription": {
            "name": "S", "fields": [
                {"name": "K", "schema": {"type": "STRING"}, "type": "KEY"},
                {"name": "A", "schema": {"type": "ARRAY", "memberSchema": {"type": "INTEGER"}}}
            ]}, "warnings": [{"message": "careful"}]});
        let text = entity(&described, Format::Tabular);
        assert!(text.contains("Name                 : S\n"), "{text}");
        assert!(text.contains(" K     | VARCHAR(STRING)  (key)\n"), "{text}");
        assert!(text.contains(" A     | ARRAY<INTEGER>\n"), "{text}");
        assert!(text.ends_with("WARNING: careful\n"), "{text}");
        // JSON output is the entity itself.
        let back: Json = serde_json::from_str(&entity(&streams, Format::Json)).unwrap();
        assert_eq!(back, streams);
    }

    #[test]
    fn rows_share_the_terminal() {
        let cols = vec!["K".to_string(), "A_LONG_COLUMN_NAME".to_string()];
        let t = RowTable::new(&cols, 41);
        assert_eq!(
            t.border(),
            format!("+{}+{}+", "-".repeat(19), "-".repeat(19))
        );
        assert_eq!(
            t.row(&[json!("x"), json!(null)]),
            format!("|x{}|null{}|\n", " ".repeat(18), " ".repeat(15))
        );
        // A name longer than its share widens the column.
        let t = RowTable::new(&cols, 20);
        assert_eq!(
            t.border(),
            format!("+{}+{}+", "-".repeat(8), "-".repeat(18))
        );
    }
}
