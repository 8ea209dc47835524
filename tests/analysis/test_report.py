"""``mbrl-tune report``: one self-contained HTML page and its Markdown twin, every section present, every
image loadable, the best configuration train-ready."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

from trials.config import TrialConfig

SECTIONS = ("front", "summary", "best", "comparison", "calibration", "plots", "importance", "trials")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id") or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            value = a.get(key) or ""
            if re.match(r"(https?:)?//", value):
                self.external.append(value)


def _load_png(src: str, base: Path):
    """Decode an <img> source (a data URI or a file relative to the page) as a PNG."""
    if src.startswith("data:"):
        header, data = src.split(",", 1)
        assert header == "data:image/png;base64"
        return matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
    return matplotlib.image.imread(base / src)


@pytest.fixture(scope="module")
def report(analysed, random_sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = cli("report", str(analysed.sweep), str(random_sweep_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_html_has_every_section_and_every_image_loads(report: Path, analysed) -> None:
    page = _Page()
    page.feed((report / "report.html").read_text())
    # The offline section appears once `mbrl-tune estimate` has run on the sweep (test_ope does).
    offline = ["offline"] if (analysed.sweep / "estimates").is_dir() else []
    assert page.sections == [*SECTIONS[:4], *offline, *SECTIONS[4:]]
    assert not page.external, "the page must open with no network"
    # 5 sweep plots + the importance bars + a scatter per heuristic (6)
    assert len(page.images) >= 12
    for src in page.images:
        image = _load_png(src, report)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_html_shows_the_comparison_calibration_and_both_sweeps(report: Path) -> None:
    text = (report / "report.html").read_text()
    comparison = text.split('id="comparison"')[1].split("</section>")[0]
    assert "hopper-random (mopo_official)" in comparison and "No comparison results" not in comparison
    calibration = text.split('id="calibration"')[1].split("</section>")[0]
    assert "loo_kl" in calibration and "max_aleatoric" in calibration and "No calibration" not in calibration
    summary = text.split('id="summary"')[1].split("</section>")[0]
    assert "ax3" in summary and "rand2" in summary and "random" in summary


def test_markdown_twin_links_loadable_images_and_the_same_sections(report: Path) -> None:
    md = (report / "report.md").read_text()
    for section in SECTIONS:
        assert f'<a id="{section}"></a>' in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 12
    for link in links:
        assert not link.startswith("/") and _load_png(link, report).ndim == 3


def test_best_configuration_is_exported_and_train_ready(report: Path, analysed) -> None:
    exported = report / "configs" / "best-ax3-hopper-random.yaml"
    cfg = TrialConfig.load(exported)
    assert cfg.epochs == 3 and cfg.penalty in ("max_aleatoric", "ensemble_std")
    assert "best-ax3-hopper-random.yaml" in (report / "report.md").read_text()


def test_a_sweep_without_comparison_or_calibration_says_so(random_sweep_dir: Path, tmp_path: Path, cli) -> None:
    done = cli("report", str(random_sweep_dir), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "report.html").read_text()
    page = _Page()
    page.feed(text)
    assert page.sections == [s for s in SECTIONS if s != "front"]  # no comparison: no front table
    assert "No comparison results cached" in text and "No calibration results" in text


def test_a_folder_that_is_not_a_sweep_exits_2_with_one_line(tmp_path: Path, cli) -> None:
    done = cli("report", str(tmp_path), "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "not a sweep folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
                    reason="no /usr/bin/chromium for a headless screenshot")
def test_headless_chromium_renders_the_page(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    done = subprocess.run(["/usr/bin/chromium", "--headless", "--disable-gpu", "--no-sandbox",
                           f"--screenshot={shot}", "--window-size=1200,3000", (report / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = matplotlib.image.imread(shot)
    assert image.std() > 0.01, "the page rendered blank"


def test_front_table_opens_the_report_with_the_result_and_the_pools(report: Path) -> None:
    text = (report / "report.html").read_text()
    front = text.split('id="front"')[1].split("</section>")[0]
    assert "hopper-random (mopo_official)" in front and "95% CI (Welch)" in front
    assert "h1: " in front and "max_aleatoric" in front  # the calibration ranking
    assert "pool-" in front and "member disagreement" in front  # every pool with its training record
