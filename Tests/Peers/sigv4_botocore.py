#!/usr/bin/env python3
"""SigV4 signatures computed by botocore, the AWS SDK for Python: the oracle the Swift
signer is compared with (Tests/RelayAWSTests/SigV4SignerTests.swift).

Reads a JSON list of cases on stdin, each
  {"method", "url", "headers": [[name, value], ...], "body", "access_key", "secret_key",
   "token" (optional), "region", "service", "timestamp": "20150830T123600Z"}
where headers already hold X-Amz-Date (and X-Amz-Security-Token when signed), and prints a
JSON list of {"signature", "canonical_request"}. The signing time is fixed the way moto
verifies signatures: through the request context, not the wall clock.
"""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(case):
    request = AWSRequest(method=case["method"], url=case["url"], data=case["body"].encode())
    for name, value in case["headers"]:
        request.headers[name] = value  # HTTPHeaders keeps repeated names
    request.context["timestamp"] = case["timestamp"]
    credentials = Credentials(case["access_key"], case["secret_key"], case.get("token"))
    auth = SigV4Auth(credentials, case["service"], case["region"])
    canonical = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical)
    return {"signature": auth.signature(string_to_sign, request), "canonical_request": canonical}


def main():
    cases = json.load(sys.stdin)
    json.dump([sign(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
