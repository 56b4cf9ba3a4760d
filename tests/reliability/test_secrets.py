"""A planted secret appears in nothing the pipeline writes: files, warehouse, snapshots, output, errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import boto3

from tests.factories import row, write_csv

SECRET = "planted-secret-7f3a9c1e"


def run(home: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "awardwatch.flows.cli", *args], env=env, capture_output=True, text=True, timeout=180)


def test_a_planted_secret_is_written_nowhere(tmp_path, moto_server):
    boto3.client("s3", endpoint_url=moto_server, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1").create_bucket(Bucket="secrets-test")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWARDWATCH_", "AWS_"))}
    env.update(AWARDWATCH_HOME=str(tmp_path / "home"), AWARDWATCH_SNAPSHOT_URL="s3://secrets-test/aw", AWS_ENDPOINT_URL=moto_server,
               AWS_ACCESS_KEY_ID="AKIAPLANTED", AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               AWARDWATCH_USASPENDING_URL=f"http://awardwatch:{SECRET}@127.0.0.1:9/", AWARDWATCH_HTTP_ATTEMPTS="1",
               AWARDWATCH_TASK_RETRIES="0", AWARDWATCH_LOCK_WAIT="1")
    feed = write_csv(tmp_path / "a.csv", [row(), row(piid="BAD", action_date="x")])
    outputs = [
        run(tmp_path, env, "ingest", str(feed), "--max-rejected", "1"),
        run(tmp_path, env, "query", "--snapshot", "latest", "SELECT count(*) FROM transactions"),
        run(tmp_path, env, "runs", "--format", "json"),
        run(tmp_path, env, "publish", "--snapshot-url", "s3://no-such-bucket/aw"),  # fails: S3 error message
        run(tmp_path, env, "backfill", "--start", "2018-01-01", "--end", "2018-01-31", "--agency", "ICE"),  # fails: endpoint down
    ]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[1].returncode == 0 and re.search(r"│\s+1\s+│", outputs[1].stdout), outputs[1].stdout  # count(*) is 1
    assert outputs[3].returncode == 1 and outputs[4].returncode != 0
    assert "127.0.0.1:9" in outputs[4].stderr + outputs[4].stdout  # the error names the endpoint...
    for out in outputs:
        assert SECRET not in out.stdout + out.stderr  # ...but never its password
    written = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    s3 = boto3.client("s3", endpoint_url=moto_server, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    objects = s3.list_objects_v2(Bucket="secrets-test").get("Contents", [])
    assert objects
    for obj in objects:
        assert SECRET.encode() not in s3.get_object(Bucket="secrets-test", Key=obj["Key"])["Body"].read(), obj["Key"]
