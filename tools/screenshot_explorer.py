"""Render the Explorer in Chromium (through Voila) and save docs/explorer.png.

Usage: python tools/screenshot_explorer.py   (needs Debian's chromium at /usr/bin/chromium)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import requests
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import sync_playwright

from dfs_analytics.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with Simulator(work_orders=400, seed=0) as sim, tempfile.TemporaryDirectory() as folder:
        nb = new_notebook(
            cells=[
                new_code_cell(
                    "import dfs_analytics as dfs\n"
                    "client = dfs.connect()\n"
                    "explorer = dfs.Explorer(client, page_size=8)\n"
                    "explorer.task.value = 'cables_ranges'\n"
                    "explorer.overridden.value = True\n"
                    "explorer.show_work_order(explorer.work_order.options[0][1])\n"
                    "explorer.correct_task.value = explorer.correct_task.options[4][1]\n"
                    "explorer"
                )
            ]
        )
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nbformat.write(nb, Path(folder) / "explorer.ipynb")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DFS_")}
        env.update(DFS_BASE_URL=sim.base_url, DFS_API_KEY=sim.api_key, DFS_CACHE="none")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voila",
                "explorer.ipynb",
                "--no-browser",
                f"--port={port}",
                "--Voila.ip=127.0.0.1",
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    requests.get(f"http://127.0.0.1:{port}/api", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1250, "height": 1750})
                page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                page.get_by_text("Correct a task", exact=True).wait_for(timeout=120_000)
                page.get_by_text("Correct a task", exact=True).click()
                time.sleep(1)
                page.evaluate("window.scrollTo(0, 0)")
                page.evaluate(
                    "document.querySelector('.jp-Cell-inputWrapper, .jp-InputArea')?.remove()"
                )
                out = ROOT / "docs" / "explorer.png"
                page.screenshot(path=str(out), full_page=False)
                browser.close()
                print("wrote", out)
        finally:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
