#!/usr/bin/env python3
"""moto (AWS Secrets Manager, SSM, IAM, STS) in server mode on 127.0.0.1 port 0, with a
fake Lambda container-credentials endpoint, for the relay's secret tests.

Prints one JSON line when ready: {"port", "credentials_port", "account", "session": {...},
"user": {...}}. After setup, moto checks every request's SigV4 signature and IAM
permissions (INITIAL_NO_AUTH_ACTION_COUNT = 0), so the relay's signer is verified by a real
peer. Then reads JSON commands, one a line, on stdin and answers one JSON line each:
  {"op": "create_secret", "name", "value"}        -> {"arn"}
  {"op": "put_secret_value", "arn", "value"}      -> {}
  {"op": "put_parameter", "name", "value"}        -> {"arn"}   (SecureString)
  {"op": "credential_requests"}                   -> {"count", "authorizations"}
Exits when stdin closes or after --max-seconds.
"""
import argparse
import http.server
import json
import sys
import threading

import boto3
from moto import settings
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

REGION = "us-east-1"
READ_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameter"], "Resource": "*"}],
})
ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--container-token", default="container-token")
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    endpoint = f"http://127.0.0.1:{port}"

    def client(service, keys=None):
        keys = keys or {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **keys)

    iam = client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=ADMIN_POLICY)
    admin_key = iam.create_access_key(UserName="admin")["AccessKey"]
    admin = {"aws_access_key_id": admin_key["AccessKeyId"], "aws_secret_access_key": admin_key["SecretAccessKey"]}
    iam.create_user(UserName="relay")
    iam.put_user_policy(UserName="relay", PolicyName="read", PolicyDocument=READ_POLICY)
    user_key = iam.create_access_key(UserName="relay")["AccessKey"]
    account = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, **admin).get_caller_identity()["Account"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="function-role", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName="function-role", PolicyName="read", PolicyDocument=READ_POLICY)
    session = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, **admin).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/function-role", RoleSessionName="lambda")["Credentials"]

    # moto loads SSM's public parameters on first use (seconds): do it now, not in a test.
    client("ssm", admin).put_parameter(Name="/warm-up", Value="x", Type="String")

    # From here on, moto verifies signatures and permissions.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

    credential_requests = []

    class Credentials(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            credential_requests.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != args.container_token:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"AccessKeyId": user_key["AccessKeyId"], "SecretAccessKey": user_key["SecretAccessKey"],
                               "Token": None, "Expiration": "2099-01-01T00:00:00Z"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    credentials_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Credentials)
    threading.Thread(target=credentials_server.serve_forever, daemon=True).start()

    print(json.dumps({
        "port": port, "credentials_port": credentials_server.server_address[1], "account": account,
        "session": {"key": session["AccessKeyId"], "secret": session["SecretAccessKey"], "token": session["SessionToken"]},
        "user": {"key": user_key["AccessKeyId"], "secret": user_key["SecretAccessKey"]},
    }), flush=True)

    secrets = client("secretsmanager", admin)
    ssm = client("ssm", admin)

    def handle(command):
        op = command["op"]
        if op == "create_secret":
            return {"arn": secrets.create_secret(Name=command["name"], SecretString=command["value"])["ARN"]}
        if op == "put_secret_value":
            secrets.put_secret_value(SecretId=command["arn"], SecretString=command["value"])
            return {}
        if op == "put_parameter":
            ssm.put_parameter(Name=command["name"], Value=command["value"], Type="SecureString", Overwrite=True)
            return {"arn": f"arn:aws:ssm:{REGION}:{account}:parameter{command['name']}"}
        if op == "credential_requests":
            return {"count": len(credential_requests), "authorizations": credential_requests}
        return {"error": f"unknown op {op}"}

    timer = threading.Timer(args.max_seconds, lambda: sys.exit(0))
    timer.daemon = True
    timer.start()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as error:  # the test sees the failure
            answer = {"error": str(error)}
        print(json.dumps(answer), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
