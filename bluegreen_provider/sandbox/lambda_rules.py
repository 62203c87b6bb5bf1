"""Lambda's version numbers, patched into moto's PublishVersion.

Lambda numbers a function's versions 1, 2, 3, … and never gives a number twice, also after versions
were deleted. moto numbers a new version ``len(versions) + 1``: once the teardown has pruned old
versions, the next publish can get the number of a version that still exists, and an alias set to
"the new version" then serves old code. The patch numbers each function's versions from the highest
ever published.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from moto.awslambda.models import LambdaStorage

_lock = threading.Lock()
_installed = False


def _publish_version(self: LambdaStorage, name_or_arn: str, description: str = "") -> Any:
    function = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
    name = function.function_name
    entry = self._functions.get(name)
    if not entry or not entry["latest"]:
        return None
    versions = entry["versions"]
    if versions and not function.code_or_config_updated:
        return versions[-1]  # nothing changed since the last publish: Lambda returns that version
    function.code_or_config_updated = False
    published: dict[str, int] = self.__dict__.setdefault("_highest_published", {})
    highest = max([int(v.version) for v in versions] + [published.get(name, 0)])
    fn = copy.copy(entry["latest"])
    fn.set_version(highest + 1)
    if description:
        fn.description = description
    published[name] = highest + 1
    versions.append(fn)
    self._arns[fn.function_arn] = fn
    return fn


def install() -> None:
    """Patch moto's Lambda (process-wide, idempotent)."""
    global _installed
    with _lock:
        if not _installed:
            LambdaStorage.publish_version = _publish_version  # type: ignore[method-assign]
            _installed = True
