"""The environment of a project's migration command: an allow-list, never the worker's environment.

Kept free of Airflow imports so the spec checks ``migrations.env`` / ``migrations.pass_env`` with the
same rules the hook applies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

# What a migration command inherits from the worker without being asked (see ``command_environment``).
INHERITED_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})
INHERITED_ENV_PREFIXES = ("LC_",)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
# Airflow's own settings and secrets (the metadata DB, the Fernet key, every connection and variable).
AIRFLOW_ENV = re.compile(r"^AIRFLOW(__|_CONN_|_VAR_)", re.IGNORECASE)
RUNNER_ENV = "DATABASE_URL"  # always the connection's, never given or copied
# One variable well below Linux's 128 KiB per-string limit; a bigger value is a mistake, not a setting.
MAX_ENV_VALUE = 32 * 1024


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}… ({len(text)} characters)"


def command_env_problems(env: Any, pass_env: Any) -> list[str]:
    """Every problem with a migration command's extra variables, one line each (spec, operator, hook).

    ``env`` maps names to values given to the command; ``pass_env`` names variables copied from the
    worker. Names are shell names; ``DATABASE_URL`` is always the connection's, and Airflow's own
    variables (``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``) are never copied: they hold the
    metadata DB, the Fernet key and every connection's secrets.
    """
    problems: list[str] = []
    names: list[str] = []
    if env is not None:
        if not isinstance(env, Mapping):
            problems.append(f"env must be a mapping of variable names to strings, got {_quoted(env)}")
        else:
            for name, value in env.items():
                if not isinstance(name, str) or not ENV_NAME.match(name):
                    problems.append(f"env: {_quoted(name)} is not a variable name (letters, digits, _)")
                    continue
                names.append(name)
                if name == RUNNER_ENV:
                    problems.append(f"env: {RUNNER_ENV} is set from the connection, it cannot be given")
                elif isinstance(value, bool) or not isinstance(value, str | int):
                    problems.append(f"env.{name} must be a string, got {_quoted(value)}")
                elif len(str(value)) > MAX_ENV_VALUE or "\x00" in str(value):
                    problems.append(
                        f"env.{name} must be at most {MAX_ENV_VALUE} characters without NUL, got {_quoted(value)}"
                    )
    if pass_env is not None:
        if isinstance(pass_env, str | bytes) or not isinstance(pass_env, Sequence):
            problems.append(f"pass_env must be a list of variable names, got {_quoted(pass_env)}")
        else:
            for name in pass_env:
                if not isinstance(name, str) or not ENV_NAME.match(name):
                    problems.append(f"pass_env: {_quoted(name)} is not a variable name (letters, digits, _)")
                elif name == RUNNER_ENV:
                    problems.append(f"pass_env: {RUNNER_ENV} is set from the connection, it cannot be copied")
                elif AIRFLOW_ENV.match(name):
                    problems.append(f"pass_env: {name} is Airflow's own setting or secret, it is never copied")
                elif name in names:
                    problems.append(f"pass_env: {name} is also given in env; give it once")
    return problems


def command_environment(
    database_url: str,
    statement_timeout_ms: int,
    env: Mapping[str, str | int] | None = None,
    pass_env: Sequence[str] = (),
    worker_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a migration command: an allow-list, never the worker's environment.

    The worker holds the deployment's AWS credentials and Airflow's secrets (``AIRFLOW__*``,
    ``AIRFLOW_CONN_*``), and a migration tool runs the project's code, so it gets only:

    - ``PATH`` (to find the tool), ``HOME``, ``USER``, ``LOGNAME`` (tools read their config and
      caches from the home, libpq defaults the user from them), ``LANG``, ``LANGUAGE``, ``LC_*``
      (the encoding of its output), ``TZ`` (timestamps) and ``TMPDIR`` (scratch files), when the
      worker has them;
    - ``DATABASE_URL`` (the connection, password included) and ``PGOPTIONS`` carrying the
      statement timeout, appended to any ``PGOPTIONS`` given, so it wins;
    - what the operator names: ``pass_env`` copied from the worker, ``env`` as given (it wins).

    Left out on purpose: ``PYTHONPATH`` (the worker's Airflow path would shadow the tool's own
    packages), ``PG*`` (``PGPASSWORD``, or a ``PGHOST`` redirecting a tool whose URL lacks it), proxy
    settings (their URLs carry credentials), ``AWS_*``. Name any of them in ``pass_env`` if the tool
    needs it.
    """
    worker = os.environ if worker_env is None else worker_env
    out = {k: v for k, v in worker.items() if k in INHERITED_ENV or k.startswith(INHERITED_ENV_PREFIXES)}
    out.update({name: worker[name] for name in pass_env if name in worker})
    out.update({name: str(value) for name, value in (env or {}).items()})
    out[RUNNER_ENV] = database_url
    out["PGOPTIONS"] = f"{out.get('PGOPTIONS', '')} -c statement_timeout={statement_timeout_ms}".strip()
    return out
