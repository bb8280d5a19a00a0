"""The documentation: built strictly, its generated parts made from the code and the
committed records, its pictures of today's pages, and the built site working in a
real browser (search included)."""

from __future__ import annotations

import functools
import http.server
import inspect
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from browser import watched_page
from script_loader import load_script

import cl_bench
from cl_bench.training.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


hooks = load_script("scripts/docs_hooks.py")
screenshots = load_script("scripts/docs_screenshots.py")


def test_the_readme_is_short_and_its_headline_table_is_current(capsys):
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    assert hooks.update_readme(check=True) == 0, capsys.readouterr().out


def test_the_headline_table_is_the_committed_leaderboards_top(tmp_path):
    """Its rows are the first continual rows of the Markdown leaderboard, in order."""
    board = (ROOT / "leaderboards" / "offline-mix.md").read_text().splitlines()
    continual = [line.split(" | ")[0].strip("| ") for line in board
                 if line.startswith("| ") and " | continual | " in line]  # fmt: skip
    headline = [line.split(" | ")[0].strip("| ") for line in hooks.headline().splitlines()[2:]]
    assert headline == continual[: hooks.HEADLINE_ROWS]


def test_an_unknown_directive_fails_the_build():
    with pytest.raises(ValueError, match="unknown directive 'nope'"):
        hooks.expand("text <!-- clbench: nope --> text")


def test_the_strategy_tables_cover_every_registered_strategy():
    registry = Registry.discover()
    table = hooks.strategies()
    names = re.findall(r"^\| `([^`]+)` \|", table, re.M)
    assert names == sorted(registry.strategies)
    families = {entry.plugin for entry in registry.strategies.values()}
    pages = {p.stem for p in (ROOT / "docs" / "strategies").glob("*.md")} - {"index"}
    assert families <= pages, "each plugin of strategies has its page"
    for family in families:
        text = (ROOT / "docs" / "strategies" / f"{family}.md").read_text()
        assert f"<!-- clbench: strategies {family} -->" in text


def test_every_exported_name_has_a_docstring_and_an_api_entry():
    missing = [name for name, module in cl_bench._EXPORTS.items()
               if not inspect.getdoc(getattr(cl_bench, name))]  # fmt: skip
    assert missing == []
    assert hooks.api().count("::: cl_bench.") == len(cl_bench._EXPORTS)


def test_the_pictures_show_todays_pages():
    notes = json.loads(screenshots.NOTES.read_text())
    assert set(notes) == set(screenshots.SHOTS)
    for name, (pattern, _) in screenshots.SHOTS.items():
        page = screenshots.source_page(pattern)
        assert notes[name]["sha256"] == screenshots.page_sha256(page), (
            f"docs/images/{name} shows an older {page.name}: run tox -e screenshots"
        )


def test_the_leaderboard_commentary_reads_the_committed_records():
    from cl_bench.results.records import iter_records

    records = [r for _, r in iter_records(hooks.LEADERBOARDS / "runs" / "offline-mix")]
    commits = {r["versions"]["clbench_commit"][:7] for r in records if not r.get("tuning")}
    tuned = {r["versions"]["clbench_commit"][:7] for r in records if r.get("tuning")}
    text = (ROOT / "docs" / "leaderboard.md").read_text()
    [named] = re.findall(r"reads the records of clbench commit (\w+)", text)
    assert commits == {named}, "the records changed: reread the commentary"
    [named_tuned] = re.findall(r"tuned rows come from clbench commit (\w+)", text)
    assert tuned == {named_tuned}, "the tuned records changed: reread the commentary"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("docs") / "public"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return site


def test_the_strict_build_has_the_generated_pages(built):
    cli = (built / "reference" / "cli" / "index.html").read_text()
    for option in ("--strategy", "--limit-per-class", "--html", "--sample"):
        assert option in cli
    api = (built / "reference" / "api" / "index.html").read_text()
    assert "The paper a strategy implements" in api  # Origin's docstring
    assert (built / "leaderboard-site" / "index.html").is_file()
    board = (built / "leaderboard" / "index.html").read_text()
    assert "<!-- clbench:" not in board and "avalanche:streaminglda" in board


@pytest.fixture(scope="module")
def served(built):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def visit(browser, url: str):
    page = watched_page(browser)
    response = page.goto(url)
    assert response is not None and response.ok, url
    return page


@pytest.mark.parametrize("path", ["", "reference/cli/", "strategies/sema/", "leaderboard-site/"])
def test_pages_load_without_console_errors(browser, served, path):
    page = visit(browser, f"{served}/{path}")
    page.wait_for_load_state("networkidle")
    assert page.errors == []
    page.close()


def test_the_search_finds_sema(browser, served):
    """Material's search runs in a web worker that builds its index after the page has
    loaded; a query typed before the index is ready finds nothing, so the query is typed
    again (as a user would) until the worker answers, for at most a minute."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = visit(browser, f"{served}/")
    page.wait_for_load_state("networkidle")
    page.click("label.md-search__icon, .md-search__input")
    for _ in range(6):
        page.fill("input.md-search__input", "")
        page.type("input.md-search__input", "SEMA", delay=50)
        try:
            page.wait_for_selector(".md-search-result__item", timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    titles = page.eval_on_selector_all(
        ".md-search-result__item", "items => items.map(i => i.innerText)"
    )
    assert any("SEMA" in title for title in titles)
    assert page.errors == []
    page.close()
