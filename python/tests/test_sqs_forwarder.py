"""infra/s3/sqs-forwarder.py against an SQS queue (moto's) and a real local HTTP server in
Almanac's place: each notification is POSTed with the bearer token, an SNS envelope is
unwrapped, and a message is deleted from the queue only when the answer is 202."""
import http.server
import importlib.util
import json
import os
import threading
import unittest

from moto import mock_aws
import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location("sqs_forwarder", os.path.join(HERE, "..", "..", "infra", "s3", "sqs-forwarder.py"))
forwarder = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(forwarder)

NOTIFICATION = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "shop-data"},
                                                                     "object": {"key": "sales/a.csv", "size": 3, "sequencer": "01"}}}]}


class Almanac(http.server.BaseHTTPRequestHandler):
    received = []
    answer = 202

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Almanac.received.append((self.path, self.headers["Authorization"], json.loads(body)))
        self.send_response(Almanac.answer)
        self.end_headers()

    def log_message(self, *args):
        pass


class SQSForwarderTests(unittest.TestCase):
    def setUp(self):
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(k, "testing")  # moto's queue needs some credentials, never real ones
        Almanac.received, Almanac.answer = [], 202
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Almanac)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def tearDown(self):
        self.server.shutdown()

    @mock_aws
    def test_forwards_each_notification_and_deletes_only_what_almanac_accepted(self):
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="arrivals", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(NOTIFICATION))
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Type": "Notification", "Message": json.dumps(NOTIFICATION)}))
        self.assertEqual(forwarder.run_once(sqs, queue, self.base, "alm_test", wait=0), 2)
        self.assertEqual([r[0] for r in Almanac.received], ["/v1/s3/notifications"] * 2)
        self.assertTrue(all(r[1] == "Bearer alm_test" for r in Almanac.received))
        self.assertEqual([r[2] for r in Almanac.received], [NOTIFICATION, NOTIFICATION], "the SNS envelope is unwrapped")
        self.assertEqual(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []), [])

        # A refusal leaves the message in the queue.
        Almanac.answer = 400
        sqs.send_message(QueueUrl=queue, MessageBody="{}")
        self.assertEqual(forwarder.run_once(sqs, queue, self.base, "alm_test", wait=0), 0)
        self.assertEqual(len(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])), 1)


if __name__ == "__main__":
    unittest.main()
