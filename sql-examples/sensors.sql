-- Continuous sensor aggregation: per-sensor count, average, min and max per minute.
-- Run with: cargo run -- run sql-examples/sensors.sql

CREATE STREAM readings (
    sensor_id VARCHAR KEY,
    temperature DOUBLE,
    humidity DOUBLE
) WITH (KAFKA_TOPIC = 'readings', VALUE_FORMAT = 'JSON', PARTITIONS = 4);

-- Readings at 12:00:05, 12:00:20, 12:00:40, 12:01:10 and 12:02:30 UTC (ROWTIME in epoch ms), in
-- time order: stream time only moves forward, and a record older than its window's end plus the
-- grace period is dropped as late (and written to the processing log).
INSERT INTO readings (ROWTIME, sensor_id, temperature, humidity) VALUES (1700049605000, 's-1', 21.5, 40.0);
INSERT INTO readings (ROWTIME, sensor_id, temperature, humidity) VALUES (1700049620000, 's-2', 19.0, 55.0);
INSERT INTO readings (ROWTIME, sensor_id, temperature, humidity) VALUES (1700049640000, 's-1', 22.5, 41.0);
INSERT INTO readings (ROWTIME, sensor_id, temperature, humidity) VALUES (1700049670000, 's-1', 23.0, 42.0);
INSERT INTO readings (ROWTIME, sensor_id, temperature, humidity) VALUES (1700049750000, 's-2', 18.0, 56.0);

-- Every update, as readings arrive.
CREATE TABLE sensor_stats WITH (KAFKA_TOPIC = 'sensor_stats') AS
    SELECT sensor_id,
           COUNT(*) AS readings,
           AVG(temperature) AS avg_temp,
           MIN(temperature) AS min_temp,
           MAX(temperature) AS max_temp
    FROM readings
    WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
    GROUP BY sensor_id
    EMIT CHANGES;

-- One final result per sensor and minute, once the minute (plus grace) has passed.
CREATE TABLE sensor_stats_final WITH (KAFKA_TOPIC = 'sensor_stats_final') AS
    SELECT sensor_id,
           COUNT(*) AS readings,
           AVG(temperature) AS avg_temp,
           MIN(temperature) AS min_temp,
           MAX(temperature) AS max_temp
    FROM readings
    WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
    GROUP BY sensor_id
    EMIT FINAL;

SET 'auto.offset.reset' = 'earliest';

SELECT sensor_id, WINDOWSTART, WINDOWEND, COUNT(*) AS readings, AVG(temperature) AS avg_temp
    FROM readings
    WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)
    GROUP BY sensor_id
    EMIT CHANGES
    LIMIT 4;
