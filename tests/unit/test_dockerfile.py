"""Static checks of the Dockerfile: hadolint, and that it agrees with the service's config."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import DEFAULTS
from tests.support.servers import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: it is in requirements-dev.txt")
    return found


@pytest.mark.parametrize("path", ["Dockerfile", ".ci/standin-base.Dockerfile"])
def test_hadolint_passes(path):
    result = subprocess.run([hadolint(), "--no-color", path], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_is_justified_in_a_comment():
    for path in (ROOT / "Dockerfile", ROOT / ".ci/standin-base.Dockerfile"):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "hadolint ignore" in line:
                rule = line.split("=", 1)[1].strip()
                assert any(rule in previous and "hadolint" not in previous
                           for previous in lines[max(0, number - 4):number]), f"{path}:{number + 1}"


def test_the_base_image_is_pinned_to_a_python_patch_release():
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base) for base in bases), bases


def test_expose_and_the_port_the_service_binds_agree():
    assert re.search(r"^EXPOSE (\d+)$", DOCKERFILE, re.MULTILINE).group(1) == DEFAULTS["PORT"]


def test_the_image_sets_only_the_settings_whose_value_differs_from_the_default():
    """One place for a default (service/config.py): the image repeats none of them."""
    block = re.search(r"^ENV PYTHONDONTWRITEBYTECODE=1(.*?)\n\n", DOCKERFILE, re.MULTILINE | re.DOTALL).group(0)
    settings = dict(re.findall(r"([A-Z_]+)=(\S+)", block))
    repeated = {name for name, value in settings.items() if DEFAULTS.get(name) == value}
    assert repeated == set(), repeated
    assert settings["DATABASE_URL"] == "sqlite:////data/orders.sqlite3"  # the volume


def test_the_image_ships_compiled_bytecode():
    assert "--no-compile" not in DOCKERFILE
    assert re.search(r"^RUN python -m compileall -q /app/service$", DOCKERFILE, re.MULTILINE)


def test_it_runs_as_a_fixed_non_root_user_with_a_health_check_and_exec_form_cmd():
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.MULTILINE)
    assert re.search(r'^HEALTHCHECK .*\n?.*CMD \["python", "-m", "service.healthcheck"\]', DOCKERFILE, re.MULTILINE)
    assert re.search(r'^CMD \["python", "-m", "service", "serve"\]$', DOCKERFILE, re.MULTILINE)
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"):
        assert setting in DOCKERFILE


def test_every_env_setting_of_the_image_is_one_the_service_reads():
    block = re.search(r"^ENV PYTHONDONTWRITEBYTECODE=1(.*?)\n\n", DOCKERFILE, re.MULTILINE | re.DOTALL).group(0)
    names = set(re.findall(r"([A-Z_]+)=", block))
    runtime = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PATH", "MALLOC_ARENA_MAX"}
    assert names - runtime <= set(DEFAULTS), names - runtime - set(DEFAULTS)


def test_the_image_installs_exactly_the_pinned_requirements():
    lines = [line for line in (ROOT / "service/requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[a-z0-9_.-]+(\[[a-z,]+\])?==[0-9][0-9a-z.]*", line) for line in lines), lines
    assert "-r /tmp/requirements.txt" in DOCKERFILE


def test_only_the_service_goes_into_the_build_context():
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*" and rules[1] == "!service/"  # everything out, then service/ back in
    assert all(rule.startswith("service/") for rule in rules[2:])
