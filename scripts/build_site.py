"""Build the course as a static site that works offline: ``python scripts/build_site.py`` -> ``_site/``.

Open ``_site/index.html`` in a browser; nothing is fetched from the network.

What goes in: ``docs/README.md`` (the index page), the chapters, the notation
page, ``THEORY.md``, the worked solutions (``docs/solutions/``), the
assignments (``docs/assignments/``: each starter and its worked solutions as
pages, and the ``.ipynb`` / ``.py`` to download) and the pictures
(``docs/img/``).

How: Markdown by markdown-it-py (CommonMark, tables, heading anchors as
GitHub writes them), code by Pygments, and the maths — ``$...$`` inline,
``$$...$$`` displayed — turned into MathML at build time by latex2mathml, so
the browser typesets it with no script and no font from a CDN. The output
folder mirrors ``docs/`` (``docs/solutions/01-backprop.md`` ->
``_site/solutions/01-backprop.html``), so a relative link from a chapter to a
file of the repository (``../scripts/...``) still resolves from the site
when ``_site/`` sits at the repository's top.

The build refuses (exit status 1, one line per problem, naming the page and
the formula) a formula the converter does not understand, drops (an
environment it does not know) or garbles (malformed MathML), raw TeX or a ``$`` left in the text outside
code, a link to a file or an anchor that does not exist, or an image that is
not there. ``pip install -e ".[site]"``; ``scripts/check_site.py`` then
opens every page in headless Chromium.
"""
from __future__ import annotations

import argparse
import html
import posixpath
import re
import xml.etree.ElementTree as ET
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ASSIGNMENTS = DOCS / "assignments"
MARKER = ".minilplr-site"  # a folder holding this file is ours to replace
sys.path.insert(0, str(ASSIGNMENTS))

import percent  # noqa: E402  (docs/assignments/percent.py, standard library only)

try:
    from latex2mathml.converter import convert as _latex2mathml
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from pygments import highlight as _pyg_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
except ImportError as exc:  # pragma: no cover - the one line a reader without the extra sees
    MISSING = f'{exc.name}: not installed; pip install -e ".[site]"'
else:
    MISSING = None


class BuildError(Exception):
    """A problem with the sources: one line naming the file and what is wrong."""


# --------------------------------------------------------------------------- maths


#: delimiters that latex2mathml reads only as characters after \big, \Big, \bigg, \Bigg (and their l/r/m forms)
_SIZED_DELIMS = {"lVert": "‖", "rVert": "‖", "Vert": "‖", "|": "‖", "lvert": "|", "rvert": "|", "vert": "|",
                 "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉", "langle": "⟨", "rangle": "⟩",
                 "{": "{", "}": "}"}
_SIZED = re.compile(r"(\\[Bb]igg?[lrm]?)\s*\\(lVert|rVert|Vert|lvert|rvert|vert|lfloor|rfloor|lceil|rceil|"
                    r"langle|rangle|\||\{|\})")
_TEXT_NODE = re.compile(r">([^<]*)<")
#: MathML elements and the number of children each must have
_ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "mover": 2, "munder": 2, "munderover": 3, "mroot": 2}


#: Unicode's mathematical alphanumerics: (capital A, small a, digit 0) per variant, and the letters that live elsewhere
_ALPHA = {"bold": (0x1D400, 0x1D41A, 0x1D7CE), "italic": (0x1D434, 0x1D44E, None),
          "bold-italic": (0x1D468, 0x1D482, None), "script": (0x1D49C, 0x1D4B6, None),
          "fraktur": (0x1D504, 0x1D51E, None), "double-struck": (0x1D538, 0x1D552, 0x1D7D8),
          "sans-serif": (0x1D5A0, 0x1D5BA, 0x1D7E2)}
