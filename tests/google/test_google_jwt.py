"""Our Google service-account assertions against google-auth's, on the same keys and times.

For each case (PKCS#8 and PKCS#1 keys, with and without a key id, several times), google-auth's
`service_account.Credentials._make_authorization_grant_assertion()` (the JWT it exchanges for an
access token, with the cloud-platform scope) is made with the clock fixed, and must equal ours
byte for byte (RS256 is deterministic); ours must verify with google-auth's own JWT decoder too.
Usage: python test_google_jwt.py PATH_TO_google_jwt_EXAMPLE
"""

import datetime
import json
import os
import subprocess
import sys
from unittest import mock

from cryptography.hazmat.primitives import serialization
from google.auth import jwt
from google.oauth2 import service_account

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "..", "oci")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def key_info(pem, key_id):
    info = {
        "type": "service_account",
        "client_email": "gateway@switchyard-test.iam.gserviceaccount.com",
        "private_key": pem,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    if key_id is not None:
        info["private_key_id"] = key_id
    return info


def theirs(info, time):
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    now = datetime.datetime.fromtimestamp(time, datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch("google.auth._helpers.utcnow", return_value=now):
        return credentials._make_authorization_grant_assertion().decode()


def main():
    binary = sys.argv[1]
    cases = []
    for name in ("test_key.pem", "test_key_pkcs1.pem"):
        pem = open(os.path.join(KEYS, name)).read()
        for key_id in ("0123456789abcdef0123456789abcdef01234567", None):
            for time in (1767225600, 1700000000, 2000000000):
                cases.append({"client_email": key_info(pem, key_id)["client_email"], "private_key_id": key_id,
                              "private_key": pem, "time": time})
    out = subprocess.run([binary], input=json.dumps(cases), capture_output=True, text=True, check=True)
    ours = json.loads(out.stdout)
    failed = 0
    for case, mine in zip(cases, ours):
        info = key_info(case["private_key"], case["private_key_id"])
        expected = theirs(info, case["time"])
        kind = "pkcs1" if "RSA PRIVATE" in case["private_key"] else "pkcs8"
        label = f"kid={case['private_key_id'] is not None} time={case['time']} key={kind}"
        if mine != expected:
            failed += 1
            print(f"FAIL {label}\n  ours:   {mine}\n  theirs: {expected}")
            continue
        public = serialization.load_pem_private_key(case["private_key"].encode(), None).public_key()
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        claims = jwt.decode(mine, certs=pem, verify=True, audience="https://oauth2.googleapis.com/token",
                            clock_skew_in_seconds=10**10)
        assert claims["iss"] == info["client_email"] and claims["scope"] == SCOPE, claims
        print(f"ok   {label}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
