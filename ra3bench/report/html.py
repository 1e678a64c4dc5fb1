"""report.html: one self-contained file (figures embedded as base64 PNG), readable offline and attachable to CI.

It loads nothing from anywhere: no stylesheet, no script, no font, no favicon request. A short
inline script only checks, once loaded, that every figure decoded, and says so on the console
and in the page (a broken figure is an error a headless browser test can see).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence

from ra3bench.report.base import Block, Heading, Image, Para, Table

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1180px;
       padding: 0 1rem; color: #1f2328; background: #fff; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: 13.5px; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
code { background: #f0f2f4; padding: 0 .25rem; border-radius: 3px; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 13px; }
#figures-status { color: #57606a; font-size: 12px; }
"""

CHECK = """
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("figure img"), bad = 0;
  imgs.forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) { bad++; console.error("figure did not load: " + img.alt); }
  });
  var status = document.getElementById("figures-status");
  status.textContent = bad ? bad + " of " + imgs.length + " figures did not load" : imgs.length + " figures loaded";
  document.body.setAttribute("data-figures", bad ? "broken" : "ok " + imgs.length);
});
"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def render_html(blocks: Sequence[Block], title: str = "ra3bench report") -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            alt = html.escape(block.alt, quote=True)
            body.append(
                f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block.alt)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)}</title><style>{STYLE}</style></head>\n'
        "<body>\n" + "\n".join(body) + '\n<p id="figures-status"></p>\n'
        f"<script>{CHECK}</script>\n</body></html>\n"
    )
