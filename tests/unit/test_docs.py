"""The README and the notes next to the code stay true to the tree they describe."""
import re

import pytest

from service.config import DEFAULTS
from tests.support.servers import ROOT

PAGES = sorted(path for path in ROOT.rglob("*.md")
               if not {".venv", ".git", "node_modules"} & set(path.relative_to(ROOT).parts))
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(page):
    targets = [match.group(1) for match in LINK.finditer(page.read_text())
               if not match.group(1).startswith(("http://", "https://", "mailto:"))]
    missing = [target for target in targets if not (page.parent / target).exists()]
    assert missing == []


def test_the_readme_documents_every_setting_the_service_reads():
    readme = (ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    documented = {name for line in table for name in re.findall(r"`([A-Z_]+)`", line.split("|")[1])}
    assert documented == set(DEFAULTS)


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160


def test_the_source_checkers_readme_names_every_rule():
    from tests.source_checker.rules import RULES
    table = (ROOT / "tests" / "source_checker" / "README.md").read_text()
    assert [rule.key for rule in RULES if f"`{rule.key}`" not in table] == []
