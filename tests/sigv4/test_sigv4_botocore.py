"""SigV4 checked against an implementation we did not write: botocore's signer.

Signs the same Bedrock requests (fixed credentials, regions, service `bedrock`, fixed times) with
`switchyard_providers::sigv4` (through the `sigv4_sign` example) and with botocore's `SigV4Auth`,
and requires the same `Authorization`, `X-Amz-Date` and `X-Amz-Security-Token` headers, and
that neither adds any other header.

Usage: python test_sigv4_botocore.py [PATH_TO_sigv4_sign_EXAMPLE]
Without a path the example is run with `cargo run -p switchyard-providers --example sigv4_sign`.
"""

import datetime
import json
import os
import subprocess
import sys
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token/with=padding=="
RUNTIME = "https://bedrock-runtime.{}.amazonaws.com"
CONVERSE_BODY = json.dumps(
    {
        "messages": [{"role": "user", "content": [{"text": "Hello, Bedrock"}]}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.5},
    }
)


def at(*ymdhms):
    """A naive UTC datetime and its Unix seconds."""
    when = datetime.datetime(*ymdhms)
    return when, int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


CASES = [
    {
        "name": "converse",
        "method": "POST",
        "url": RUNTIME.format("us-east-1") + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "headers": [["content-type", "application/json"]],
        "body": CONVERSE_BODY,
        "region": "us-east-1",
        "token": None,
        "time": at(2024, 5, 1, 12, 34, 56),
    },
    {
        "name": "converse with a session token",
        "method": "POST",
        "url": RUNTIME.format("us-east-1") + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "headers": [["content-type", "application/json"]],
        "body": CONVERSE_BODY,
        "region": "us-east-1",
        "token": TOKEN,
        "time": at(2024, 5, 1, 12, 34, 56),
    },
    {
        "name": "converse-stream on an EU inference profile",
        "method": "POST",
        "url": RUNTIME.format("eu-central-1") + "/model/eu.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream",
        "headers": [["content-type", "application/json"], ["accept", "application/vnd.amazon.eventstream"]],
        "body": CONVERSE_BODY,
        "region": "eu-central-1",
        "token": TOKEN,
        "time": at(2025, 12, 31, 23, 59, 59),
    },
    {
        "name": "an inference-profile ARN as the model id",
        "method": "POST",
        "url": RUNTIME.format("us-west-2")
        + "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.meta.llama3-1-8b-instruct-v1%3A0/converse",
        "headers": [["content-type", "application/json"]],
        "body": CONVERSE_BODY,
        "region": "us-west-2",
        "token": None,
        "time": at(2024, 2, 29, 0, 0, 0),
    },
    {
        "name": "a non-ASCII body and a header with runs of spaces",
        "method": "POST",
        "url": RUNTIME.format("ap-northeast-1") + "/model/amazon.nova-lite-v1%3A0/converse",
        "headers": [["content-type", "application/json"], ["x-custom", "  a   b  c "]],
        "body": json.dumps({"messages": [{"role": "user", "content": [{"text": "héllo 世界 🙂"}]}]}, ensure_ascii=False),
        "region": "ap-northeast-1",
        "token": None,
        "time": at(2024, 2, 29, 23, 59, 59),
    },
    {
        "name": "an empty body",
        "method": "POST",
        "url": RUNTIME.format("us-east-1") + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "headers": [],
        "body": "",
        "region": "us-east-1",
        "token": TOKEN,
        "time": at(2030, 1, 1, 0, 0, 1),
    },
    {
        "name": "a GET with a query string (control plane)",
        "method": "GET",
        "url": "https://bedrock.us-east-1.amazonaws.com/foundation-models?byProvider=Anthropic&byOutputModality=TEXT",
        "headers": [],
        "body": "",
        "region": "us-east-1",
        "token": None,
        "time": at(2024, 5, 1, 12, 34, 56),
    },
    {
        "name": "repeated and encoded query parameters",
        "method": "GET",
        "url": "https://bedrock.us-east-1.amazonaws.com/inference-profiles?b=2&a=x%20y&a=1&maxResults=10",
        "headers": [],
        "body": "",
        "region": "us-east-1",
        "token": TOKEN,
        "time": at(2024, 5, 1, 12, 34, 56),
    },
]


def ours(cases, binary):
    payload = [
        {
            "method": c["method"],
            "url": c["url"],
            "headers": c["headers"],
            "body": c["body"],
            "region": c["region"],
            "service": "bedrock",
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
            "session_token": c["token"],
            "time": c["time"][1],
        }
        for c in cases
    ]
    if binary:
        command = [binary]
    else:
        command = ["cargo", "run", "--quiet", "-p", "switchyard-providers", "--example", "sigv4_sign"]
    done = subprocess.run(command, input=json.dumps(payload), capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def botocores(case):
    request = AWSRequest(
        method=case["method"], url=case["url"], headers=dict(case["headers"]), data=case["body"].encode("utf-8")
    )
    before = {k.lower() for k in request.headers.keys()}
    signer = botocore.auth.SigV4Auth(Credentials(KEY_ID, SECRET, case["token"]), "bedrock", case["region"])
    when = case["time"][0]
    # botocore reads the clock in add_auth: through get_current_datetime() in recent releases,
    # datetime.datetime.utcnow() in older ones.
    if hasattr(botocore.auth, "get_current_datetime"):
        clock = mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when)
    else:
        fake = mock.MagicMock(wraps=datetime)
        fake.datetime.utcnow.return_value = when
        clock = mock.patch.object(botocore.auth, "datetime", fake)
    with clock:
        signer.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items() if k.lower() not in before}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    results = ours(CASES, binary)
    passed = failed = 0
    for case, mine in zip(CASES, results, strict=True):
        theirs = botocores(case)
        if mine == theirs and {"authorization", "x-amz-date"} <= set(mine) and ("x-amz-security-token" in mine) == bool(case["token"]):
            passed += 1
            print(f"ok   {case['name']}")
        else:
            failed += 1
            print(f"FAIL {case['name']}\n  ours:     {mine}\n  botocore: {theirs}")
    print(f"botocore {botocore.__version__}")
    print(f"sigv4: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