_ALPHA_HOLES = {("italic", "h"): "ℎ", ("script", "B"): "ℬ", ("script", "E"): "ℰ", ("script", "F"): "ℱ",
                ("script", "H"): "ℋ", ("script", "I"): "ℐ", ("script", "L"): "ℒ", ("script", "M"): "ℳ",
                ("script", "R"): "ℛ", ("script", "e"): "ℯ", ("script", "g"): "ℊ", ("script", "o"): "ℴ",
                ("fraktur", "C"): "ℭ", ("fraktur", "H"): "ℌ", ("fraktur", "I"): "ℑ", ("fraktur", "R"): "ℜ",
                ("fraktur", "Z"): "ℨ", ("double-struck", "C"): "ℂ", ("double-struck", "H"): "ℍ",
                ("double-struck", "N"): "ℕ", ("double-struck", "P"): "ℙ", ("double-struck", "Q"): "ℚ",
                ("double-struck", "R"): "ℝ", ("double-struck", "Z"): "ℤ"}
_GREEK = {"bold": (0x1D6A8, 0x1D6C2), "bold-italic": (0x1D71C, 0x1D736), "italic": (0x1D6E2, 0x1D6FC)}
_VARIANT = re.compile(r'<(mi|mn|mo|mtext) mathvariant="([a-z-]+)">([^<]*)</\1>')


def _alpha(ch: str, variant: str) -> str:
    """One character in a mathvariant, as the Unicode character Chromium draws (it ignores mathvariant)."""
    if (variant, ch) in _ALPHA_HOLES:
        return _ALPHA_HOLES[(variant, ch)]
    cap, small, digit = _ALPHA[variant]
    if "A" <= ch <= "Z":
        return chr(cap + ord(ch) - ord("A"))
    if "a" <= ch <= "z":
        return chr(small + ord(ch) - ord("a"))
    if "0" <= ch <= "9" and digit:
        return chr(digit + ord(ch) - ord("0"))
    if variant in _GREEK and ("\u0391" <= ch <= "\u03a9" or "\u03b1" <= ch <= "\u03c9"):
        gcap, gsmall = _GREEK[variant]
        return chr(gcap + ord(ch) - 0x391) if ch <= "\u03a9" else chr(gsmall + ord(ch) - 0x3B1)
    return ch


def _fix_variants(mathml: str) -> str:
    """``<mi mathvariant="double-struck">R</mi>`` -> ``<mi>ℝ</mi>``: MathML Core (Chromium) draws only the character."""
    def one(m):
        tag, variant, text = m.groups()
        if variant not in _ALPHA:
            return m.group(0)  # "normal" is drawn; nothing else is left by latex2mathml
        mapped = "".join(_alpha(c, variant) for c in html.unescape(text))  # auto-italic leaves these alone
        return f"<{tag}>{html.escape(mapped, quote=False)}</{tag}>"
    return _VARIANT.sub(one, mathml)


#: amsmath environments latex2mathml does not know, and the one it does that lays them out the same
#: (``aligned`` inside ``$$`` is ``align*``: right/left column pairs, ``&&`` starting the next pair)
_ENV_ALIASES = {"aligned": "align*"}
#: the environments latex2mathml lays out as a table (any other it drops silently, leaving a bare ``&``)
_ENVIRONMENTS = {"align", "align*", "split", "array", "cases", "smallmatrix"} | {
    m + s for m in ("matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix") for s in ("", "*")}
_BEGIN_END = re.compile(r"\\(begin|end)\s*\{([^}]*)\}")


def _environments(tex: str, name: str) -> str:
    """``\\begin{aligned}`` -> ``\\begin{align*}``; BuildError naming an environment the converter would drop."""
    def one(m):
        env = _ENV_ALIASES.get(m.group(2), m.group(2))
        if env not in _ENVIRONMENTS:
            raise BuildError(f"formula {name}: environment {{{m.group(2)}}} is not supported by the converter "
                             f"(use one of {', '.join(sorted(set(_ENV_ALIASES) | _ENVIRONMENTS))})")
        return f"\\{m.group(1)}{{{env}}}"
    return _BEGIN_END.sub(one, tex)


