"""Pages opened in the system Chromium (Debian's) with every console and page error
collected, for the browser tests of the leaderboard site and the docs."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def watched_page(browser: Any) -> Any:
    """A fresh page whose ``errors`` collects every console error and page error."""
    page = browser.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page
