"""Lambda's version numbers and alias revisions, patched into moto.

Lambda numbers a function's versions 1, 2, 3, … and never gives a number twice, also after versions
were deleted. moto numbers a new version ``len(versions) + 1``: once the teardown has pruned old
versions, the next publish can get the number of a version that still exists, and an alias set to
"the new version" then serves old code. The patch numbers each function's versions from the highest
ever published.

Lambda gives an alias a new ``RevisionId`` on every update and refuses an ``UpdateAlias`` whose
``RevisionId`` is not the alias's current one (``PreconditionFailedException``, HTTP 412); moto
ignores the parameter and keeps one revision for good. It also accepts any ``RoutingConfig``, where
Lambda allows at most one additional numbered version, not the primary, weighted 0..1.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from moto.awslambda.exceptions import PreconditionFailedException
from moto.awslambda.models import LambdaStorage
from moto.awslambda.responses import LambdaResponse
from moto.core.exceptions import JsonRESTError
from moto.moto_api._internal import mock_random as random

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


_moto_update_alias = LambdaResponse.update_alias


class _InvalidParameterValue(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameterValueException", message)


def _update_alias(self: LambdaResponse) -> Any:
    from urllib.parse import unquote

    function_name = unquote(self.path.rsplit("/")[-3])
    alias_name = unquote(self.path.rsplit("/", 2)[-1])
    params = json.loads(self.body or "{}")
    alias = self.backend.get_alias(alias_name, function_name)
    revision = params.get("RevisionId")
    if revision and revision != alias.revision_id:
        raise PreconditionFailedException(
            "The Revision Id provided does not match the latest Revision Id. Call the "
            "GetAlias API to retrieve the latest Revision Id"
        )
    weights = (params.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    primary = params.get("FunctionVersion") or alias.function_version
    if len(weights) > 1:
        raise _InvalidParameterValue("Number of items in AdditionalVersionWeights cannot be greater than 1")
    for version, weight in weights.items():
        if not str(version).isdigit() or str(version) == str(primary) or not 0.0 <= float(weight) <= 1.0:
            raise _InvalidParameterValue(
                f"Invalid AdditionalVersionWeights {weights} for primary version {primary}: one other numbered "
                f"version, weight 0..1"
            )
    status, headers, body = _moto_update_alias(self)
    alias.revision_id = str(random.uuid4())
    answer = json.loads(body)
    answer["RevisionId"] = alias.revision_id
    return status, headers, json.dumps(answer)


def install() -> None:
    """Patch moto's Lambda (process-wide, idempotent)."""
    global _installed
    with _lock:
        if not _installed:
            LambdaStorage.publish_version = _publish_version  # type: ignore[method-assign]
            LambdaResponse.update_alias = _update_alias  # type: ignore[method-assign]
            _installed = True
