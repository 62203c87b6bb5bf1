"""The Blue/Green view for an Airflow whose ``[core] plugins_folder`` is this folder but which has the
package only on its path, not installed (no ``airflow.plugins`` entry point).

An installed package registers the plugin through its entry point, which Airflow loads after this
folder; defining the plugin here as well would register it twice ("Plugin 'bluegreen' already
registered" in the UI's import errors). So this file defines it only when the entry point is missing.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.value.startswith("bluegreen_provider.") for ep in entry_points(group="airflow.plugins")):
    from bluegreen_provider.ui.plugin import BlueGreenPlugin  # noqa: F401
