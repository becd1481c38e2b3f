"""The packages a user installs: sdists and wheels of ``latentsearch`` and ``lpn-arc``.

Editable installs (``make test``'s own) import the source tree, so they hide a package that
the build leaves out. Here each distribution is built as a user's ``pip install`` builds it
(sdist first, the wheel from the sdist), its archives are compared with the source tree
(every module, every shipped data file), and the two wheels are installed into a new venv
with no repository on ``sys.path``: every public name of ``latentsearch`` imports from
there, and the installed ``lpn-arc models`` lists the shipped models.

The new venv borrows the dependencies (jax, flax, ...) from the running interpreter's
site-packages through a ``.pth`` path line, which adds the folder but runs none of the
editable finders in it, so the test needs no network; ``pip check`` then confirms that
the wheels' declared requirements are met. ``make dist`` builds the same archives and checks
them with twine; it also installs them with their dependencies from the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = {  # distribution -> (project folder, import package)
    "latentsearch": (ROOT, "latentsearch"),
    "lpn_arc": (ROOT / "applications" / "arc", "lpn_arc"),
}
_NOT_SHIPPED = {"__pycache__"}


def _source_files(project: Path, package: str) -> set[str]:
    """Every file of the package's source tree, relative to the project folder."""
    files = set()
    for path in (project / package).rglob("*"):
        if path.is_file() and not _NOT_SHIPPED & set(path.parts) and path.suffix != ".pyc":
            files.add(path.relative_to(project).as_posix())
    return files


_LEFT_BEHIND = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", "*.pyc", ".*_cache", "runs"
)


def _build(project: Path, out: Path) -> tuple[Path, Path]:
    """The sdist, then the wheel built from the sdist, as ``pip install`` does.

    The project is copied first without the editable install's ``*.egg-info`` (whose stale
    ``SOURCES.txt`` would add files that the configuration leaves out) or build folders.
    """
    source = out / "source"
    shutil.copytree(project, source, ignore=_LEFT_BEHIND)
    argv = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}"
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("dist")
    return {name: _build(project, base / name) for name, (project, _) in PROJECTS.items()}


@pytest.mark.parametrize("name", list(PROJECTS))
def test_the_wheel_and_the_sdist_hold_every_file_of_the_package(archives, name):
    project, package = PROJECTS[name]
    expected = _source_files(project, package)
    sdist, wheel = archives[name]
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith("/")}
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        in_sdist = {m.name.removeprefix(top + "/") for m in tar.getmembers() if m.isfile()}
    assert not expected - in_wheel, f"{wheel.name} lacks {sorted(expected - in_wheel)[:10]}"
    assert not expected - in_sdist, f"{sdist.name} lacks {sorted(expected - in_sdist)[:10]}"


@pytest.fixture(scope="module")
def clean_venv(archives, tmp_path_factory) -> Path:
    """A new venv holding the two wheels (no editable install, no source folder)."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(home)
    python = home / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "_borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    wheels = [str(wheel) for _, wheel in archives.values()]
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "install", "--no-deps", "--no-index", *wheels], check=True,
                   capture_output=True, text=True)  # fmt: skip
    check = subprocess.run([*pip, "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return home


def _run_installed(home: Path, *argv: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import latentsearch, lpn_arc
modules = []
for package in (latentsearch, lpn_arc):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
            modules.append(info.name)
names = {name: type(getattr(latentsearch, name)).__name__ for name in latentsearch.__all__}
print(json.dumps({"files": [latentsearch.__file__, lpn_arc.__file__], "names": names,
                  "modules": modules, "path": sys.path}))
"""


def test_the_installed_wheels_import_every_public_name_and_module(clean_venv, tmp_path):
    python = str(clean_venv / "bin" / "python")
    out = json.loads(_run_installed(clean_venv, python, "-I", "-c", _IMPORT_ALL, cwd=tmp_path))
    import latentsearch

    assert set(out["names"]) == set(latentsearch.__all__)
    for file in out["files"]:  # imported from the venv, not from the repository
        assert Path(file).is_relative_to(clean_venv), file
    borrowed = sysconfig.get_path("purelib")  # the dependencies' folder, not a source tree
    sources = [p for p in out["path"] if Path(p).is_relative_to(ROOT) and p != borrowed]
    assert not sources, out["path"]
    assert "latentsearch._src.core" in out["modules"]
    assert "lpn_arc.training.loop" in out["modules"]


def test_the_installed_lpn_arc_lists_the_shipped_models(clean_venv, tmp_path):
    out = _run_installed(clean_venv, str(clean_venv / "bin" / "lpn-arc"), "models", cwd=tmp_path)
    shipped = ROOT / "applications" / "arc" / "lpn_arc" / "pretrained_models"
    names = sorted(p.name for p in shipped.iterdir() if (p / "card.json").exists())
    assert names, "no shipped models to list"
    listed = [line.split()[0] for line in out.splitlines() if line.strip()]
    for name in names:
        assert name in listed, out
