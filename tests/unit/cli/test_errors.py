"""Every failure of ``bluegreen status``/``rollback`` is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import DAGS, connection

ACCESS_DENIED = (
    '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
    "<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/oncall "
    "is not authorized to perform: route53:ListHostedZones</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
)


@pytest.fixture
def denying_endpoint() -> Iterator[str]:
    """An AWS endpoint that answers every call 403 AccessDenied, as IAM does to a role without the permission."""

    class Deny(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = ACCESS_DENIED.encode()
            self.send_response(403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", ["status", "rollback"])
def test_no_credentials(bluegreen, no_credentials, command):
    result = bluegreen("--dags-folder", str(DAGS), command)
    assert result.code == 1
    assert result.error_line == (
        f"bluegreen {command}: no AWS credentials for connection aws_default: Unable to locate credentials "
        "(configure the connection, or start a sandbox here: bluegreen sandbox up)"
    )


@pytest.mark.parametrize("command", ["status", "rollback"])
def test_an_aws_error_names_the_operation_its_code_and_message(bluegreen, monkeypatch, denying_endpoint, command):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection(denying_endpoint))
    result = bluegreen("--dags-folder", str(DAGS), command)
    assert result.code == 1
    assert result.error_line == (
        f"bluegreen {command}: AWS ListHostedZones failed: AccessDenied: User: arn:aws:iam::123456789012:user/oncall "
        "is not authorized to perform: route53:ListHostedZones"
    )


def test_an_unreachable_endpoint(bluegreen, monkeypatch, closed_port):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection(f"http://127.0.0.1:{closed_port}"))
    result = bluegreen("--dags-folder", str(DAGS), "status")
    assert result.code == 1
    assert result.error_line == (
        "bluegreen status: AWS endpoint unreachable for connection aws_default: "
        f'Could not connect to the endpoint URL: "http://127.0.0.1:{closed_port}/2013-04-01/hostedzone"'
    )


def test_a_dags_folder_that_does_not_exist(bluegreen, tmp_path):
    result = bluegreen("--dags-folder", str(tmp_path / "nope"), "status")
    assert result.code == 2
    missing = tmp_path / "nope"
    assert result.error_line.startswith(f"bluegreen status: DAG folder {missing} (--dags-folder) does not exist")


def test_airflows_dags_folder_that_does_not_exist(bluegreen, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    result = bluegreen("rollback")
    assert result.code == 2
    assert result.error_line.startswith(
        f"bluegreen rollback: DAG folder {tmp_path / 'dags'} (Airflow's [core] dags_folder) does not exist; "
        "pass --dags-folder (the provider's example DAGs are in "
    )


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("raise RuntimeError('the config server is down')", "RuntimeError: the config server is down"),
        ("def broken(:\n", "SyntaxError: invalid syntax"),
        (  # a config with several problems: the spec's message has a line for each
            "from bluegreen_provider.dag_factory import deployment_dag\n"
            "deployment_dag('x', {'service': 'x', 'hosted_zone': 'example.com', 'record_name': 'api.example.com',"
            " 'functions': [], 'steps': [{'weight': 50}, {'weight': 10}]})\n",
            "SpecError: invalid deployment spec: - ",
        ),
    ],
    ids=["raises", "syntax", "bad-config"],
)
def test_a_dag_file_that_fails_to_import_is_named_with_its_error(bluegreen, tmp_path, source, error):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "orders_api.py").write_text(source)
    result = bluegreen("--dags-folder", str(tmp_path / "dags"), "status")
    assert result.code == 2
    dag_file = tmp_path / "dags" / "orders_api.py"
    assert result.error_line.startswith(f"bluegreen status: DAG file {dag_file} failed to import: {error}")


def test_a_folder_without_services(bluegreen, tmp_path):
    result = bluegreen("--dags-folder", str(tmp_path), "rollback")
    assert result.code == 2
    assert result.error_line == f"bluegreen rollback: name one with --service; the DAGs in {tmp_path} define: none"


def test_a_usage_error_is_one_line_too(bluegreen):
    result = bluegreen("statsu")
    assert result.code == 2
    assert result.error_line.startswith("bluegreen: argument command: invalid choice: 'statsu'")


def test_any_other_failure_is_one_line_with_its_type(bluegreen, monkeypatch):
    import bluegreen_provider.status

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device\nwhile writing the cache")

    monkeypatch.setattr(bluegreen_provider.status, "service_status", fail)
    result = bluegreen("--dags-folder", str(DAGS), "status")
    assert result.code == 1
    assert result.error_line == "bluegreen status: OSError: No space left on device while writing the cache"
