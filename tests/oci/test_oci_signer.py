"""OCI request signatures checked against an implementation we did not write: the oci SDK's.

Generates RSA keys on the fly (PKCS#8 and PKCS#1), signs the same requests (OCI Generative AI's
OpenAI-compatible chat and embeddings, a native chat call, a GET with a query, a non-ASCII body,
an empty body) at fixed times with `switchyard_providers::oci` (through the `oci_sign` example)
and with `oci.signer.Signer`, and requires the same `date`, `content-length`, `content-type`,
`x-content-sha256` and `authorization` headers (RSA PKCS#1 v1.5 is deterministic, so the
signatures are equal too). Each of our signatures is then verified over the message the SDK's
own vendored httpsig code builds, with the public key; a tampered one must not verify.

Usage: python test_oci_signer.py [PATH_TO_oci_sign_EXAMPLE]
Without a path the example is run with `cargo run -p switchyard-providers --example oci_sign`.
Without the `oci` package (pip could not install it) the test says so and exits 0, unless
SWITCHYARD_REQUIRE_SERVICES=1 (set by `.ci/run`), which makes it fail.
"""

import base64
import email.utils
import json
import os
import subprocess
import sys
import urllib.parse

try:
    import oci
    from oci._vendor import requests
    from oci._vendor.httpsig_cffi.utils import generate_message
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.exceptions import InvalidSignature
except ImportError as missing:
    if os.environ.get("SWITCHYARD_REQUIRE_SERVICES") == "1":
        print(f"FAIL: the oci Python SDK is not installed ({missing})")
        sys.exit(1)
    print(f"SKIP: the oci Python SDK is not installed ({missing}); pip install oci to run this check")
    sys.exit(0)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TENANCY = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq"
USER = "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq"
INFERENCE = "https://inference.generativeai.{}.oci.oraclecloud.com"
CHAT = json.dumps({"model": "openai.gpt-4.1", "messages": [{"role": "user", "content": "Hello, OCI"}]})


def key(pkcs1):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    form = serialization.PrivateFormat.TraditionalOpenSSL if pkcs1 else serialization.PrivateFormat.PKCS8
    pem = private.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode()
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.MD5())
    digest.update(der)
    fingerprint = ":".join(f"{b:02x}" for b in digest.finalize())
    return private, pem, fingerprint


CASES = [
    ("OpenAI-compatible chat", "POST", INFERENCE.format("us-chicago-1") + "/openai/v1/chat/completions", CHAT, 1714566896),
    (
        "embeddings in another region",
        "POST",
        INFERENCE.format("eu-frankfurt-1") + "/openai/v1/embeddings",
        json.dumps({"model": "cohere.embed-v4.0", "input": ["a", "b"]}),
        1767225599,
    ),
    ("native chat", "POST", INFERENCE.format("us-chicago-1") + "/20231130/actions/chat", CHAT, 1709164800),
    ("a non-ASCII body", "POST", INFERENCE.format("ap-osaka-1") + "/openai/v1/chat/completions",
     json.dumps({"messages": [{"role": "user", "content": "héllo 世界 🙂"}]}, ensure_ascii=False), 1709251199),
    ("an empty body", "POST", "http://127.0.0.1:9101/openai/v1/chat/completions", "", 1893456001),
    ("a GET with a query", "GET", INFERENCE.format("us-chicago-1") + "/20231130/models?compartmentId=x&limit=10", "", 1714566896),
]


def ours(cases, binary):
    if binary:
        command = [binary]
    else:
        command = ["cargo", "run", "--quiet", "-p", "switchyard-providers", "--example", "oci_sign"]
    payload = json.dumps(cases)
    done = subprocess.run(command, input=payload, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout)


def sdks(case, pem, key_id_parts):
    signer = oci.signer.Signer(*key_id_parts, None, private_key_content=pem)
    body = case["body"].encode("utf-8") if case["method"] != "GET" else None
    request = requests.Request(case["method"], case["url"], data=body, headers={"content-type": case["content_type"]})
    prepared = request.prepare()
    # The SDK signs the `date` it is given (setdefault): the case's time, formatted as it does.
    prepared.headers["date"] = email.utils.formatdate(case["time"], usegmt=True)
    before = {k.lower(): v for k, v in prepared.headers.items()}
    signer(prepared)
    after = {k.lower(): v for k, v in prepared.headers.items()}
    wanted = {"date", "content-length", "content-type", "x-content-sha256", "authorization"}
    signed = after["authorization"].split('headers="')[1].split('"')[0].split(" ")
    return {k: v for k, v in after.items() if k in wanted and (k in signed or k == "authorization" or k not in before)}


def verifies(private, case, headers):
    """Whether `headers`' signature verifies over the message the SDK's httpsig code builds."""
    url = urllib.parse.urlparse(case["url"])
    path = url.path + ("?" + url.query if url.query else "")
    params = dict(p.split("=", 1) for p in headers["authorization"][len("Signature "):].split(","))
    params = {k: v.strip('"') for k, v in params.items()}
    message = generate_message(params["headers"].split(" "), headers, url.netloc, case["method"], path)
    try:
        private.public_key().verify(base64.b64decode(params["signature"]), message, padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    passed = failed = 0
    for pkcs1 in (False, True):
        private, pem, fingerprint = key(pkcs1)
        key_id = f"{TENANCY}/{USER}/{fingerprint}"
        cases = [
            {"name": n, "method": m, "url": u, "body": b, "time": t, "content_type": "application/json",
             "key_id": key_id, "private_key": pem}
            for (n, m, u, b, t) in CASES
        ]
        for case, mine in zip(cases, ours(cases, binary), strict=True):
            label = f"{case['name']} ({'PKCS#1' if pkcs1 else 'PKCS#8'})"
            theirs = sdks(case, pem, (TENANCY, USER, fingerprint))
            host = urllib.parse.urlparse(case["url"]).netloc
            compared = {k: v for k, v in mine.items() if k != "host"}
            tampered = dict(mine, date=email.utils.formatdate(case["time"] + 1, usegmt=True))
            if (
                compared == theirs
                and mine.get("host") == host
                and verifies(private, case, mine)
                and not verifies(private, case, tampered)
            ):
                passed += 1
                print(f"ok   {label}")
            else:
                failed += 1
                print(f"FAIL {label}\n  ours: {mine}\n  oci:  {theirs}")
    print(f"oci {oci.__version__}")
    print(f"oci signer: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
