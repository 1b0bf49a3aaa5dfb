"""Headless Chromium (Debian package ``chromium``) and Mermaid (npm, pinned in tests/mermaid/package-lock.json)
for the overview tests. Outside CI a missing browser or Mermaid skips with the command that installs it; in CI
(``CI`` set, as .ci/run runs) it fails, so these tests never skip silently there."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from generator.command import Command

HERE = Path(__file__).resolve().parent
MERMAID_JS = HERE / "mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)


def _missing(what: str, install: str) -> None:
    message = f"{what} is missing: {install}"
    if os.environ.get("CI"):
        pytest.fail(message + " (.ci/run installs it)")
    pytest.skip(message)


def chromium() -> Command:
    """The Chromium command with the headless flags, a throw-away profile and no network."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        _missing("chromium", "apt-get install -y --no-install-recommends chromium")
    assert binary is not None
    profile = tempfile.mkdtemp(prefix="fleetgen-chromium-")
    return Command((binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
                    "--proxy-bypass-list=<-loopback>"))


def dump_dom(page: Path, budget_ms: int = 0) -> str:
    """The DOM of ``page`` after load (and after ``budget_ms`` of virtual time, for asynchronous scripts)."""
    extra = [f"--virtual-time-budget={budget_ms}"] if budget_ms else []
    return chromium().run(*extra, "--dump-dom", page.as_uri(), timeout=180)


def screenshot(page: Path, png: Path, size: str = "1400,1400") -> bytes:
    """A PNG screenshot of ``page``."""
    chromium().run(f"--window-size={size}", f"--screenshot={png}", page.as_uri(), timeout=180)
    return png.read_bytes()


def mermaid_results(diagrams: list[str], workdir: Path) -> list[dict[str, Any]]:
    """Parse and render each diagram with Mermaid itself in headless Chromium.

    Per diagram: ``ok`` (parsed and rendered), ``error`` (Mermaid's message), ``text`` (the rendered SVG's
    text) and ``elements`` (tag names found in the SVG that must never come from a label: script, img,
    iframe, a, object, embed)."""
    if not MERMAID_JS.is_file():
        _missing("mermaid (npm)", "npm ci --prefix tests/mermaid --ignore-scripts")
    payload = json.dumps(diagrams).replace("</", "<\\/")
    page = workdir / "mermaid-check.html"
    page.write_text(
        f"""<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="result">pending</pre><div id="scratch"></div>
<script src="{MERMAID_JS.as_uri()}"></script>
<script>
const diagrams = {payload};
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict" }});
(async () => {{
  const out = [];
  for (const [index, text] of diagrams.entries()) {{
    try {{
      await mermaid.parse(text);
      const {{ svg }} = await mermaid.render("diagram" + index, text);
      const holder = document.getElementById("scratch");
      holder.innerHTML = svg;
      const bad = [...holder.querySelectorAll("script, img, iframe, a, object, embed")].map(e => e.tagName);
      holder.querySelectorAll("style").forEach(e => e.remove());
      out.push({{ ok: true, text: holder.textContent, elements: bad }});
      holder.innerHTML = "";
    }} catch (error) {{
      out.push({{ ok: false, error: String((error && error.message) || error) }});
    }}
  }}
  document.getElementById("result").textContent = JSON.stringify(out);
}})();
</script></body></html>
""",
        encoding="utf-8",
    )
    dom = dump_dom(page, budget_ms=60_000)
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found, dom[:2000]
    text = html.unescape(found.group(1))
    assert text != "pending", "Mermaid did not finish within the virtual time budget"
    results: list[dict[str, Any]] = json.loads(text)
    return results


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes): width, height, pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    offset = 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(line)
        previous = line
    pixels = [tuple(row[x * channels:x * channels + 3]) for row in rows for x in range(width)]
    return width, height, pixels
