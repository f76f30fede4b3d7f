"""One version for the project: gad/__init__.py holds it; the package metadata and the studio read it."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_the_version_is_defined_once_and_read_by_the_build_and_the_studio():
    import gad
    from app.api import VERSION

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gad.__version__"}
    from setuptools.config.pyprojecttoml import read_configuration

    built = read_configuration(REPO / "pyproject.toml", expand=True)["project"]["version"]
    assert built == gad.__version__ == VERSION and gad.__version__.count(".") == 2