def tex_to_mathml(tex: str, display: bool) -> str:
    """A LaTeX formula -> a ``<math>`` element; BuildError (one line naming the formula) if it is not rendered."""
    name = "$" + " ".join(tex.split()) + "$"  # on one line, however many the display spans
    src = _SIZED.sub(lambda m: m.group(1) + _SIZED_DELIMS[m.group(2)], tex.strip())
    src = _environments(src, name)
    try:
        out = _latex2mathml(src, display="block" if display else "inline")
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; name the formula
        raise BuildError(f"formula {name}: {type(exc).__name__}: {exc}") from None
    try:
        tree = ET.fromstring(out)
    except ET.ParseError as exc:  # e.g. a bare '&' from a construct the converter skipped
        raise BuildError(f"formula {name}: the converter wrote malformed MathML ({exc}: "
                         f"...{out[max(0, exc.position[1] - 40):exc.position[1] + 20]}...)") from None
    leaked = sorted({m for t in _TEXT_NODE.findall(out) for m in re.findall(r"\\[A-Za-z]+|\\.", html.unescape(t))})
    if leaked:
        raise BuildError(f"formula {name}: not understood: {' '.join(leaked)}")
    for el in tree.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in _ARITY and len(el) != _ARITY[tag]:
            raise BuildError(f"formula {name}: <{tag}> with {len(el)} parts instead of {_ARITY[tag]} "
                             f"(a missing argument?)")
    return _fix_variants(out)


# --------------------------------------------------------------------------- Markdown


def _highlight(code: str, lang: str, _attrs) -> str:
    """Pygments spans for a fenced block (markdown-it wraps them in ``<pre><code>``)."""
    name = {"": "text", "pycon": "pycon"}.get(lang, lang)
    if name == "python" and code.lstrip().startswith(">>>"):
        name = "pycon"  # the chapters' doctests
    try:
        lexer = get_lexer_by_name(name)
    except ClassNotFound:
        lexer = get_lexer_by_name("text")
    return _pyg_highlight(code, lexer, HtmlFormatter(nowrap=True))


#: formulas the converter refused while rendering the current page (collected, reported with the page)
_MATH_ERRORS: list[str] = []


def _math(content: str, opts: dict) -> str:
    try:
        return tex_to_mathml(content, display=opts.get("display_mode", False))
    except BuildError as exc:
        _MATH_ERRORS.append(str(exc))
        return f'<code class="tex-error">{html.escape(content)}</code>'


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "highlight": _highlight, "typographer": False})
    md.enable("table")
    # allow_digits=True: mdit-py-plugins 0.7's "no digit before the opening $" reads src[pos - 1] even at pos 0,
    # i.e. the LAST character of the cell or paragraph, so "| $\Sigma^{(l+1)}$, ... of degree 1 |" stayed raw
    # text. Nothing is lost: the docs have no currency, and tests/test_docs_hygiene.py refuses a stray $.
    md.use(dollarmath_plugin, allow_labels=False, allow_space=True, allow_digits=True, double_inline=False,
           renderer=_math)
    md.use(anchors_plugin, min_level=1, max_level=6)
    return md


@dataclass
class Page:
    """One output page: where it comes from and goes, its title and body, the links it makes."""

    src: Path  # the source file (for messages)
    out: str  # path relative to the site root, e.g. "solutions/01-backprop.html"
    title: str = ""
    body: str = ""
    ids: set = field(default_factory=set)


_HEADING = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)
_ID = re.compile(r'\sid="([^"]+)"')


