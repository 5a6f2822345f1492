"""Headless Chromium (Debian's `chromium` package) for checking HTML reports as a browser sees them."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# Appended to a copy of the page: after load, write what each <img> decoded to into the DOM.
_PROBE = """<script>
window.addEventListener("load", function () {
  var rows = Array.from(document.images).map(function (img) {
    return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
            inline: img.src.indexOf("data:") === 0};
  });
  var out = document.createElement("pre");
  out.id = "image-probe";
  out.textContent = JSON.stringify(rows);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [chromium() or "chromium", *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def loaded_images(html_path: Path) -> list[dict[str, Any]]:
    """Each <img> of the page as Chromium decoded it: alt, complete, naturalWidth/Height, inline."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html_path.read_text("utf-8").replace("</body>", _PROBE + "</body>"), "utf-8")
        done = _run(["--virtual-time-budget=10000", "--dump-dom", page.as_uri()], Path(tmp) / "profile")
    match = re.search(r'<pre id="image-probe">(.*?)</pre>', done.stdout, re.S)
    if not match:
        raise AssertionError(f"chromium gave no probe output (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(html_path: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        done = _run([f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={png}",
                     html_path.resolve().as_uri()], Path(tmp) / "profile")
    if not png.is_file():
        raise AssertionError(f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return png
