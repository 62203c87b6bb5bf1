"""An SQS queue subscribed to a deployment's SNS topic in the sandbox: what the notifications said."""

from __future__ import annotations

import json
from typing import Any

from bluegreen_provider.sandbox import Sandbox


class TopicQueue:
    """Creates ``topic_arn`` (moto's default account) with a queue subscribed; ``messages()`` drains it."""

    def __init__(self, sandbox: Sandbox, topic_arn: str, queue_name: str = "deployments") -> None:
        clients = sandbox.clients()
        sns, self.sqs = clients("sns"), clients("sqs")
        assert sns.create_topic(Name=topic_arn.rsplit(":", 1)[-1])["TopicArn"] == topic_arn
        self.url = self.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)

    def messages(self) -> list[dict[str, Any]]:
        """Every SNS envelope (Subject, Message, MessageAttributes) the queue holds, in arrival order."""
        got: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                got.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return got

    def by_event(self) -> dict[str, dict[str, Any]]:
        return {m["MessageAttributes"]["event"]["Value"]: m for m in self.messages()}