def _docs_target(href: str, src_dir: Path) -> str | None:
    """A link's target as a site path when it points into docs/ (``.md`` -> ``.html``, folders -> index)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = (src_dir / unquote(parts.path)).resolve()
    try:
        rel = target.relative_to(DOCS.resolve())
    except ValueError:
        return None
    rel_s = rel.as_posix()
    if rel_s == "README.md":
        return "index.html"
    if rel_s.endswith("README.md"):
        return rel_s[: -len("README.md")] + "index.html"
    if target.is_dir() or href.endswith("/"):
        return (rel_s.rstrip("/") + "/index.html").lstrip("/") if rel_s != "." else "index.html"
    if rel_s.endswith(".md"):
        return rel_s[:-3] + ".html"
    if rel.parts[0] == "assignments" and rel.suffix == ".py" and (ASSIGNMENTS / rel.relative_to("assignments")).exists():
        return rel.with_suffix(".html").as_posix()
    return rel_s


def _relative(from_out: str, to_out: str) -> str:
    """A relative URL from one site path to another (``assignments/a.html`` -> ``index.html``: ``../index.html``)."""
    return posixpath.relpath(to_out, posixpath.dirname(from_out) or ".")


def render_markdown(text: str, src: Path, out: str, md=None) -> Page:
    """Markdown -> a Page, links into docs/ rewritten to the site's pages."""
    md = md or _renderer()
    env: dict = {}
    tokens = md.parse(text, env)
    src_dir = src.parent
    for tok in tokens:
        for child in [tok] + list(tok.children or []):
            for attr in ("href", "src"):
                val = child.attrGet(attr) if child.attrs else None
                if not val or val.startswith("#"):
                    continue
                target = _docs_target(val, src_dir)
                if target is not None:
                    frag = urlsplit(val).fragment
                    child.attrSet(attr, _relative(out, target) + (f"#{frag}" if frag else ""))
    _MATH_ERRORS.clear()
    body = md.renderer.render(tokens, md.options, env)
    if _MATH_ERRORS:
        raise BuildError(f"{src.relative_to(ROOT)}: " + f"; {src.relative_to(ROOT)}: ".join(_MATH_ERRORS))
    m = _HEADING.search(body)
    title = re.sub(r"<[^>]+>", "", m.group(1)).strip() if m else src.stem
    return Page(src, out, html.unescape(title), body, set(_ID.findall(body)))


# --------------------------------------------------------------------------- assignments as pages


def _notebook_markdown(cells: list, link_back: str | None) -> str:
    """A notebook's cells as one Markdown document: prose as is, code fenced (TODO cells labelled)."""
    parts = []
    for c in cells:
        if c.kind == "markdown":
            parts.append(c.source)
        else:
            label = f"\n*Your code: cell `TODO {c.todo}`*\n" if c.todo and link_back is None else \
                f"\n*Worked solution of `TODO {c.todo}`*\n" if c.todo else ""
            parts.append(f"{label}\n```python\n{c.source}\n```")
    return "\n\n".join(parts) + "\n"


def assignment_pages(md) -> list[Page]:
    pages = []
    for src in sorted(ASSIGNMENTS.glob("[0-9][0-9]_*.py")) + [ASSIGNMENTS / "interactive_figures.py"]:
        cells = percent.read(src)
        name = src.stem
        downloads = (f"\n\nDownload: [{name}.ipynb]({name}.ipynb) (Jupyter) · [{name}.py]({name}.py) "
                     f"(the same as a plain script)")
        sol = ASSIGNMENTS / "solutions" / f"{name}.py"
        if sol.exists():
            downloads += f" · [worked solutions](solutions/{name}.py)"
        text = _notebook_markdown(cells, None)
        first, _, rest = text.partition("\n")
        pages.append(render_markdown(first + downloads + "\n" + rest, src, f"assignments/{name}.html", md))
        if sol.exists():
            pages.append(render_markdown(_notebook_markdown(percent.read(sol), "solutions"), sol,
                                         f"assignments/solutions/{name}.html", md))
    return pages


# --------------------------------------------------------------------------- the whole site

