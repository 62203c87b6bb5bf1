"""Demo releases of lego-api: handler source shipped in ``handlers/``, built into deterministic zips.

Lambda identifies code only by ``CodeSha256`` (base64 sha256 of the zip), so the sandbox must build
byte-identical zips every time: then a version's CodeSha256 tells which release it runs, and the
simulator can execute exactly that release's handler.
"""

from __future__ import annotations

import base64
import hashlib
import io
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

RELEASE_NAMES: tuple[str, ...] = ("v1", "v2", "bad", "unhealthy")
HANDLER_FILE = "handler.py"
HANDLER = "handler.handler"
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def handler_source(name: str) -> bytes:
    """The packaged source of release ``name``."""
    if name not in RELEASE_NAMES:
        raise KeyError(f"unknown release {name!r}; known: {', '.join(RELEASE_NAMES)}")
    return (resources.files(__package__) / "handlers" / name / HANDLER_FILE).read_bytes()


def build_zip(source: bytes) -> bytes:
    """Zip one handler file with every varying header field pinned, so equal source gives equal bytes."""
    entry = zipfile.ZipInfo(HANDLER_FILE, date_time=_FIXED_DATE)
    entry.create_system = 3  # "Unix" on every build host, not "DOS" on Windows
    entry.external_attr = 0o100644 << 16
    entry.compress_type = zipfile.ZIP_STORED  # deflate output may differ between zlib builds
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(entry, source)
    return buffer.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256 of a deployment package."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def load_handler(name: str, zip_bytes: bytes) -> Handler:
    """Run the handler module found inside the zip in a private namespace (not ``sys.modules``)."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        source = archive.read(HANDLER_FILE)
    module = types.ModuleType(f"lego_api_release_{name}")
    module.__file__ = f"<release {name}>/{HANDLER_FILE}"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.handler


@dataclass(frozen=True)
class Release:
    """One deployable build: its zip, the CodeSha256 Lambda will report, and its entry point."""

    name: str
    zip_bytes: bytes
    sha256: str
    handler: Handler


class ReleaseCatalog:
    """All demo releases, looked up by name (to deploy) or by CodeSha256 (to run what is deployed)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Release] = {}
        for name in RELEASE_NAMES:
            data = build_zip(handler_source(name))
            self._by_name[name] = Release(name, data, code_sha256(data), load_handler(name, data))
        self._by_sha = {release.sha256: release for release in self._by_name.values()}

    def __getitem__(self, name: str) -> Release:
        if name not in self._by_name:
            raise KeyError(f"unknown release {name!r}; known: {', '.join(RELEASE_NAMES)}")
        return self._by_name[name]

    def add_build(self, base: str, build: int) -> Release:
        """A new build of release ``base`` named ``<base>+<build>``: the same handler, its own CodeSha256.

        Each is a release Lambda has not seen, as every real build is; the traffic runs it as ``base``.
        """
        if isinstance(build, bool) or not isinstance(build, int) or build < 1:
            raise ValueError(f"build must be an int >= 1, got {build!r}")
        name = f"{self[base].name}+{build}"
        if name not in self._by_name:
            data = build_zip(handler_source(base) + f"\n# build {build}\n".encode())
            release = Release(name, data, code_sha256(data), load_handler(name, data))
            self._by_name[name] = release
            self._by_sha[release.sha256] = release
        return self._by_name[name]

    def by_sha(self, sha256: str) -> Release | None:
        return self._by_sha.get(sha256)

    def shas(self) -> dict[str, str]:
        return {name: release.sha256 for name, release in self._by_name.items()}

    def write_zip(self, name: str, directory: Path) -> Path:
        """Write release ``name`` as ``directory/<name>.zip`` (rewritten only if its bytes differ)."""
        release = self[name]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.zip"
        if not path.exists() or path.read_bytes() != release.zip_bytes:
            tmp = path.with_suffix(".zip.tmp")
            tmp.write_bytes(release.zip_bytes)
            tmp.replace(path)
        return path
