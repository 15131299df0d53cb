#!/usr/bin/env python3
"""Baseline for figures 5 and 6: a minimal Python Lambda handler that imports boto3, with a
tiny Runtime API loop (what a custom runtime does). Timed exactly like the Rust bootstraps by
`benchkit lambda`: from process start to the first GET .../invocation/next.

    python python_boto3_bootstrap.py [--client]

--client also creates an SQS client at init, as a real ingest handler would.
"""
import json
import os
import sys
import urllib.request

import boto3  # noqa: E402  (the cost being measured)

if "--client" in sys.argv:
    SQS = boto3.client("sqs")

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"


def handler(event):
    json.loads(event.get("body") or "null")
    return {"statusCode": 200, "body": ""}


while True:
    with urllib.request.urlopen(f"{API}/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    out = json.dumps(handler(event)).encode()
    post = urllib.request.Request(f"{API}/{request_id}/response", data=out, method="POST")
    urllib.request.urlopen(post).read()