CSS = """
body { font: 17px/1.55 Georgia, "DejaVu Serif", serif; color: #1d1d1d; margin: 0; }
main { max-width: 50em; margin: 0 auto; padding: 1em 1.5em 4em; }
nav.top { background: #243b53; padding: .5em 1.5em; font-family: sans-serif; font-size: 15px; }
nav.top a { color: #f0f4f8; margin-right: 1.2em; text-decoration: none; }
nav.pager { display: flex; justify-content: space-between; margin-top: 3em; font-family: sans-serif; }
h1, h2, h3, h4 { font-family: sans-serif; line-height: 1.25; }
a { color: #0b5394; }
code, pre { font: 14px/1.45 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: .7em 1em; overflow-x: auto; border-radius: 4px; }
:not(pre) > code { background: #f2f2f2; padding: 0 .2em; border-radius: 3px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; vertical-align: top; }
img { max-width: 100%; height: auto; }
math { font-family: "Latin Modern Math", "STIX Two Math", "Cambria Math", math; font-size: 1.05em; }
math[display="block"] { margin: .8em 0; overflow-x: auto; overflow-y: hidden; }
details { background: #f4f8fb; border-left: 3px solid #7aa7d6; padding: .3em 1em; margin: 1em 0; }
summary { cursor: pointer; font-weight: bold; }
"""


def _template(page: Page, nav: list[tuple[str, str]], prev_next) -> str:
    up = lambda target: _relative(page.out, target)  # noqa: E731
    links = " ".join(f'<a href="{up(t)}">{html.escape(label)}</a>' for label, t in nav)
    pager = ""
    if prev_next:
        prev, nxt = prev_next
        left = f'<a href="{up(prev.out)}">← {html.escape(prev.title)}</a>' if prev else "<span></span>"
        right = f'<a href="{up(nxt.out)}">{html.escape(nxt.title)} →</a>' if nxt else "<span></span>"
        pager = f'<nav class="pager">{left}{right}</nav>'
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(page.title)} · minilplr</title>\n"
            f'<link rel="stylesheet" href="{up("site.css")}">\n</head>\n<body>\n'
            f'<nav class="top">{links}</nav>\n<main>\n{page.body}{pager}\n</main>\n</body>\n</html>\n')


def collect_pages(md=None) -> list[Page]:
    md = md or _renderer()
    pages = [render_markdown((DOCS / "README.md").read_text(encoding="utf-8"), DOCS / "README.md", "index.html", md)]
    for src in sorted(DOCS.glob("*.md")):
        if src.name != "README.md":
            pages.append(render_markdown(src.read_text(encoding="utf-8"), src, src.stem + ".html", md))
    sols = sorted((DOCS / "solutions").glob("*.md"))
    for src in sols:
        pages.append(render_markdown(src.read_text(encoding="utf-8"), src, f"solutions/{src.stem}.html", md))
    index = "# Worked solutions to the chapters' exercises\n\n" + "".join(
        f"* [{p.title}]({Path(p.out).name})\n" for p in pages if p.out.startswith("solutions/"))
    pages.append(render_markdown(index, DOCS / "solutions" / "README.md", "solutions/index.html", md))
    readme = ASSIGNMENTS / "README.md"
    pages.append(render_markdown(readme.read_text(encoding="utf-8"), readme, "assignments/index.html", md))
    done = assignment_pages(md)
    index = "# Worked solutions to the assignments\n\nTry each assignment first.\n\n" + "".join(
        f"* [{p.title}]({Path(p.out).name})\n" for p in done if p.out.startswith("assignments/solutions/"))
    pages.append(render_markdown(index, ASSIGNMENTS / "solutions" / "README.md", "assignments/solutions/index.html",
                                 md))
    return pages + done


_RAW_TEX = re.compile(r"\$|\\[A-Za-z]+")


