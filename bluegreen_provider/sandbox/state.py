"""The state file a running sandbox daemon leaves in its state directory, and process liveness.

The file is how ``up``, ``status``, ``down`` and other tools find a sandbox started earlier; it is
written atomically by the daemon once it is serving and removed when it stops.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bluegreen_provider.sandbox.core import Sandbox

STATE_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
DAEMON_MODULE = "bluegreen_provider.sandbox.daemon"


@dataclass(frozen=True)
class SandboxState:
    pid: int
    endpoint_url: str
    http_url: str
    hosted_zone_id: str
    region: str
    connection_json: str

    @classmethod
    def of(cls, sandbox: Sandbox, pid: int) -> SandboxState:
        """The state file of ``sandbox``, served by process ``pid``: how the CLI and the UI find it."""
        return cls(
            pid=pid,
            endpoint_url=sandbox.endpoint_url,
            http_url=sandbox.http_url,
            hosted_zone_id=sandbox.hosted_zone_id,
            region=sandbox.region,
            connection_json=sandbox.connection_json(),
        )


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def write_state(state_dir: Path, state: SandboxState) -> Path:
    path = state_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(path)
    return path


def read_state(state_dir: Path) -> SandboxState | None:
    path = state_path(state_dir)
    try:
        return SandboxState(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None  # a truncated or foreign file is as good as none


def remove_state(state_dir: Path, pid: int) -> None:
    """Remove the state file only if it still describes ``pid`` (a newer daemon may have replaced it)."""
    current = read_state(state_dir)
    if current is None or current.pid == pid:
        state_path(state_dir).unlink(missing_ok=True)


def is_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process: a state file outlives a process killed with -9.

    A sandbox run inside another process (``bluegreen airflow``) leaves its state file too; that
    process is no daemon, so this is the check for "still serving" that holds for both.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_sandbox_daemon(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) sandbox daemon, so a recycled pid is never signalled."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return DAEMON_MODULE.encode() in cmdline
