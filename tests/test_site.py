"""The leaderboard site in a real browser: Debian's Chromium driven by Playwright.

Sorting, filtering and curve toggles are clicked as a reader would; the numbers are
compared with the CSV; untrusted names render as text; no page logs a console error.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from browser import watched_page
from cli_runner import clbench

from cl_bench.results.leaderboard import write_leaderboards
from cl_bench.results.records import RECORD_FORMAT, record_path, write_record

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"


@pytest.fixture
def open_page(browser):
    """Open a file in a fresh page; every console error or page error is collected."""
    pages = []

    def open_(path: Path):
        page = watched_page(browser)
        page.goto(path.as_uri())
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


def stream_page(site: Path, stream: str) -> Path:
    [page] = site.glob(f"{stream}-*.html")
    return page


def column(page, key: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#table tbody tr:not([hidden]) td[data-key='{key}']",
        "cells => cells.map(c => c.dataset.value)",
    )


def csv_rows() -> dict[tuple[str, str, str], dict[str, str]]:
    with (LEADERBOARDS / "offline-mix.csv").open(newline="") as file:
        return {(r["strategy"], r["backbone"], r["variant"]): r for r in csv.DictReader(file)}


@pytest.fixture(scope="module")
def committed():
    """The committed site's stream page (its freshness is checked in
    test_committed_leaderboard)."""
    return stream_page(LEADERBOARDS / "site", "offline-mix")


@pytest.mark.parametrize("key", ["last_accuracy", "bwt", "map_ac", "peak_rss_mib", "strategy"])
def test_a_header_click_sorts_by_its_column_both_ways(open_page, committed, key):
    page = open_page(committed)
    header = page.locator(f"#table th[data-key='{key}'] button")
    numeric = key != "strategy"

    def order(values):
        present = [v for v in values if v != ""]
        assert values[len(present) :] == [""] * (len(values) - len(present))  # missing last
        return [float(v) for v in present] if numeric else present

    header.click()
    ascending = order(column(page, key))
    assert ascending == sorted(ascending) and len(set(ascending)) > 1
    assert page.get_attribute(f"#table th[data-key='{key}']", "aria-sort") == "ascending"
    header.click()
    descending = order(column(page, key))
    assert descending == sorted(ascending, reverse=True)
    assert page.get_attribute(f"#table th[data-key='{key}']", "aria-sort") == "descending"
    assert page.errors == []


def test_the_filter_box_hides_rows_that_do_not_match(open_page, committed):
    page = open_page(committed)
    everything = column(page, "strategy")
    page.fill("#filter", "avalanche")
    shown = column(page, "strategy")
    assert shown and all("avalanche" in name for name in shown)
    assert len(shown) == sum("avalanche" in name for name in everything)
    page.fill("#filter", "avalanche reference")  # every word must match
    assert column(page, "strategy") == ["avalanche:cumulative"]
    page.fill("#filter", "no such strategy")
    assert column(page, "strategy") == [] and "0 of" in page.inner_text("#shown")
    page.fill("#filter", "")
    assert column(page, "strategy") == everything
    assert page.errors == []


def test_toggling_a_strategy_hides_its_curve(open_page, committed):
    page = open_page(committed)
    box = page.locator("fieldset.legend label", has_text="fecam /").locator("input")
    curve = page.locator(f"#{box.get_attribute('data-curve')}")
    others = page.locator("g.curve")
    assert curve.is_visible() and others.count() == len(csv_rows())
    box.uncheck()
    assert not curve.is_visible()
    assert sum(others.nth(i).is_visible() for i in range(others.count())) == others.count() - 1
    box.check()
    assert curve.is_visible()
    page.click("button[data-curves='none']")
    assert not any(others.nth(i).is_visible() for i in range(others.count()))
    page.click("button[data-curves='all']")
    assert all(others.nth(i).is_visible() for i in range(others.count()))
    assert page.errors == []


def test_every_number_in_the_table_equals_the_csvs(open_page, committed):
    page = open_page(committed)
    expected = csv_rows()
    cells = page.eval_on_selector_all(
        "#table tbody tr",
        """rows => rows.map(r => ({key: [r.dataset.strategy, r.dataset.backbone,
             r.dataset.variant], cells: [...r.cells].map(c => ({key: c.dataset.key,
             value: c.dataset.value, std: c.dataset.std ?? null, text: c.innerText}))}))""",
    )
    assert sorted(tuple(row["key"]) for row in cells) == sorted(expected)
    metrics = {column[: -len("_mean")] for column in next(iter(expected.values()))
               if column.endswith("_mean")}  # fmt: skip
    compared = 0
    for row in cells:
        csv_row = expected[tuple(row["key"])]
        assert {c["key"] for c in row["cells"] if c["std"] is not None} == metrics
        for cell in row["cells"]:
            key = cell["key"]
            if cell["std"] is not None:  # a metric: mean and std, as the CSV has them
                assert cell["value"] == csv_row[f"{key}_mean"], (row["key"], key)
                assert cell["std"] == csv_row[f"{key}_std"], (row["key"], key)
                shown = cell["text"].split(" ± ")
                if csv_row[f"{key}_mean"] == "":
                    assert shown == ["n/a"]
                    continue
                assert abs(float(shown[0]) - float(csv_row[f"{key}_mean"])) <= 0.005 + 1e-9
                if csv_row[f"{key}_std"]:
                    assert abs(float(shown[1]) - float(csv_row[f"{key}_std"])) <= 0.005 + 1e-9
                compared += 1
            else:
                assert cell["value"] == csv_row[key], (row["key"], key)
                if key in ("n_seeds", "rehearsal_samples", "trainable_parameters"):
                    assert int(cell["text"].replace(",", "")) == int(csv_row[key])
    assert compared > len(expected) * len(metrics) // 2  # most are numbers, not n/a


def test_no_page_logs_a_console_error(open_page, committed):
    index = open_page(LEADERBOARDS / "site" / "index.html")
    index.click("text=offline-mix")
    index.wait_for_selector("#table")
    index.click("#table tbody tr:first-child td[data-key='strategy'] a")
    index.wait_for_selector("#provenance")
    assert "clbench evaluate --strategy" in index.inner_text("#reproduce")
    assert index.errors == []


def hostile_record(seed: int) -> dict:
    """A record whose names are markup: they must render as the text they are."""
    return {
        "format": RECORD_FORMAT,
        "stream": "toy<i>x</i>",
        "strategy": "<script>window.pwned = 1</script>",
        "backbone": 'bb"><img src=x onerror="window.pwned = 2">',
        "seed": seed,
        "variant": "note=<b>bold</b>",
        "overrides": {"note": "<b>bold</b>"},
        "config": {"note": "<b>bold</b>"},
        "metrics": {
            "accuracy_curve": [90.0, 60.0 + seed],
            "accuracy_matrix": [[90.0, None], [50.0, 70.0 + seed]],
            "last_accuracy": 60.0 + seed,
            "average_incremental_accuracy": 75.0,
            "forgetting_max": 40.0,
            "forgetting_initial": 40.0,
            "bwt": -40.0,
        },
        "resources": {"wall_seconds": 1.0, "trainable_parameters": 10, "rehearsal_samples": 0},
    }


def write_hostile_runs(root: Path) -> None:
    for seed in (1, 2):
        record = hostile_record(seed)
        names = {key: record[key] for key in ("stream", "strategy", "backbone", "variant")}
        write_record(record_path(root, seed=seed, **names), record)


def test_names_and_descriptions_from_records_and_plugins_render_as_text(tmp_path, open_page):
    write_hostile_runs(tmp_path / "runs")
    description = "<script>window.pwned = 3</script> adapters & <prompts>"
    write_leaderboards(tmp_path / "runs", tmp_path / "out",
                       descriptions={hostile_record(1)["strategy"]: description})  # fmt: skip
    site = tmp_path / "out" / "site"
    page = open_page(site / "index.html")
    assert "toy<i>x</i>" in page.inner_text("#streams")
    assert_inert(page)
    page.click("#streams a >> nth=0")
    page.wait_for_selector("#table")
    assert_inert(page)
    assert page.inner_text("#table td[data-key='strategy']") == hostile_record(1)["strategy"]
    assert page.inner_text("#table td[data-key='variant']") == "note=<b>bold</b>"
    label = page.get_attribute("g.curve", "data-label")
    assert label.startswith("<script>") and 'onerror="window.pwned = 2">' in label
    page.click("#table td[data-key='strategy'] a")
    page.wait_for_selector("#provenance")
    assert page.inner_text("p.description") == description
    assert "<b>bold</b>" in page.inner_text("#provenance")
    assert_inert(page)


def assert_inert(page) -> None:
    """No injected markup became an element or ran on the page shown now (index, stream
    and row pages in turn), and nothing logged an error since the page was opened."""
    assert page.evaluate("window.pwned") is None
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("img").count() == 0
    assert page.errors == []


def test_regenerating_replaces_the_site_whole(tmp_path):
    """A row whose records are gone loses its page too: the folder is replaced, not
    added to; and a folder that is not a site is never replaced."""
    write_hostile_runs(tmp_path / "runs")
    extra = hostile_record(1) | {"strategy": "other"}
    write_record(record_path(tmp_path / "runs", stream=extra["stream"], strategy="other",
                             backbone=extra["backbone"], seed=1, variant=extra["variant"]),
                 extra)  # fmt: skip
    write_leaderboards(tmp_path / "runs", tmp_path / "out")
    pages = lambda: sorted(p.name for p in (tmp_path / "out" / "site").rglob("*.html"))  # noqa: E731
    assert len(pages()) == 1 + 1 + 2  # index, the stream, two rows
    for path in (tmp_path / "runs").rglob("*.json"):
        if '"strategy": "other"' in path.read_text():
            path.unlink()
    write_leaderboards(tmp_path / "runs", tmp_path / "out")
    assert len(pages()) == 1 + 1 + 1
    assert not list((tmp_path / "out").glob(".site.*"))  # no temporary folder left

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    code, _, err = clbench("leaderboard", "--runs", str(tmp_path / "runs"),
                           "--out", str(tmp_path / "out2"), "--html", str(mine))  # fmt: skip
    assert code == 2 and "not a leaderboard site" in " ".join(err.split()), err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and "Traceback" not in err
    assert not (tmp_path / "out2").exists()  # refused before anything was written
