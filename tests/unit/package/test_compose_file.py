"""``docker-compose.yaml`` is a valid Compose file whose every command, module, file and folder exists.

No Docker engine runs here, so the file is checked as Compose reads it: against the Compose
Specification's JSON schema (``tests/fixtures/compose/compose_spec.json``, as docker-compose 1.29.2
ships it), then each service's command against the Airflow CLI of this venv (with the CeleryExecutor
the file configures, so ``celery worker`` must exist) and each path against the checkout.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SCHEMA = json.loads((REPO / "tests" / "fixtures" / "compose" / "compose_spec.json").read_text())

# The official image's entrypoint runs these directly; any other first word is an Airflow CLI command.
DIRECT = {"bash", "python"}

_CLI_PROBE = """
import argparse, json, sys
from airflow.cli.cli_parser import get_parser

def known(words):
    parser = get_parser()
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            return False
        parser = subs[0].choices[word]
    return True

print(json.dumps({" ".join(w): known(w) for w in json.loads(sys.argv[1])}))
"""


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def airflow_commands() -> list[list[str]]:
    """Every Airflow CLI command the services run, also those inside a ``bash -c`` line."""
    found = []
    for service in COMPOSE["services"].values():
        words = command_words(service) if "command" in service else []
        if not words:
            continue
        if words[0] == "bash":
            for part in words[-1].replace("||", "&&").split("&&"):
                inner = shlex.split(part)
                if inner and inner[0] == "airflow":
                    found.append(inner[1:3])
        elif words[0] not in DIRECT:
            found.append(words)
    return found


def test_the_file_follows_the_compose_specification() -> None:
    jsonschema.Draft201909Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft201909Validator(SCHEMA).iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_every_airflow_command_exists_with_the_executor_the_file_configures() -> None:
    commands = airflow_commands()
    assert ["celery", "worker"] in commands and ["scheduler"] in commands, commands
    executor = COMPOSE["x-airflow-common"]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": executor}
    out = subprocess.run(
        [sys.executable, "-c", _CLI_PROBE, json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    known = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(known.values()), f"Airflow has no such command: {[c for c, ok in known.items() if not ok]}"


@pytest.mark.parametrize(
    "name", [n for n, s in COMPOSE["services"].items() if command_words(s)[:2] == ["python", "-m"]]
)
def test_every_python_module_exists_and_takes_its_arguments(name: str) -> None:
    words = command_words(COMPOSE["services"][name])
    module, args = words[2], words[3:]
    help_text = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    flags = [a for a in args if a.startswith("--")]
    assert flags and all(flag in help_text for flag in flags), (module, flags, help_text)


def test_every_file_and_folder_it_mounts_or_builds_from_exists() -> None:
    common = COMPOSE["x-airflow-common"]
    assert (REPO / common["build"] / "Dockerfile").is_file()
    for volume in common["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("."):
            assert (REPO / source).is_dir(), source
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY"):
            sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
            assert all((REPO / s).exists() for s in sources), line
