"""The example DAGs shipped in the package, and the checkout's dags/ that deploys the same service."""

from __future__ import annotations

import runpy
from pathlib import Path

from bluegreen_provider.example_dags import lego_api_service as example
from bluegreen_provider.locations import EXAMPLE_DAGS

REPO = Path(__file__).resolve().parents[3]


def test_the_example_folder_parses_as_airflows_dags_folder():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dag_ids) == {"blue_green_deploy", "bluegreen_rollback"}


def test_the_checkouts_dags_are_the_example_with_this_folders_migrations(monkeypatch):
    monkeypatch.delenv("BLUEGREEN_RELEASES_DIR", raising=False)
    shipped = example.lego_api()
    checkout = runpy.run_path(str(REPO / "dags" / "lego_api_service.py"))["lego_api"]()
    assert checkout["migrations"]["folder"] == str(REPO / "dags" / "migrations" / "lego_api")
    assert checkout["release"]["zip_file"] == str(REPO / ".sandbox" / "releases" / "v2.zip")
    for config in (shipped, checkout):
        del config["migrations"]["folder"], config["release"]
    assert checkout == shipped
    # The package ships the checkout's migrations: one set of files, linked into the package.
    assert example.MIGRATIONS.resolve() == (REPO / "dags" / "migrations" / "lego_api").resolve()
    assert sorted(p.name for p in example.MIGRATIONS.glob("V*.sql")) == [
        "V001__create_mocs.sql",
        "V002__create_gallery_images.sql",
        "V003__add_wishlist_priority.sql",
    ]
