"""boto3 clients aimed at the sandbox's moto server.

One client per thread and service: the simulator, the HTTP server and the caller each talk to moto
concurrently, and boto3 clients are cheapest to reason about when never shared across threads.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class Clients:
    """Thread-local boto3 clients for one moto endpoint."""

    def __init__(self, endpoint_url: str, region: str = REGION) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._local = threading.local()
        # No retries: moto on loopback either answers or is gone, and a retry storm would only hide that.
        self._config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)

    def __call__(self, service: str) -> Any:
        cache: dict[str, Any] = self._local.__dict__.setdefault("clients", {})
        if service not in cache:
            cache[service] = boto3.session.Session().client(
                service,
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                config=self._config,
            )
        return cache[service]
