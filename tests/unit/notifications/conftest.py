"""Real receivers for the notifications: an SNS topic on a moto server delivering to an SQS queue, and a
Slack incoming-webhook stand-in on 127.0.0.1. Each is reached only through an Airflow connection."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
SNS_CONN = "bluegreen_sns"
SLACK_CONN = "deploy_chat"
SLACK_TOKEN = "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


def aws_connection(endpoint_url: str) -> str:
    """An AWS connection aimed at ``endpoint_url``, trying each call once (a dead endpoint fails fast)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": REGION,
                "config_kwargs": {"retries": {"total_max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5},
            },
        }
    )


@dataclass
class Topic:
    """An SNS topic with an SQS queue subscribed; ``messages()`` reads what SNS delivered to the queue."""

    arn: str
    sqs: Any
    queue_url: str

    def messages(self) -> list[dict[str, Any]]:
        """The SNS envelopes delivered so far (Message, Subject, MessageAttributes), oldest first."""
        got = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not batch.get("Messages"):
                return got
            for message in batch["Messages"]:
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def topic(moto_server, monkeypatch) -> Topic:
    """A fresh topic and queue on the moto server, and connection ``bluegreen_sns`` to reach it."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{SNS_CONN.upper()}", aws_connection(moto_server))
    sns = boto3.client("sns", endpoint_url=moto_server, region_name=REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name=REGION)
    name = f"deployments-{uuid.uuid4().hex[:12]}"
    arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return Topic(arn, sqs, queue_url)


@dataclass
class Webhook:
    """What the webhook stand-in received: (path, JSON body) per POST; ``status`` is what it answers."""

    url: str
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def slack_webhook(monkeypatch) -> Iterator[Webhook]:
    """A Slack incoming-webhook stand-in on 127.0.0.1 and connection ``deploy_chat`` pointing at it."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.posts.append((self.path, json.loads(body)))
            answer = b"ok" if hook.status == 200 else b"invalid_token"
            self.send_response(hook.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="slack-webhook")
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SLACK_CONN.upper()}",
        json.dumps({"conn_type": "slackwebhook", "host": hook.url, "password": SLACK_TOKEN}),
    )
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
