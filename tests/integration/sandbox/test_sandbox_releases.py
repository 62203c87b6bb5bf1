"""Demo releases: deterministic packages whose code behaves as each release claims."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bluegreen_provider.sandbox.releases import RELEASE_NAMES, ReleaseCatalog, build_zip, code_sha256, handler_source
from bluegreen_provider.sandbox.runtime import invoke


def test_zips_are_byte_identical_across_builds_and_distinct_per_release(tmp_path: Path) -> None:
    first, second = ReleaseCatalog(), ReleaseCatalog()
    assert first.shas() == second.shas()
    assert len(set(first.shas().values())) == len(RELEASE_NAMES)
    for name in RELEASE_NAMES:
        assert build_zip(handler_source(name)) == first[name].zip_bytes
        path = first.write_zip(name, tmp_path)
        assert code_sha256(path.read_bytes()) == first[name].sha256
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist() == ["handler.py"]
            assert archive.getinfo("handler.py").date_time == (1980, 1, 1, 0, 0, 0)


def _run(catalog: ReleaseCatalog, name: str, path: str, request_id: str):
    return invoke(
        catalog[name], function="lego-api-moc", version="1", alias="production-green", path=path, request_id=request_id
    )


def test_bad_release_fails_about_thirty_percent_deterministically() -> None:
    catalog = ReleaseCatalog()
    outcomes = [_run(catalog, "bad", "/api/mocs", f"7-{n:09d}") for n in range(2000)]
    failures = sum(o.status >= 500 for o in outcomes)
    crashes = sum(o.function_error for o in outcomes)
    assert 0.25 < failures / len(outcomes) < 0.35
    assert 0.15 < crashes / len(outcomes) < 0.25
    assert all(o.status == 502 for o in outcomes if o.function_error)
    again = [_run(catalog, "bad", "/api/mocs", f"7-{n:09d}").status for n in range(50)]
    assert [o.status for o in outcomes[:50]] == again
    assert _run(catalog, "bad", "/health", "h").status == 200


def test_good_and_unhealthy_releases() -> None:
    catalog = ReleaseCatalog()
    for name in ("v1", "v2"):
        assert _run(catalog, name, "/health", "h").status == 200
        assert all(_run(catalog, name, "/api/gallery", f"r{n}").status == 200 for n in range(200))
    assert _run(catalog, "unhealthy", "/health", "h").status == 503
    assert _run(catalog, "unhealthy", "/api/profile", "r").status == 200


def test_a_new_build_has_its_own_code_and_behaves_as_its_base(tmp_path: Path) -> None:
    catalog = ReleaseCatalog()
    build = catalog.add_build("bad", 3)
    assert build.name == "bad+3" and catalog.add_build("bad", 3) is build
    assert build.sha256 not in {catalog[name].sha256 for name in RELEASE_NAMES}
    assert catalog.by_sha(build.sha256) is build and catalog.add_build("bad", 4).sha256 != build.sha256
    base = [_run(catalog, "bad", "/api/mocs", f"7-{n:09d}").status for n in range(200)]
    assert [_run(catalog, "bad+3", "/api/mocs", f"7-{n:09d}").status for n in range(200)] == base
    assert code_sha256(catalog.write_zip("bad+3", tmp_path).read_bytes()) == build.sha256
    for bad in (0, True, "2"):
        with pytest.raises(ValueError, match="build must be an int >= 1"):
            catalog.add_build("v2", bad)
    with pytest.raises(KeyError, match="unknown release"):
        catalog.add_build("v9", 1)
