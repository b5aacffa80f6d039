"""`xorc analyze --html`: the page renders in a real headless browser, plots included."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from xorc.cli import cli

pytest.importorskip("matplotlib", reason="the 'report' extra (matplotlib) is not installed")

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium on this machine (Debian: apt-get install chromium)")


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.fixture
def page(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> Path:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli,
        ["analyze", str(tiny_model), "--calib", str(tiny_data), "--bits-grid", "2,4,8",
         "--sparsity-grid", "0,0.5", "--html", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    return out


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and not re.search(r"(src|href)=['\"]?https?:", text)
    for figure in ("errors", "chosen", "spent"):
        assert f"<figure id='{figure}'><svg" in text
    assert text.count("<tr>") == 1 + 3  # header and one row per layer


def test_browser_shows_the_plots(page: Path, tmp_path: Path) -> None:
    browser = _browser()
    dom = _headless(browser, "--dump-dom", page.as_uri()).stdout
    for figure in ("errors", "chosen", "spent"):
        block = dom.split(f'<figure id="{figure}">', 1)[1].split("</figure>", 1)[0]
        assert "<svg" in block and block.count("<path") >= 5, figure
    assert dom.count("<td>w1</td>") == 1
    shot = tmp_path / "shot.png"
    _headless(browser, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    inked = (pixels < 0.9).any(axis=2).mean()  # drawn (not white) fraction of the screen
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean()  # plot lines and bars
    assert inked > 0.02 and coloured > 0.002
