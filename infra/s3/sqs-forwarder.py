#!/usr/bin/env python3
"""Forwards S3 event notifications from an SQS queue to Almanac.

AWS S3 can send its bucket notifications to an SQS queue (or to EventBridge, which can call
Almanac's HTTPS endpoint itself through an API destination). This forwarder long-polls the
queue and POSTs each message body — an S3 event notification — to
`$ALMANAC_HTTP/v1/s3/notifications` with the tenant's publish token; a message is deleted
from the queue only after Almanac answered 202, so nothing is lost (a message delivered
twice is one import: Almanac derives the arrival's id from the object's version).

    ALMANAC_HTTP=https://almanac.example.com ALMANAC_TOKEN=alm_… \
    AWS_REGION=eu-west-1 python3 infra/s3/sqs-forwarder.py https://sqs.eu-west-1.amazonaws.com/123/almanac-arrivals

Credentials for SQS come from boto3's usual chain (environment, profile, instance role).
An SNS-wrapped message (S3 → SNS → SQS) is unwrapped; a message Almanac refuses with a
4xx (not a notification) is logged and left for the queue's redrive policy.
"""
import json
import os
import sys
import urllib.error
import urllib.request

import boto3


def forward(body: str, base: str, token: str, timeout: float = 30) -> int:
    """POSTs one notification; returns Almanac's HTTP status."""
    try:
        envelope = json.loads(body)
        if isinstance(envelope, dict) and envelope.get("Type") == "Notification" and "Message" in envelope:
            body = envelope["Message"]  # S3 → SNS → SQS
    except ValueError:
        pass
    request = urllib.request.Request(base.rstrip("/") + "/v1/s3/notifications", data=body.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


def run_once(sqs, queue: str, base: str, token: str, wait: int = 20) -> int:
    """One long poll: forwards what arrived, deletes what Almanac accepted; returns how many."""
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
    done = 0
    for m in messages:
        status = forward(m["Body"], base, token)
        if status == 202:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
            done += 1
        else:
            print(f"almanac answered {status} for message {m['MessageId']}; left in the queue", file=sys.stderr)
    return done


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: sqs-forwarder.py QUEUE_URL (with ALMANAC_HTTP and ALMANAC_TOKEN set)")
    base, token = os.environ["ALMANAC_HTTP"], os.environ["ALMANAC_TOKEN"]
    sqs = boto3.client("sqs")
    while True:
        run_once(sqs, sys.argv[1], base, token)


if __name__ == "__main__":
    main()
