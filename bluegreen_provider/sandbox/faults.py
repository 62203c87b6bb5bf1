"""A fault-injecting HTTP proxy in front of the sandbox's moto server: AWS on a bad day.

AWS answers some calls with throttling or 503, and connections drop — sometimes after the request
was applied, so the caller never learns that its change landed. The proxy listens on 127.0.0.1,
forwards every request to moto, and for a configured share of them (drawn per request from a seeded
RNG) answers instead with one of the :data:`KINDS`:

- ``throttle``: the service's throttling answer — Route53 ``400 Throttling`` "Rate exceeded",
  Lambda ``429 TooManyRequestsException``, CloudWatch ``400 ThrottlingException`` — in the
  protocol the client spoke (rest-xml, rest-json, JSON, CBOR or query);
- ``unavailable``: ``503 ServiceUnavailable``;
- ``drop``: the connection is closed without an answer; the request never reached moto;
- ``drop_applied``: the request is forwarded (it applies) and the connection is closed before the
  answer: the case a client's retry must not turn into a double change;
- ``slow``: forwarded and answered after ``slow_seconds``.

Only clients given :attr:`FaultProxy.url` see faults; the sandbox's own clients (traffic router,
metrics, seeding) keep talking to moto directly. Every fault is recorded (:meth:`FaultProxy.injected`).

A :class:`Gate` (:meth:`FaultProxy.hold`) holds the next request of one operation, before moto applies
it or after, until it is released: the moment a crash test kills the process that is waiting for
that answer, as when a worker dies in the middle of an AWS call.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bluegreen_provider.sandbox.serving import ServingThread

KINDS = ("throttle", "unavailable", "drop", "drop_applied", "slow")
# Friendly names for the SigV4 signing names the proxy reads from each request.
SERVICE_ALIASES = {"cloudwatch": "monitoring"}
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "expect", "content-length"}
)  # fmt: skip
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_SDK_ATTEMPT = re.compile(r"attempt=(\d+)")  # botocore's amz-sdk-request header: "attempt=2; max=10"
_FORWARD_TIMEOUT = 60.0


@dataclass(frozen=True)
class FaultPlan:
    """Which requests fail and how: ``share`` of them (0..1), each with one of ``kinds`` at random.

    :param share: the share of requests answered with a fault.
    :param kinds: the faults to choose from, equally likely (see :data:`KINDS`).
    :param seed: seeds the RNG that picks which requests fail and how.
    :param services: only these services see faults (signing names ``route53``, ``lambda``,
        ``monitoring``; ``cloudwatch`` is accepted); empty: every service.
    :param operations: only these operations (e.g. ``ChangeResourceRecordSets``); empty: every one.
    :param slow_seconds: how long a ``slow`` answer is held back.
    :param limit: at most this many faults in all (None: no limit), e.g. to fail only the first
        matching request.
    """

    share: float = 0.2
    kinds: tuple[str, ...] = KINDS
    seed: int = 13
    services: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    slow_seconds: float = 1.0
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("kinds", "services", "operations"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "services", tuple(SERVICE_ALIASES.get(s, s) for s in self.services))
        problems = []
        if isinstance(self.share, bool) or not isinstance(self.share, int | float) or not 0 <= self.share <= 1:
            problems.append(f"share must be a number in 0..1, got {self.share!r}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            problems.append(f"kinds must be a non-empty selection of {list(KINDS)}, got {list(self.kinds)}")
        if not isinstance(self.slow_seconds, int | float) or self.slow_seconds < 0:
            problems.append(f"slow_seconds must be >= 0, got {self.slow_seconds!r}")
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0
        ):
            problems.append(f"limit must be an int >= 0 or None, got {self.limit!r}")
        if problems:
            raise ValueError("invalid fault plan: " + "; ".join(problems))

    def applies_to(self, service: str, operation: str) -> bool:
        return (not self.services or service in self.services) and (not self.operations or operation in self.operations)


@dataclass
class Gate:
    """Holds the next request of ``service`` ``operation`` until :meth:`release` (or ``limit_seconds``).

    :param after_apply: hold it after moto applied it, before the answer (the caller cannot tell
        whether its change landed); otherwise before it reaches moto.
    :param matching: only a request whose body contains this text, e.g. a change batch's comment.
    """

    service: str
    operation: str
    after_apply: bool = False
    matching: str | None = None
    limit_seconds: float = 300.0
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_reached(self, timeout: float) -> bool:
        """Whether a request reached the gate within ``timeout`` seconds."""
        return self.reached.wait(timeout)

    def release(self) -> None:
        self.released.set()

    def _hold(self) -> None:
        self.reached.set()
        self.released.wait(self.limit_seconds)


@dataclass(frozen=True)
class Injected:
    """One fault the proxy answered with."""

    at: float
    service: str
    operation: str
    kind: str


@dataclass
class _Tally:
    requests: int = 0
    injected: list[Injected] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)  # botocore's attempt number -> requests


# -- reading a request -------------------------------------------------------------------------------

_ROUTE53_OPERATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(rf"^/2013-04-01/{pattern}/?$"), name)
    for method, pattern, name in (
        ("POST", r"hostedzone/[^/]+/rrset", "ChangeResourceRecordSets"),
        ("GET", r"hostedzone/[^/]+/rrset", "ListResourceRecordSets"),
        ("GET", r"hostedzone/[^/]+", "GetHostedZone"),
        ("GET", r"hostedzone", "ListHostedZones"),
        ("GET", r"hostedzonesbyname", "ListHostedZonesByName"),
        ("GET", r"change/[^/]+", "GetChange"),
        ("POST", r"healthcheck", "CreateHealthCheck"),
        ("GET", r"healthcheck", "ListHealthChecks"),
        ("GET", r"healthcheck/[^/]+/status", "GetHealthCheckStatus"),
        ("GET", r"healthcheck/[^/]+", "GetHealthCheck"),
        ("POST", r"healthcheck/[^/]+", "UpdateHealthCheck"),
        ("DELETE", r"healthcheck/[^/]+", "DeleteHealthCheck"),
        ("GET", r"tags/[^/]+/[^/]+", "ListTagsForResource"),
        ("POST", r"tags/[^/]+/[^/]+", "ChangeTagsForResource"),
    )
)
_LAMBDA_OPERATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(rf"^/20\d\d-\d\d-\d\d/functions{pattern}/?$"), name)
    for method, pattern, name in (
        ("GET", r"/[^/]+/aliases/[^/]+", "GetAlias"),
        ("PUT", r"/[^/]+/aliases/[^/]+", "UpdateAlias"),
        ("POST", r"/[^/]+/aliases", "CreateAlias"),
        ("GET", r"/[^/]+/aliases", "ListAliases"),
        ("GET", r"/[^/]+/versions", "ListVersionsByFunction"),
        ("POST", r"/[^/]+/versions", "PublishVersion"),
        ("PUT", r"/[^/]+/code", "UpdateFunctionCode"),
        ("GET", r"/[^/]+/configuration", "GetFunctionConfiguration"),
        ("POST", r"/[^/]+/invocations", "Invoke"),
        ("GET", r"/[^/]+", "GetFunction"),
        ("DELETE", r"/[^/]+", "DeleteFunction"),
        ("GET", r"", "ListFunctions"),
    )
)


def service_of(headers: Mapping[str, str]) -> str:
    """The SigV4 signing name of a request (``route53``, ``lambda``, ``monitoring``, …); ``""`` if unsigned."""
    match = _CREDENTIAL_SCOPE.search(headers.get("Authorization", "") or "")
    return match.group(1) if match else ""


def operation_of(service: str, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
    """The API operation a request calls, as AWS names it; ``METHOD /path`` when not known."""
    path = urlsplit(path).path
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        return path.rstrip("/").rsplit("/", 1)[-1]
    table = {"route53": _ROUTE53_OPERATIONS, "lambda": _LAMBDA_OPERATIONS}.get(service, ())
    for want, pattern, name in table:
        if method == want and pattern.match(path):
            return name
    action = re.search(rb"(?:^|&)Action=([A-Za-z]+)", body)  # the query protocol
    return action.group(1).decode() if action else f"{method} {path}"


def protocol_of(service: str, headers: Mapping[str, str]) -> str:
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        return "cbor"
    if headers.get("X-Amz-Target"):
        return "json"
    return {"route53": "rest-xml", "lambda": "rest-json"}.get(service, "query")


# -- fault answers -------------------------------------------------------------------------------


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for extra, size in ((24, 1), (25, 2), (26, 4)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | extra]) + length.to_bytes(size, "big")
    raise ValueError("too long for this encoder")


def cbor_text_map(items: Mapping[str, str]) -> bytes:
    """A CBOR map of text strings (all an RPC v2 CBOR error body needs)."""
    out = bytearray(_cbor_head(5, len(items)))
    for key, value in items.items():
        for text in (key, value):
            raw = text.encode()
            out += _cbor_head(3, len(raw)) + raw
    return bytes(out)


def fault_answer(kind: str, service: str, protocol: str) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body AWS answers a throttled or unavailable request with."""
    request_id = str(uuid.uuid4())
    if kind == "throttle":
        status, message = (429 if service == "lambda" else 400), "Rate exceeded"
        code = {"rest-xml": "Throttling", "query": "Throttling", "rest-json": "TooManyRequestsException"}.get(
            protocol, "ThrottlingException"
        )
    elif kind == "unavailable":
        status, code, message = 503, "ServiceUnavailable", "Service is unavailable; try again"
    else:
        raise ValueError(f"{kind!r} is not answered with an error")
    headers = {"x-amzn-RequestId": request_id}
    if protocol in ("rest-xml", "query"):
        namespace = "https://route53.amazonaws.com/doc/2013-04-01/" if protocol == "rest-xml" else ""
        side = "Sender" if status < 500 else "Receiver"
        body = (
            f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{namespace}"><Error><Type>{side}</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        headers["Content-Type"] = "text/xml"
    elif protocol == "cbor":
        body = cbor_text_map({"__type": code, "message": message})
        headers |= {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    else:
        body = json.dumps({"__type": code, "message": message, "Type": "User" if status < 500 else "Service"}).encode()
        headers |= {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    return status, headers, body


# -- the proxy -----------------------------------------------------------------------------------


class FaultProxy:
    """An HTTP proxy on ``host`` that forwards to ``target_url`` and answers a share of requests with faults."""

    def __init__(self, target_url: str, plan: FaultPlan, *, host: str = "127.0.0.1", port: int = 0) -> None:
        target = urlsplit(target_url)
        if target.scheme != "http" or not target.hostname or not target.port:
            raise ValueError(f"the proxy forwards to an http://host:port URL, got {target_url!r}")
        self.target = (target.hostname, target.port)
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._host, self._port = host, port
        self._serving = ServingThread("sandbox-faults")
        self._gates: list[Gate] = []

    @property
    def url(self) -> str:
        return self._serving.url

    def start(self) -> FaultProxy:
        self._serving.serve(ThreadingHTTPServer((self._host, self._port), _handler_for(self)))
        return self

    def stop(self) -> None:
        with self._lock:
            gates, self._gates = self._gates, []
        for gate in gates:
            gate.release()
        self._serving.close()

    # what the proxy did ------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """How many requests reached the proxy."""
        with self._lock:
            return self._tally.requests

    def injected(self) -> list[Injected]:
        """Every fault answered so far, oldest first."""
        with self._lock:
            return list(self._tally.injected)

    def counts(self) -> dict[str, Any]:
        """Requests seen, faults per kind, per service and per ``service operation``, and requests per
        botocore attempt number (``attempts[4]``: fourth tries, which botocore's default 3 attempts
        would never have made)."""
        faults = self.injected()
        with self._lock:
            attempts = dict(sorted(self._tally.attempts.items()))
        return {
            "requests": self.requests,
            "attempts": attempts,
            "faults": len(faults),
            "by_kind": _count(f.kind for f in faults),
            "by_service": _count(f.service for f in faults),
            "by_operation": _count(f"{f.service} {f.operation}" for f in faults),
        }

    # holding -----------------------------------------------------------------------------------

    def hold(
        self,
        service: str,
        operation: str,
        *,
        after_apply: bool = False,
        matching: str | None = None,
        limit_seconds: float = 300.0,
    ) -> Gate:
        """Hold the next ``service`` ``operation`` request (with ``matching`` in its body) at a
        :class:`Gate`; later ones pass."""
        gate = Gate(SERVICE_ALIASES.get(service, service), operation, after_apply, matching, limit_seconds)
        with self._lock:
            self._gates.append(gate)
        return gate

    def _take_gate(self, service: str, operation: str, body: bytes) -> Gate | None:
        with self._lock:
            for gate in self._gates:
                wanted = gate.matching is None or gate.matching.encode() in body
                if (gate.service, gate.operation) == (service, operation) and wanted:
                    self._gates.remove(gate)
                    return gate
        return None

    # deciding ----------------------------------------------------------------------------------

    def decide(self, service: str, operation: str, attempt: int = 1) -> str | None:
        """The fault for this request, or None to pass it through; one RNG draw sequence per proxy.

        :param attempt: botocore's attempt number for the call (1 for the first try), for the tally.
        """
        with self._lock:
            self._tally.requests += 1
            self._tally.attempts[attempt] = self._tally.attempts.get(attempt, 0) + 1
            if not self.plan.applies_to(service, operation):
                return None
            if self.plan.limit is not None and len(self._tally.injected) >= self.plan.limit:
                return None
            if self._rng.random() >= self.plan.share:
                return None
            kind = self._rng.choice(self.plan.kinds)
            self._tally.injected.append(Injected(time.time(), service, operation, kind))
            return kind

    def forward(
        self, method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send one request to moto as the client sent it (its Host header and signature kept); the
        whole answer: status, reason, headers, body."""
        connection = http.client.HTTPConnection(*self.target, timeout=_FORWARD_TIMEOUT)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_FaultHandler):
        pass

    Handler.proxy = proxy
    return Handler


class _FaultHandler(BaseHTTPRequestHandler):
    """One client connection: each request is forwarded, or answered with the fault the proxy picks."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    proxy: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log line per API call

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        service = service_of(self.headers)
        operation = operation_of(service, self.command, self.path, self.headers, body)
        attempt = _SDK_ATTEMPT.search(self.headers.get("amz-sdk-request", "") or "")
        kind = self.proxy.decide(service, operation, int(attempt.group(1)) if attempt else 1)
        gate = self.proxy._take_gate(service, operation, body)
        if gate is not None and not gate.after_apply:
            gate._hold()
        if kind == "drop":
            self.close_connection = True
            return
        if kind in ("throttle", "unavailable"):
            self._answer(*fault_answer(kind, service, protocol_of(service, self.headers)))
            return
        if kind == "slow":
            time.sleep(self.proxy.plan.slow_seconds)  # the fault itself: a slow answer
        status, reason, headers, answer = self.proxy.forward(self.command, self.path, self.headers.items(), body)
        if gate is not None and gate.after_apply:
            gate._hold()
        if kind == "drop_applied":
            self.close_connection = True  # applied by moto; its answer never reaches the caller
            return
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller is gone, e.g. its process was killed at a gate

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle
