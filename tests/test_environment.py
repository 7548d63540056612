"""The install files agree: pyproject.toml, environment.yml, the Makefile and the build script.

pyproject.toml is the source of truth. environment.yml (for conda users) must list the
same packages with the same version specifiers, except learn2learn, which pip cannot
build on Python 3.11 and which a comment sends to ``scripts/build_learn2learn.py``.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = "scripts/build_learn2learn.py"
# Packages environment.yml may leave out, provided a comment names the pin and BUILD_SCRIPT.
BUILT_BY_SCRIPT = {"learn2learn"}


# ----------------------------------------------------------------------------- parsing

def requirement_map(lines: list[str]) -> dict[str, str]:
    """``{canonical name: "extras specifier ; marker"}`` for requirement strings; duplicates raise."""
    result: dict[str, str] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in result:
            raise ValueError(f"{req.name} is listed twice")
        extras = "[" + ",".join(sorted(req.extras)) + "]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        result[name] = f"{extras}{req.specifier}{marker}"  # SpecifierSet's str is sorted
    return result


def pyproject_requirements(text: str) -> dict[str, str]:
    """Runtime and every optional-dependency group of a pyproject.toml."""
    project = tomllib.loads(text)["project"]
    lines = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        lines += group
    return requirement_map(lines)


def parse_environment_tiny(text: str) -> dict:
    """Read the subset of YAML an environment.yml uses: ``name``, ``channels``, ``dependencies``
    (plain items and one nested ``- pip:`` list). Comments and blank lines are skipped."""
    env: dict = {"channels": [], "dependencies": []}
    section, pip_indent = None, None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if indent == 0:
            key, _, value = item.partition(":")
            section, pip_indent = key.strip(), None
            if value.strip():
                env[section] = value.strip()
            continue
        if not item.startswith("- "):
            raise ValueError(f"unexpected line in environment.yml: {raw!r}")
        value = item[2:].strip()
        if section == "dependencies" and value == "pip:":
            pip_indent = indent
            env["dependencies"].append({"pip": []})
        elif section == "dependencies" and pip_indent is not None and indent > pip_indent:
            env["dependencies"][-1]["pip"].append(value)
        else:
            pip_indent = None
            env.setdefault(section, []).append(value)
    return env


def parse_environment(text: str) -> dict:
    """PyYAML when it is installed (Jupyter pulls it in), else :func:`parse_environment_tiny`."""
    try:
        import yaml
    except ImportError:
        return parse_environment_tiny(text)
    return yaml.safe_load(text)


def environment_pip_lines(env: dict) -> list[str]:
    pip_blocks = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    if len(pip_blocks) != 1:
        raise ValueError(f"expected one pip: block in environment.yml, found {len(pip_blocks)}")
    return list(pip_blocks[0])


# -------------------------------------------------------------------------- comparing

def has_build_comment(env_text: str, name: str, spec: str) -> bool:
    """Whether a comment line names ``name`` + ``spec`` and the script that builds it."""
    pattern = rf"^\s*#\s*{re.escape(name)}{re.escape(spec)}\b.*python {re.escape(BUILD_SCRIPT)}"
    return re.search(pattern, env_text, flags=re.MULTILINE | re.IGNORECASE) is not None


def requirement_mismatches(project: dict[str, str], env: dict[str, str], env_text: str) -> list[str]:
    """Everything that differs between the two name->specifier maps (empty list: they agree)."""
    problems = []
    for name in sorted(project.keys() | env.keys()):
        if name not in env:
            if name in BUILT_BY_SCRIPT and has_build_comment(env_text, name, project[name]):
                continue
            hint = f" (or a comment '# {name}{project[name]}: run \"python {BUILD_SCRIPT}\" ...')" \
                if name in BUILT_BY_SCRIPT else ""
            problems.append(f"{name}{project[name]} is in pyproject.toml but not in environment.yml{hint}")
        elif name not in project:
            problems.append(f"{name}{env[name]} is in environment.yml but not in pyproject.toml")
        elif project[name] != env[name]:
            problems.append(f"{name}: pyproject.toml has {project[name]!r}, environment.yml has {env[name]!r}")
    return problems


# ------------------------------------------------------------------------------ tests

@pytest.fixture(scope="module")
def pyproject_text() -> str:
    return (ROOT / "pyproject.toml").read_text()


@pytest.fixture(scope="module")
def env_text() -> str:
    return (ROOT / "environment.yml").read_text()


def test_environment_yml_lists_what_pyproject_lists(pyproject_text, env_text):
    project = pyproject_requirements(pyproject_text)
    env = requirement_map(environment_pip_lines(parse_environment(env_text)))
    assert requirement_mismatches(project, env, env_text) == []
    assert "learn2learn" in project and "learn2learn" not in env


def test_environment_yml_header(env_text):
    env = parse_environment(env_text)
    assert env["name"] == "fslcourse"
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]


def test_tiny_parser_agrees_with_pyyaml(env_text):
    yaml = pytest.importorskip("yaml")
    assert parse_environment_tiny(env_text) == yaml.safe_load(env_text)


PROJECT = ["torch==2.14.1", "numpy", "learn2learn==0.2.0", "nbval>=0.11,<0.12"]
COMMENT = '# learn2learn==0.2.0: run "python scripts/build_learn2learn.py" after creating the env'


@pytest.mark.parametrize("env_lines, comment, expected", [
    (["torch==2.14.1", "numpy", "nbval<0.12,>=0.11"], COMMENT, []),
    (["torch==2.13.0", "numpy", "nbval>=0.11,<0.12"], COMMENT, ["torch: pyproject.toml has '==2.14.1'"]),
    (["torch==2.14.1", "nbval>=0.11,<0.12"], COMMENT, ["numpy is in pyproject.toml but not"]),
    (["torch==2.14.1", "numpy", "nbval>=0.11,<0.12", "pandas"], COMMENT, ["pandas is in environment.yml"]),
    (["torch==2.14.1", "numpy", "nbval>=0.11,<0.12"], "# learn2learn: see the README", ["learn2learn==0.2.0 is in"]),
    (["torch==2.14.1", "numpy", "nbval>=0.11,<0.12"], COMMENT.replace("0.2.0", "0.1.7"), ["learn2learn==0.2.0 is in"]),
    (["torch==2.14.1", "numpy", "nbval>=0.11,<0.12", "learn2learn==0.1.7"], COMMENT, ["learn2learn: pyproject"]),
])
def test_mismatches_are_found(env_lines, comment, expected):
    env_text = "\n".join([comment, *env_lines])
    problems = requirement_mismatches(requirement_map(PROJECT), requirement_map(env_lines), env_text)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems


def test_names_are_compared_canonically():
    assert requirement_map(["Jupyter_Lab>=4", "pillow"]) == {"jupyter-lab": ">=4", "pillow": ""}
    with pytest.raises(ValueError, match="twice"):
        requirement_map(["numpy", "NumPy>=2"])


def test_makefile_and_build_script_use_the_pyproject_pins(pyproject_text):
    project = pyproject_requirements(pyproject_text)
    makefile = (ROOT / "Makefile").read_text()
    pins = re.search(r"^TORCH_PINS\s*:?=\s*(.+)$", makefile, flags=re.MULTILINE).group(1).split()
    assert requirement_map(pins) == {name: project[name] for name in ("torch", "torchvision")}
    script = (ROOT / BUILD_SCRIPT).read_text()
    version = re.search(r'^VERSION = "([^"]+)"$', script, flags=re.MULTILINE).group(1)
    assert project["learn2learn"] == f"=={version}"


def test_ci_runs_make_test():
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert "set -euo pipefail" in lines
    assert "make test" in lines


def test_make_lab_passes_the_data_folder_to_the_notebooks(tmp_path):
    """`make lab` opens JupyterLab with FSLCOURSE_DATA set, as `make test` runs the notebooks."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(["make", "-n", "lab", f"FSLCOURSE_DATA={tmp_path}"], cwd=root, capture_output=True, text=True)
    lab = [line for line in out.stdout.splitlines() if "jupyter\" lab" in line or "jupyter lab" in line]
    assert lab and f'FSLCOURSE_DATA="{tmp_path}"' in lab[-1], out.stdout
    for target in ("lab", "test"):  # a relative folder is made absolute: the notebooks run from notebooks/
        for given, passed in (("../shared/data", f"{root}/../shared/data"), ("/tmp/my data", "/tmp/my data"),
                              ("~/data", "~/data"), ("my data", f"{root}/my data")):
            out = subprocess.run(["make", "-n", target, f"FSLCOURSE_DATA={given}"], cwd=root, capture_output=True,
                                 text=True)
            assert f'FSLCOURSE_DATA="{passed}"' in out.stdout, (given, out.stdout)
