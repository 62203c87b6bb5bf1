"""Loaded at start-up by every Airflow process of the ``worker_slots`` benchmark (it is on PYTHONPATH).

Counts each AWS API call at botocore's single call site, one line per call in
``$BENCH_CALLS_DIR/calls-<pid>.txt``. botocore is patched when something imports it, never before,
so a process that makes no AWS call (and the DAG parse) imports nothing more than it would.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from typing import Any

_TARGET = "botocore.client"


def _patch(module: Any) -> None:
    original = module.BaseClient._make_api_call
    folder = os.environ["BENCH_CALLS_DIR"]

    def counted(client: Any, operation_name: str, api_params: Any) -> Any:
        with open(os.path.join(folder, f"calls-{os.getpid()}.txt"), "a") as handle:
            handle.write(f"{client.meta.service_model.service_name}.{operation_name}\n")
        return original(client, operation_name, api_params)

    module.BaseClient._make_api_call = counted


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader)
        return spec


if os.environ.get("BENCH_CALLS_DIR"):
    import importlib.util

    sys.meta_path.insert(0, _Finder())
