"""Opening a report in headless Chromium and reading what the reader sees.

``chromium()`` finds Debian's ``chromium`` (or another Chrome), and as root installs it
with apt-get on first use, the way tests/slurm installs SLURM; without either it
returns None, and ``chromium_or_skip()`` skips with that reason (fails under CI=true).
``probe(page)`` loads a copy of the page with a script that, once everything has
loaded, writes what it found into the DOM: every image's natural width, the claims
tables, the verdicts and the visible text; ``--dump-dom`` hands that back.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const found = {
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    claims_tables: document.querySelectorAll("table.claims").length,
    verdicts: {
      holds: document.querySelectorAll(".verdict.holds").length,
      fails: document.querySelectorAll(".verdict.fails").length,
      na: document.querySelectorAll(".verdict.na").length,
    },
    fails_color: (() => {
      const v = document.querySelector(".verdict.fails");
      return v ? getComputedStyle(v).backgroundColor : null;
    })(),
    math: document.querySelectorAll("math").length,
    text: document.body.innerText,
  };
  const out = document.createElement("pre");
  out.id = "weightspace-probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "chromium",
        ]
        if subprocess.run(
            install, env=env, capture_output=True, timeout=900
        ).returncode:
            # a fresh machine may have no package lists yet
            subprocess.run(
                ["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300
            )
            subprocess.run(install, env=env, capture_output=True, timeout=900)
        return shutil.which("chromium")
    return None


def chromium_or_skip() -> str:
    """The browser; skips without one, and fails when CI is true, so that a CI run
    never silently drops the browser tests."""
    import pytest

    browser = chromium()
    if browser is not None:
        return browser
    reason = "no Chromium, and not root to install it with apt-get"
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(
            f"browser tests cannot run in CI (CI=true): {reason}", pytrace=False
        )
    pytest.skip(reason)


def probe(page: Path, browser: str, workdir: Path) -> dict:
    copy = workdir / f"probe-{page.name}"
    text = page.read_text()
    copy.write_text(text.replace("</body>", PROBE + "</body>", 1))
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=20000",
            "--dump-dom",
            copy.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    match = re.search(r'<pre id="weightspace-probe">(.*?)</pre>', proc.stdout, re.S)
    if match is None:
        raise AssertionError(f"the page did not finish loading:\n{proc.stderr[-3000:]}")
    return json.loads(html.unescape(match.group(1)))
