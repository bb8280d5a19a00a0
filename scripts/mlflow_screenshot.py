"""Take docs/images/mlflow-ui.png: the committed leaderboard's records exported to a
fresh local MLflow server (SQLite), its runs table opened in the headless system
Chromium. ``python scripts/mlflow_screenshot.py``; needs ``clbench[mlflow]`` and
Debian's chromium, nothing from the network."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "images" / "mlflow-ui.png"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mlflow_server(folder: Path, seconds: float = 90) -> Iterator[str]:
    """A real MLflow tracking server on a free local port (SQLite backend and artifacts
    in ``folder``): its URI once it answers /health; stopped with its workers on exit.
    The tracking tests use it too."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the mlflow server at {uri} did not answer "
                                       f"within {seconds:.0f} s") from None  # fmt: skip
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


def main() -> None:
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH: apt-get install chromium")
    with tempfile.TemporaryDirectory() as folder, mlflow_server(Path(folder)) as uri:
        clbench = Path(sys.executable).with_name("clbench")
        subprocess.run([str(clbench), "export", "--to", "mlflow", uri, "--runs",
                        str(ROOT / "leaderboards" / "runs")], check=True)  # fmt: skip
        experiment = MlflowClient(uri).get_experiment_by_name("clbench").experiment_id
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            # the runs' curves (MLflow 3 opens on its GenAI view otherwise)
            page.goto(f"{uri}/#/experiments/{experiment}/runs?workflowType="
                      "machine_learning&compareRunsMode=CHART", wait_until="load")  # fmt: skip
            page.get_by_text("on offline-mix").first.wait_for(timeout=60000)
            assistant = page.locator("button[aria-label*='lose']")
            if assistant.count():  # MLflow's assistant panel covers a third of the page
                assistant.first.click()
            page.wait_for_timeout(3000)
            page.screenshot(path=str(PICTURE))
            browser.close()
        print(f"wrote {PICTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