def _visible_text_outside_code(body: str) -> str:
    """The page's text without code, preformatted blocks and maths: where raw TeX must not be."""
    body = re.sub(r"<(pre|code|math)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def check_pages(pages: list[Page], out: Path) -> list[str]:
    """Every problem of the built site, one line each: raw TeX, broken links and anchors, missing images."""
    problems = []
    by_out = {p.out: p for p in pages}
    for p in pages:
        text = _visible_text_outside_code(p.body)
        for m in _RAW_TEX.finditer(text):
            ctx = text[max(0, m.start() - 30): m.end() + 30].replace("\n", " ")
            problems.append(f"{p.src.relative_to(ROOT)}: raw TeX or '$' left in the text: ...{ctx}...")
        for kind, url in re.findall(r'<(a|img)\b[^>]*?(?:href|src)="([^"]+)"', p.body):
            parts = urlsplit(html.unescape(url))
            if parts.scheme or parts.netloc:
                continue
            if parts.path:
                target = (out / p.out).parent / unquote(parts.path)
                try:
                    site_rel = target.resolve().relative_to(out.resolve()).as_posix()
                except ValueError:  # leaves the site: a file of the repository, left as the source wrote it
                    site_rel, target = None, p.src.parent / unquote(parts.path)
                if not target.exists():
                    problems.append(f"{p.src.relative_to(ROOT)}: {'image' if kind == 'img' else 'link'} "
                                    f"{url} does not exist")
                    continue
            else:
                site_rel = p.out
            if parts.fragment and site_rel in by_out and unquote(parts.fragment) not in by_out[site_rel].ids:
                problems.append(f"{p.src.relative_to(ROOT)}: link {url}: no heading #{parts.fragment} there")
    return problems


def build(out: Path) -> list[str]:
    """Write the site into ``out``; return the problems found (empty: the site is good)."""
    if MISSING:
        raise BuildError(MISSING)
    out = out.resolve()
    if out.exists():
        if not (out / MARKER).exists():
            raise BuildError(f"out: {out} exists and is not a site this script built; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("built by scripts/build_site.py; replaced on every build\n")
    pages = collect_pages()
    (out / "site.css").write_text(CSS + HtmlFormatter(style="friendly").get_style_defs("pre"), encoding="utf-8")
    shutil.copytree(DOCS / "img", out / "img")
    (out / "assignments" / "solutions").mkdir(parents=True)
    for src in sorted(ASSIGNMENTS.glob("*.ipynb")) + sorted(ASSIGNMENTS.glob("*.py")):
        shutil.copy2(src, out / "assignments" / src.name)
    for src in sorted((ASSIGNMENTS / "solutions").glob("*.py")):
        shutil.copy2(src, out / "assignments" / "solutions" / src.name)
    chapters = [p for p in pages if re.match(r"\d\d-", p.out)]
    assignments = [p for p in pages if re.match(r"assignments/\d\d_", p.out)]
    nav = [("Course", "index.html"), ("Notation", "notation.html"), ("Theory", "THEORY.html"),
           ("Solutions", "solutions/index.html"), ("Assignments", "assignments/index.html")]
    for p in pages:
        seq = chapters if p in chapters else assignments if p in assignments else None
        prev_next = None
        if seq:
            i = seq.index(p)
            prev_next = (seq[i - 1] if i else None, seq[i + 1] if i + 1 < len(seq) else None)
        dest = out / p.out
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(_template(p, nav, prev_next), encoding="utf-8")
    return check_pages(pages, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="output folder (default: _site/)")
    args = ap.parse_args(argv)
    try:
        problems = build(args.out)
    except BuildError as exc:
        print(f"build_site: {exc}", file=sys.stderr)
        return 1
    for line in problems:
        print(f"build_site: {line}", file=sys.stderr)
    n = len(list(args.out.rglob("*.html")))
    print(f"{n} pages in {args.out}" + (f"; {len(problems)} problems (above)" if problems else "; open index.html"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
