"""The files a package is expected to have, and one version everywhere: ``minilottery --version``, the installed
metadata, CITATION.cff and the CHANGELOG's latest section all say ``minilottery.__version__``."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

import minilottery
from tests.helpers import REPO, subprocess_env


def test_version_command_prints_the_package_version():
    out = subprocess.run([sys.executable, "-m", "minilottery", "--version"], capture_output=True, text=True,
                         env=subprocess_env(), cwd=REPO, check=True).stdout
    assert out.strip() == f"minilottery {minilottery.__version__}"


def test_installed_metadata_has_the_package_version():
    assert metadata.version("minilottery") == minilottery.__version__


def test_citation_cites_the_paper_and_this_version():
    text = (REPO / "CITATION.cff").read_text()
    assert re.search(r"^version: (\S+)$", text, re.M).group(1) == minilottery.__version__
    assert "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks" in text
    assert re.search(r"family-names: Frankle", text) and re.search(r"family-names: Carbin", text)


def test_changelog_starts_with_this_version():
    headings = re.findall(r"^## \[([^\]]+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert headings and headings[0] == minilottery.__version__


def test_license_is_the_mit_text_the_metadata_declares():
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")
    assert "MIT" in metadata.metadata("minilottery")["License"]
