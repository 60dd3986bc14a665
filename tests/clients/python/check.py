"""Drives the PyPI package ksql-python-ng against a Runnel server: create a stream, insert rows
(INSERT VALUES and /inserts-stream), run a CSAS, read it with push queries over HTTP/1.1 (/query)
and HTTP/2 (/query-stream), close a push query, and run a pull query.

Usage: python check.py http://127.0.0.1:PORT SUFFIX. Exits non-zero with the reason on any mismatch.
"""
import json
import re
import sys
import time

from ksql import KSQLAPI
from ksql.errors import KSQLError

url, suffix = sys.argv[1], sys.argv[2].upper()
client = KSQLAPI(url, timeout=60)
EARLIEST = {"auto.offset.reset": "earliest"}


def ok(step):
    print(f"ok - {step}", flush=True)


def lines(chunks):
    """The response's lines, whatever the chunking."""
    return [l for l in "".join(chunks).split("\n") if l.strip()]


src, out, table = f"PY_IN_{suffix}", f"PY_OUT_{suffix}", f"PY_T_{suffix}"
res = client.ksql(
    f"CREATE STREAM {src} (K STRING KEY, V INT) "
    f"WITH (KAFKA_TOPIC='{src.lower()}', VALUE_FORMAT='JSON', PARTITIONS=1);"
)
assert res[0]["commandStatus"]["status"] == "SUCCESS", res
ok("create stream")
assert client.ksql(f"INSERT INTO {src} (K, V) VALUES ('a', 1);") == []
assert client.ksql(f"INSERT INTO {src} (K, V) VALUES ('b', 2);") == []
acks = client.inserts_stream(src, [{"K": "c", "V": 3}])
assert acks == [{"status": "ok", "seq": 0}], acks
ok("insert rows")
res = client.ksql(f"CREATE STREAM {out} AS SELECT K, V * 10 AS W FROM {src} WHERE V > 1;")
assert res[0]["commandStatus"]["queryId"].startswith(f"CSAS_{out}_"), res
ok("csas")
streams = [s["name"] for s in client.ksql("SHOW STREAMS;")[0]["streams"]]
assert src in streams and out in streams, streams
ok("show streams")

# Push query over HTTP/1.1 (/query, one JSON array).
body = json.loads("".join(client.query(
    f"SELECT * FROM {out} EMIT CHANGES LIMIT 2;", stream_properties=EARLIEST, use_http2=False)))
assert body[0]["header"]["schema"] == "`K` STRING, `W` INTEGER", body
assert sorted(json.dumps(r["row"]["columns"]) for r in body[1:3]) == ['["b", 20]', '["c", 30]'], body
assert body[3] == {"finalMessage": "Limit Reached"}, body
ok("push query over HTTP/1.1")

# Push query over HTTP/2 (/query-stream, delimited).
got = lines(client.query(
    f"SELECT W FROM {out} EMIT CHANGES LIMIT 2;", stream_properties=EARLIEST, use_http2=True))
meta = json.loads(got[0])
assert meta["columnNames"] == ["W"], got
assert sorted(got[1:]) == ["[20]", "[30]"], got
ok("push query over HTTP/2")

# A push query without LIMIT, closed with close_query once its first row arrived.
stream = client.query(f"SELECT * FROM {out} EMIT CHANGES;", stream_properties=EARLIEST, use_http2=True)
buffered = ""
query_id = None
closed = False
for chunk in stream:
    buffered += chunk
    if query_id is None and "\n" in buffered:
        query_id = json.loads(buffered.split("\n")[0])["queryId"]
    if query_id and buffered.count("\n") >= 2 and not closed:
        assert client.close_query(query_id) is True
        closed = True
assert closed, buffered
assert client.close_query(query_id) is False  # already gone
ok("close push query")

# Pull query on a table.
client.ksql(f"CREATE TABLE {table} AS SELECT K, COUNT(*) AS N FROM {src} GROUP BY K;")
deadline = time.time() + 60
while True:
    try:
        got = lines(client.query(f"SELECT * FROM {table} WHERE K = 'b';", use_http2=True))
    except (KSQLError, ValueError) as e:
        if re.search(r"pull quer", str(e), re.I) and re.search(r"not supported|unsupported", str(e), re.I):
            print(f"SKIP pull query: the server does not support pull queries yet ({e})")
            break
        raise
    if len(got) > 1 or time.time() > deadline:
        assert json.loads(got[0])["columnNames"] == ["K", "N"], got
        assert got[1:] == ['["b",1]'], got
        ok("pull query")
        break
    time.sleep(0.5)
print("python client: all checks passed")
