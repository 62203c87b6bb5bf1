"""Lambda hook for releases: publish immutable versions, move aliases, prune and prewarm."""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from airflow.providers.amazon.aws.hooks.lambda_function import LambdaHook
from botocore.exceptions import BotoCoreError, ClientError

from bluegreen_provider.hooks.retries import LAMBDA_MAX_ATTEMPTS, StandardRetriesMixin


class LambdaReleaseError(ValueError):
    """A function, alias, version or code source that does not exist or cannot be used."""


@dataclass(frozen=True)
class FunctionVersion:
    """One published (immutable) version of a function."""

    function_name: str
    version: str
    code_sha256: str
    description: str


@dataclass(frozen=True)
class AliasTarget:
    """Where an alias points, with that version's code hash so releases can be compared."""

    function_name: str
    alias: str
    version: str
    code_sha256: str
    description: str


class AliasConflict(RuntimeError):
    """Lambda refused an ``UpdateAlias`` whose ``RevisionId`` is no longer the alias's: someone changed it first.

    The alias's compare-and-swap "lost the race" answer; nothing was changed.
    """


@dataclass(frozen=True)
class AliasRouting:
    """An alias's primary version, its weighted extra versions (``RoutingConfig``) and its revision."""

    function_name: str
    alias: str
    version: str
    weights: dict[str, float]
    revision_id: str
    description: str


@dataclass(frozen=True)
class PrewarmResult:
    """Outcome of a prewarm burst; ``errors`` counts FunctionError, non-2xx and API failures."""

    invocations: int
    errors: int
    max_duration_ms: float


