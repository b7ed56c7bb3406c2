"""The HTML report: report.md rendered as one self-contained page.

Figures are inlined as base64 data (the file can be mailed or attached on its own), verdict cells
are coloured by status, and each table row keeps the paper's statement and its controls (↳) as
the Markdown report has them. Rendering uses Python-Markdown with its tables extension.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

from ..store import write_atomic

STATUSES = ("PASS", "FAIL", "INCONCLUSIVE")
CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f3f3f3; }
td.PASS { background: #d8f0d8; } td.FAIL { background: #f6d5d5; } td.INCONCLUSIVE { background: #f6efcf; }
img { max-width: 100%; border: 1px solid #eee; }
.missing { color: #a00; font-weight: bold; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""
_IMG = re.compile(r'<img alt="(?P<alt>[^"]*)" src="(?P<src>[^"]+)"\s*/?>')
_STATUS_CELL = re.compile(r"<td><strong>(?P<s>" + "|".join(STATUSES) + r")</strong></td>")
_HOLM_CELL = re.compile(r"<td>(?P<s>" + "|".join(STATUSES) + r")</td>")
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _inline(match: re.Match, base: Path, missing: list[str]) -> str:
    src, alt = html.unescape(match["src"]), match["alt"]
    path = (base / src) if not Path(src).is_absolute() else Path(src)
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        missing.append(src)
        return f'<span class="missing">figure missing: {html.escape(src)}</span>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{alt}" src="data:{mime};base64,{data}" data-source="{html.escape(src)}">'


def render_html(markdown_text: str, base: Path, title: str) -> tuple[str, list[str]]:
    """(the page, the figures that could not be inlined) for Markdown whose images are relative to ``base``."""
    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    missing: list[str] = []
    body = _IMG.sub(lambda m: _inline(m, base, missing), body)
    body = _STATUS_CELL.sub(lambda m: f'<td class="{m["s"]}"><strong>{m["s"]}</strong></td>', body)
    body = _HOLM_CELL.sub(lambda m: f'<td class="{m["s"]}">{m["s"]}</td>', body)
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
    return page, missing


def write_html_report(report_md: Path, report_html: Path | None = None) -> tuple[Path, list[str]]:
    """Render ``report.md`` beside itself as ``report.html``; returns (path, missing figures)."""
    report_md = Path(report_md)
    target = Path(report_html) if report_html is not None else report_md.with_suffix(".html")
    text = report_md.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    title = first.lstrip("# ").strip() or "lrlab report"
    page, missing = render_html(text, report_md.parent, title)
    write_atomic(target, page)
    return target, missing


__all__ = ["render_html", "write_html_report"]
