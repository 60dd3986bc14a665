-- Runnel quickstart: a stream of page views, a derived stream, and a push query.
-- Run with: cargo run -- run sql-examples/quickstart.sql

CREATE STREAM pageviews (
    user_id VARCHAR KEY,
    page VARCHAR,
    duration_ms BIGINT,
    referrer VARCHAR
) WITH (KAFKA_TOPIC = 'pageviews', VALUE_FORMAT = 'JSON', PARTITIONS = 2);

INSERT INTO pageviews (user_id, page, duration_ms, referrer) VALUES ('alice', '/home', 1200, 'google');
INSERT INTO pageviews (user_id, page, duration_ms, referrer) VALUES ('bob', '/pricing', 300, NULL);
INSERT INTO pageviews (user_id, page, duration_ms, referrer) VALUES ('carol', '/docs/intro', 45000, 'hn');
INSERT INTO pageviews (user_id, page, duration_ms, referrer) VALUES ('alice', '/docs/sql', 8000, NULL);

-- Long reads of documentation pages, with derived columns.
CREATE STREAM long_reads WITH (KAFKA_TOPIC = 'long_reads') AS
    SELECT user_id,
           UCASE(page) AS page,
           duration_ms / 1000.0 AS read_secs,
           CASE WHEN referrer IS NULL THEN 'direct' ELSE referrer END AS source
    FROM pageviews
    WHERE page LIKE '/docs%' AND duration_ms > 1000
    EMIT CHANGES;

SET 'auto.offset.reset' = 'earliest';

SELECT user_id, page, read_secs, source FROM long_reads EMIT CHANGES LIMIT 2;
