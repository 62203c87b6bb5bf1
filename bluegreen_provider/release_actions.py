"""What releasing one function takes, decided by reading Lambda only: keep, reuse, publish or point.

The plan prints it before anything changes and the deploy stage carries it out, so both decide the
same way (a retried deploy never mints a new version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bluegreen_provider.hooks.lambda_alias import AliasTarget, LambdaAliasHook
    from bluegreen_provider.spec import FunctionRelease

_DESCRIPTION_LIMIT = 256  # Lambda's limit for version and alias descriptions


def release_description(service: str, owner: str, label: str | None = None) -> str:
    """The description written on versions and aliases, so the console shows which run released what."""
    release = f"release {label}" if label else "release"
    return f"bluegreen {service} {release} by {owner}"[:_DESCRIPTION_LIMIT]


@dataclass(frozen=True)
class ReleaseAction:
    """What deploying one function will do: keep, reuse or publish a version, or use an explicit one."""

    function_name: str
    action: str  # "keep" | "reuse" | "explicit" | "publish"
    version: str | None
    code_sha256: str | None
    source: str
    zip_bytes: bytes | None = field(default=None, repr=False)

    def describe(self, alias: str, current: AliasTarget | None) -> str:
        now = f"version {current.version}" if current else "nothing (alias will be created)"
        if self.action == "keep":
            return f"{self.function_name}: {alias} already serves version {self.version} with this code; keep it"
        if self.action == "reuse":
            return (
                f"{self.function_name}: reuse version {self.version} (CodeSha256 {self.code_sha256} matches "
                f"{self.source}); point {alias} from {now} to it"
            )
        if self.action == "explicit":
            return f"{self.function_name}: point {alias} from {now} to the given version {self.version}"
        sha = f" (CodeSha256 {self.code_sha256})" if self.code_sha256 else ""
        return f"{self.function_name}: publish a new version from {self.source}{sha}; point {alias} from {now} to it"


def resolve_release(lambdas: LambdaAliasHook, release: FunctionRelease, current: AliasTarget | None) -> ReleaseAction:
    """Decide, by reading Lambda only, what releasing ``release`` takes; raise before any change.

    A zip is matched by CodeSha256: if the candidate alias already serves it nothing moves, and if an
    existing version has it that version is reused, so a retried deploy never mints a new version.
    """
    from bluegreen_provider.hooks.lambda_alias import LambdaReleaseError

    name = release.name
    if release.zip_file:
        path = Path(release.zip_file)
        if not path.is_file():
            raise LambdaReleaseError(f"{name}: zip_file {str(path)!r} does not exist or is not a file")
        data = path.read_bytes()
        sha = lambdas.zip_sha256(data)
        if current is not None and current.code_sha256 == sha:
            return ReleaseAction(name, "keep", current.version, sha, str(path), data)
        matching = [v for v in lambdas.list_versions(name) if v.code_sha256 == sha]
        if matching:
            return ReleaseAction(name, "reuse", matching[-1].version, sha, str(path), data)
        return ReleaseAction(name, "publish", None, sha, str(path), data)
    if release.version:
        version = lambdas.get_version(name, str(release.version))
        action = "keep" if current is not None and current.version == version.version else "explicit"
        return ReleaseAction(name, action, version.version, version.code_sha256, f"version {version.version}")
    if release.s3_key:
        return ReleaseAction(name, "publish", None, None, f"s3://{release.s3_bucket}/{release.s3_key}")
    if release.image_uri:
        return ReleaseAction(name, "publish", None, None, f"image {release.image_uri}")
    raise LambdaReleaseError(f"{name}: no code source given")
