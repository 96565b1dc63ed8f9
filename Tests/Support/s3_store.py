"""An S3-compatible store for the tests: moto's server with signatures checked.

Usage: s3_store.py READY_FILE, or s3_store.py put PORT ACCESS_KEY_ID SECRET BUCKET KEY FILE
(puts the file with boto3, creating the bucket if needed, and prints the HTTP status).
With READY_FILE it Starts moto on a free port of 127.0.0.1, makes an IAM user
with an access key allowed s3:* (the first three requests are the only unauthenticated
ones moto takes), and writes "PORT ACCESS_KEY_ID SECRET_ACCESS_KEY" to READY_FILE. Every
request after that must carry a valid AWS Signature Version 4 by that key. Runs until
stdin closes or it is killed.
"""
import os
import sys

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # read when moto is imported

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def main(ready_file: str) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="almanac-tests")
    key = iam.create_access_key(UserName="almanac-tests")["AccessKey"]
    iam.put_user_policy(UserName="almanac-tests", PolicyName="s3",
                        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}')
    with open(ready_file + ".part", "w") as f:
        f.write(f"{port} {key['AccessKeyId']} {key['SecretAccessKey']}\n")
    os.rename(ready_file + ".part", ready_file)
    sys.stdin.read()
    server.stop()


def put(port: str, access_key: str, secret: str, bucket: str, key: str, path: str) -> None:
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id=access_key, aws_secret_access_key=secret)
    try:
        if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=bucket)
        with open(path, "rb") as f:
            answer = s3.put_object(Bucket=bucket, Key=key, Body=f.read())
        print(answer["ResponseMetadata"]["HTTPStatusCode"])
    except s3.exceptions.ClientError as e:
        print(e.response["ResponseMetadata"]["HTTPStatusCode"])

if __name__ == "__main__":
    if sys.argv[1] == "put":
        put(*sys.argv[2:8])
    else:
        main(sys.argv[1])