def _not_found(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def _denied(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") in ("AccessDeniedException", "AccessDenied")


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class LambdaAliasHook(StandardRetriesMixin, LambdaHook):
    """
    Release helpers over :class:`~airflow.providers.amazon.aws.hooks.lambda_function.LambdaHook`.

    Blue and green are aliases (e.g. ``production-blue`` / ``production-green``) on numbered
    versions; the amazon hook has no alias or version helpers, so they live here. Lookups that
    fail raise :class:`LambdaReleaseError` before anything is changed. Calls use botocore ``standard``
    retries with :data:`~bluegreen_provider.hooks.retries.LAMBDA_MAX_ATTEMPTS` attempts; a
    connection's ``config_kwargs`` override them.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    max_attempts = LAMBDA_MAX_ATTEMPTS

    # ------------------------------------------------------------- lookups

    def _function_names(self) -> list[str] | None:
        """Every function's name, for "did you mean"; None when the connection may not list them.

        The shipped IAM policy withholds ``lambda:ListFunctions``: it would show every function's
        configuration (environment variables included) in the account.
        """
        names: list[str] = []
        try:
            for page in self.conn.get_paginator("list_functions").paginate():
                names += [f["FunctionName"] for f in page["Functions"]]
        except ClientError as err:
            if not _denied(err):
                raise
            return None
        return names

    def require_function(self, function_name: str) -> None:
        """
        Raise :class:`LambdaReleaseError` if the function does not exist.

        :param function_name: function name or ARN.
        """
        try:
            self.conn.get_function_configuration(FunctionName=function_name)
        except ClientError as err:
            if not _not_found(err):
                raise
            names = self._function_names()
            similar = (
                difflib.get_close_matches(function_name, names, n=5, cutoff=0.5)
                if names is not None
                else "not listed (no lambda:ListFunctions permission)"
            )
            raise LambdaReleaseError(
                f"Lambda function {function_name!r} not found in {self.conn_region_name}; "
                f"similar existing functions: {similar}"
            ) from err

    def get_version(self, function_name: str, version: str) -> FunctionVersion:
        """
        Read one numbered version.

        :param function_name: function name.
        :param version: version number as a string, e.g. ``"7"``.
        """
        if not isinstance(version, str) or not version.isdigit():
            raise LambdaReleaseError(f"Version must be a published version number like '7', got {version!r}")
        try:
            cfg = self.conn.get_function_configuration(FunctionName=function_name, Qualifier=version)
        except ClientError as err:
            if not _not_found(err):
                raise
            self.require_function(function_name)
            existing = [v.version for v in self.list_versions(function_name)]
            raise LambdaReleaseError(
                f"Version {version!r} of {function_name!r} not found; existing versions: {existing}"
            ) from err
        return FunctionVersion(function_name, cfg["Version"], cfg["CodeSha256"], cfg.get("Description", ""))

    def get_alias(self, function_name: str, alias: str) -> AliasTarget | None:
        """
        Read an alias, or None if the function has no such alias.

        :param function_name: function name (must exist).
        :param alias: alias name.
        """
        try:
            response = self.conn.get_alias(FunctionName=function_name, Name=alias)
        except ClientError as err:
            if not _not_found(err):
                raise
            self.require_function(function_name)
            return None
        return self._alias_target(function_name, response, {})

    def _alias_target(self, function_name: str, alias: Mapping, versions: Mapping[str, FunctionVersion]) -> AliasTarget:
        target = alias["FunctionVersion"]
        if target in versions:
            sha = versions[target].code_sha256
        else:
            sha = self.conn.get_function_configuration(FunctionName=function_name, Qualifier=target)["CodeSha256"]
        return AliasTarget(function_name, alias["Name"], target, sha, alias.get("Description", ""))

    def list_versions(self, function_name: str) -> list[FunctionVersion]:
        """
        Numbered versions of a function, oldest first (``$LATEST`` is left out).

        :param function_name: function name.
        """
        raw = self._paginate(function_name, "list_versions_by_function", "Versions")
        if not raw:
            # Lambda always lists $LATEST; nothing at all means there is no such function.
            self.require_function(function_name)
        versions = [
            FunctionVersion(function_name, v["Version"], v["CodeSha256"], v.get("Description", ""))
            for v in raw
            if v["Version"].isdigit()
        ]
        return sorted(versions, key=lambda v: int(v.version))

    def _paginate(self, function_name: str, operation: str, key: str) -> list[dict]:
        items: list[dict] = []
        try:
            for page in self.conn.get_paginator(operation).paginate(FunctionName=function_name):
                items += page[key]
        except ClientError as err:
            if not _not_found(err):
                raise
            self.require_function(function_name)
            raise
        return items

    def list_aliases(self, function_name: str) -> list[AliasTarget]:
        """
        Every alias of a function with the code hash of the version it points to.

        :param function_name: function name.
        """
        versions = {v.version: v for v in self.list_versions(function_name)}
        aliases = [
            self._alias_target(function_name, a, versions)
            for a in self._paginate(function_name, "list_aliases", "Aliases")
        ]
        return sorted(aliases, key=lambda a: a.alias)

    @staticmethod
    def zip_sha256(data: bytes) -> str:
        """Base64 of the SHA-256 of a deployment package, the form Lambda reports as ``CodeSha256``."""
        return base64.b64encode(hashlib.sha256(data).digest()).decode()

    # ------------------------------------------------------------- release

    def publish_code(
        self,
        function_name: str,
        *,
        zip_file: bytes | None = None,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        s3_object_version: str | None = None,
        image_uri: str | None = None,
        description: str = "",
    ) -> FunctionVersion:
        """
        Upload new code and publish it as a numbered version; reuse the newest version if it has that code.

        Reuse keeps a retried deploy task from minting a version per attempt (Lambda does the same
        when nothing changed since the last publish).

        .. seealso::
            - :external+boto3:py:meth:`Lambda.Client.update_function_code`
            - :external+boto3:py:meth:`Lambda.Client.publish_version`

        :param function_name: function name (must exist).
        :param zip_file: deployment package bytes.
        :param s3_bucket: bucket of the deployment package (with ``s3_key``).
        :param s3_key: key of the deployment package.
        :param s3_object_version: optional object version of the package.
        :param image_uri: container image URI, for image functions.
        :param description: description of the new version.
        """
        sources = {
            "zip_file": zip_file is not None,
            "s3_bucket/s3_key": s3_bucket is not None or s3_key is not None,
            "image_uri": image_uri is not None,
        }
        chosen = [name for name, given in sources.items() if given]
        if len(chosen) != 1:
            raise LambdaReleaseError(
                f"Give exactly one code source of {list(sources)}, got {chosen or 'none'} for {function_name!r}"
            )
        if sources["s3_bucket/s3_key"] and not (s3_bucket and s3_key):
            raise LambdaReleaseError(f"s3_bucket and s3_key go together, got {s3_bucket!r}, {s3_key!r}")
        if s3_object_version is not None and not s3_bucket:
            raise LambdaReleaseError(f"s3_object_version {s3_object_version!r} needs s3_bucket and s3_key")
        self.require_function(function_name)

        if zip_file is not None:
            reused = self._newest_with_code(function_name, self.zip_sha256(zip_file))
            if reused:
                self.log.info("%s version %s already has this code; reusing it", function_name, reused.version)
                return reused
        code = {
            "ZipFile": zip_file,
            "S3Bucket": s3_bucket,
            "S3Key": s3_key,
            "S3ObjectVersion": s3_object_version,
            "ImageUri": image_uri,
        }
        updated = self.conn.update_function_code(
            FunctionName=function_name, **{k: v for k, v in code.items() if v is not None}
        )
        self.conn.get_waiter("function_updated_v2").wait(FunctionName=function_name)
        reused = self._newest_with_code(function_name, updated["CodeSha256"])
        if reused:
            return reused
        # CodeSha256 makes Lambda refuse to publish if someone else changed the code meanwhile.
        published = self.conn.publish_version(
            FunctionName=function_name, CodeSha256=updated["CodeSha256"], Description=description
        )
        self.log.info("Published %s version %s (%s)", function_name, published["Version"], published["CodeSha256"])
        return FunctionVersion(
            function_name, published["Version"], published["CodeSha256"], published.get("Description", "")
        )

    def _newest_with_code(self, function_name: str, code_sha256: str) -> FunctionVersion | None:
        versions = self.list_versions(function_name)
        if versions and versions[-1].code_sha256 == code_sha256:
            return versions[-1]
        return None

    def point_alias(self, function_name: str, alias: str, version: str, *, description: str = "") -> AliasTarget:
        """
        Point an alias at a numbered version, creating it if needed; no call if it is already there.

        Any weighted ``RoutingConfig`` is cleared: traffic is shifted by Route53, not by the alias.

        :param function_name: function name.
        :param alias: alias name, e.g. ``"production-green"``.
        :param version: numbered version to point at.
        :param description: alias description.
        """
        target = self.get_version(function_name, version)
        try:
            current = self.conn.get_alias(FunctionName=function_name, Name=alias)
        except ClientError as err:
            if not _not_found(err):
                raise
            try:
                self.conn.create_alias(
                    FunctionName=function_name, Name=alias, FunctionVersion=version, Description=description
                )
            except ClientError as err:
                # botocore resends a create whose answer was lost; the resend finds the alias made
                # (AWS answers ResourceConflictException, moto ConflictException).
                if err.response.get("Error", {}).get("Code") not in ("ResourceConflictException", "ConflictException"):
                    raise
                made = self.conn.get_alias(FunctionName=function_name, Name=alias)
                if made["FunctionVersion"] != version:
                    raise
                return self.point_alias(function_name, alias, version, description=description)
            self.log.info("Created alias %s:%s -> %s", function_name, alias, version)
        else:
            weights = current.get("RoutingConfig", {}).get("AdditionalVersionWeights") or {}
            if current["FunctionVersion"] != version or current.get("Description", "") != description or weights:
                self.conn.update_alias(
                    FunctionName=function_name,
                    Name=alias,
                    FunctionVersion=version,
                    Description=description,
                    RoutingConfig={"AdditionalVersionWeights": {}},
                )
                self.log.info("Moved alias %s:%s %s -> %s", function_name, alias, current["FunctionVersion"], version)
        return AliasTarget(function_name, alias, version, target.code_sha256, description)

    def get_alias_routing(self, function_name: str, alias: str) -> AliasRouting | None:
        """
        Read an alias's routing: its version, ``AdditionalVersionWeights`` and ``RevisionId``; None if absent.

        :param function_name: function name (must exist).
        :param alias: alias name, e.g. ``"production"``.
        """
        try:
            raw = self.conn.get_alias(FunctionName=function_name, Name=alias)
        except ClientError as err:
            if not _not_found(err):
                raise
            self.require_function(function_name)
            return None
        weights = (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasRouting(
            function_name,
            alias,
            raw["FunctionVersion"],
            {str(v): float(w) for v, w in weights.items()},
            raw.get("RevisionId", ""),
            raw.get("Description", ""),
        )

    def route_alias(
        self,
        current: AliasRouting,
        *,
        version: str,
        weights: Mapping[str, float],
        description: str,
    ) -> AliasRouting:
        """
        Point an alias at ``version`` sending ``weights`` to other versions, only if it is still ``current``.

        A compare-and-swap on the alias: ``RevisionId`` makes Lambda refuse the update when anyone
        changed the alias since ``current`` was read.

        .. seealso::
            - :external+boto3:py:meth:`Lambda.Client.update_alias`

        :param current: the alias as read by :meth:`get_alias_routing`.
        :param version: the primary version (numbered, not ``$LATEST``).
        :param weights: at most one other numbered version -> its share in 0..1 (empty clears routing).
        :param description: the alias description (at most 256 characters).
        :raises AliasConflict: the alias changed since ``current`` was read; nothing was changed.
        """
        if not version.isdigit() or len(weights) > 1 or any(not v.isdigit() or v == version for v in weights):
            raise LambdaReleaseError(
                f"alias routing needs a numbered version and at most one other numbered version, got "
                f"{version!r} with {dict(weights)}"
            )
        if any(not 0.0 <= w <= 1.0 for w in weights.values()):
            raise LambdaReleaseError(f"alias routing weights must be in 0..1, got {dict(weights)}")
        try:
            raw = self.conn.update_alias(
                FunctionName=current.function_name,
                Name=current.alias,
                FunctionVersion=version,
                Description=description[:256],
                RoutingConfig={"AdditionalVersionWeights": dict(weights)},
                RevisionId=current.revision_id,
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "PreconditionFailedException":
                raise AliasConflict(
                    f"alias {current.function_name}:{current.alias} changed since revision {current.revision_id}"
                ) from err
            raise
        routed = (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasRouting(
            current.function_name,
            current.alias,
            raw["FunctionVersion"],
            {str(v): float(w) for v, w in routed.items()},
            raw.get("RevisionId", ""),
            raw.get("Description", ""),
        )

    def prune_versions(self, function_name: str, *, keep_latest: int, protect: Collection[str] = ()) -> list[str]:
        """
        Delete old numbered versions that no alias uses, keeping the newest ``keep_latest``.

        :param function_name: function name.
        :param keep_latest: how many of the newest versions to keep regardless.
        :param protect: versions never to delete (e.g. the retained blue version); each must exist.
        :return: the deleted version numbers, oldest first.
        """
        if not _is_count(keep_latest, 0):
            raise LambdaReleaseError(f"keep_latest must be an int >= 0, got {keep_latest!r}")
        if isinstance(protect, str):
            raise LambdaReleaseError(f"protect must be a collection of version strings, got {protect!r}")
        versions = [v.version for v in self.list_versions(function_name)]
        unknown = [p for p in protect if p not in versions]
        if unknown:
            raise LambdaReleaseError(
                f"Protected version(s) {unknown} of {function_name!r} do not exist; existing: {versions}"
            )
        in_use = set(protect)
        for alias in self._paginate(function_name, "list_aliases", "Aliases"):
            in_use.add(alias["FunctionVersion"])
            in_use.update((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}))
        candidates = versions[: len(versions) - keep_latest] if keep_latest else versions
        deleted = []
        for version in candidates:
            if version not in in_use:
                try:
                    self.conn.delete_function(FunctionName=function_name, Qualifier=version)
                except ClientError as err:
                    if not _not_found(err):
                        raise  # not found: a resend after the delete's answer was lost
                deleted.append(version)
        if deleted:
            self.log.info("Pruned %s versions %s", function_name, deleted)
        return deleted

    def prewarm(
        self,
        function_name: str,
        qualifier: str,
        *,
        invocations: int,
        concurrency: int = 4,
        payload: Mapping | None = None,
    ) -> PrewarmResult:
        """
        Invoke an alias or version concurrently so green has warm execution environments before traffic.

        :param function_name: function name.
        :param qualifier: alias or version to invoke.
        :param invocations: total number of invocations.
        :param concurrency: invocations in flight at once.
        :param payload: JSON event sent to each invocation (default ``{}``).
        """
        if not _is_count(invocations, 1):
            raise LambdaReleaseError(f"invocations must be an int >= 1, got {invocations!r}")
        if not _is_count(concurrency, 1):
            raise LambdaReleaseError(f"concurrency must be an int >= 1, got {concurrency!r}")
        body = json.dumps(dict(payload or {}))
        try:
            self.conn.get_function_configuration(FunctionName=function_name, Qualifier=qualifier)
        except ClientError as err:
            if not _not_found(err):
                raise
            self.require_function(function_name)
            aliases = [a.alias for a in self.list_aliases(function_name)]
            raise LambdaReleaseError(
                f"Qualifier {qualifier!r} of {function_name!r} not found; existing aliases: {aliases}"
            ) from err

        def invoke_once(_: int) -> tuple[bool, float]:
            began = time.monotonic()
            try:
                response = self.invoke_lambda(function_name=function_name, qualifier=qualifier, payload=body)
                response["Payload"].read()
                ok = 200 <= response["StatusCode"] < 300 and not response.get("FunctionError")
            except (ClientError, BotoCoreError) as err:  # throttling, timeouts: count them, do not abort
                self.log.warning("Prewarm invoke of %s:%s failed: %s", function_name, qualifier, err)
                ok = False
            return ok, (time.monotonic() - began) * 1000

        _ = self.conn  # build the client once; boto3 clients are thread-safe, their creation is not
        with ThreadPoolExecutor(max_workers=min(concurrency, invocations)) as pool:
            outcomes = list(pool.map(invoke_once, range(invocations)))
        return PrewarmResult(
            invocations=invocations,
            errors=sum(1 for ok, _ in outcomes if not ok),
            max_duration_ms=max(ms for _, ms in outcomes),
        )
