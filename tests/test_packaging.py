"""The wheel installs one package, ``awardwatch``, whose subpackages are the repository's top-level folders (issue 17 point 5)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.paths import ROOT

TOP = ("flows", "schemas", "transforms", "warehouse")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    uv = [sys.executable, "-m", "uv"] if shutil.which("uv") is None else ["uv"]
    out = tmp_path_factory.mktemp("dist")
    try:
        proc = subprocess.run([*uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)], capture_output=True,
                              text=True, timeout=240)
    except FileNotFoundError:
        pytest.skip("uv is not installed")
    if proc.returncode != 0 and "No module named uv" in proc.stderr:
        pytest.skip("uv is not installed")
    assert proc.returncode == 0, proc.stderr
    return next(out.glob("*.whl"))


def test_the_wheel_holds_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"awardwatch", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for package in TOP:
        assert f"awardwatch/{package}/__init__.py" in names
    assert "awardwatch/flows/cli/templates/base.html.j2" in names  # data files travel with their package
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "awardwatch = awardwatch.flows.cli:main" in entry


def test_the_installed_wheel_runs_without_the_checkout(wheel, tmp_path):
    """Installed alone (the checkout off sys.path), ``awardwatch --help`` runs from the wheel's own files."""
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)  # what an installer does with a pure-Python wheel
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; sys.argv = ['awardwatch', '--help'];"
            "import awardwatch, awardwatch.flows.cli as cli; print(awardwatch.__path__, cli.__file__); cli.main()")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(target), sysconfig.get_paths()["purelib"]],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    assert str(target / "awardwatch") in proc.stdout and str(ROOT) not in proc.stdout.splitlines()[0]
    assert "Usage" in proc.stdout


def test_no_module_imports_a_top_level_folder_by_its_bare_name():
    """Every import goes through ``awardwatch.`` (a bare ``flows`` import would load a second copy of a module)."""
    bare = []
    for folder in (*TOP, "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                bare += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in TOP]
    assert not bare, bare
