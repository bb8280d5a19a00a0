"""Take the pictures in the docs with the headless system Chromium (Debian's, as the
browser tests use it), from what the code makes today: the committed leaderboard site,
which a test keeps equal to what the committed records make.

``python scripts/docs_screenshots.py`` (or ``tox -e screenshots``) rewrites every
picture in ``SHOTS`` and notes in ``docs/images/screenshots.json`` the checksum of the
page each was taken from; a test compares those checksums with the pages, so a picture
of an older leaderboard is caught.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
NOTES = IMAGES / "screenshots.json"
# picture -> the page it shows (a glob under the repository, one match) and the viewport
SHOTS = {
    "leaderboard-site.png": ("leaderboards/site/offline-mix-*.html", (1280, 900)),
}


def source_page(pattern: str) -> Path:
    [page] = sorted(ROOT.glob(pattern))
    return page


def page_sha256(page: Path) -> str:
    return hashlib.sha256(page.read_bytes()).hexdigest()


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install chromium")
    notes = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for name, (pattern, (width, height)) in SHOTS.items():
            page_file = source_page(pattern)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(page_file.as_uri())
            page.screenshot(path=str(IMAGES / name))
            page.close()
            notes[name] = {"page": page_file.relative_to(ROOT).as_posix(),
                           "sha256": page_sha256(page_file)}  # fmt: skip
            print(f"wrote docs/images/{name} from {notes[name]['page']}")
        browser.close()
    NOTES.write_text(json.dumps(notes, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
