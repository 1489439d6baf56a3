"""The course as a site (``scripts/build_site.py``), and what a reader sees of it in a real browser.

Static checks (always): every page is built, the maths becomes MathML with no
TeX left over, links, anchors and images resolve, and the checks themselves
catch a planted raw ``$$``, ``\\frac``, an unknown command, an environment the
converter would drop, malformed MathML (each one line naming the page and the
formula), a broken link or image. Browser checks (where Chromium is installed;
CI installs Debian's): every page loads in headless Chromium without console
errors or failed loads, every image loads, every formula is laid out as MathML
with each fraction's numerator above its denominator, and no raw TeX is
visible.
"""
from __future__ import annotations

import importlib.util
import re
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


build_site = _script("build_site")
check_site = _script("check_site")
if build_site.MISSING:
    pytest.skip(f"site tools: {build_site.MISSING}", allow_module_level=True)

CHROMIUM = check_site.find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    problems = build_site.build(out)
    assert problems == [], "the site has problems:\n" + "\n".join(problems)
    return out


def test_every_page_is_built(site):
    docs = ROOT / "docs"
    expected = {"index.html", "notation.html", "THEORY.html", "solutions/index.html", "assignments/index.html",
                "assignments/solutions/index.html"}
    expected |= {f"{p.stem}.html" for p in docs.glob("[0-9][0-9]-*.md")}
    expected |= {f"solutions/{p.stem}.html" for p in docs.glob("solutions/*.md")}
    for p in (docs / "assignments").glob("[0-9][0-9]_*.py"):
        expected |= {f"assignments/{p.stem}.html", f"assignments/solutions/{p.stem}.html",
                     f"assignments/{p.stem}.ipynb"}
    built = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert expected <= built, f"missing: {sorted(expected - built)}"
    assert {p.name for p in (docs / "img").glob("*.png")} <= {p.name for p in (site / "img").iterdir()}


def test_pages_are_offline(site):
    """Nothing is fetched at view time: no script, stylesheet, image or font from another host."""
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text, f"{page.name}: a script"
        for attr in ('src="http', "src='http", 'href="//', "url(http"):
            assert attr not in text, f"{page.name}: loads {attr}... from the network"
        assert '<link rel="stylesheet" href="http' not in text


def test_maths_is_mathml(site):
    ch1 = (site / "01-backprop.html").read_text(encoding="utf-8")
    assert ch1.count('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">') >= 5
    assert "<mfrac>" in ch1 and "$$" not in ch1 and "\\frac" not in ch1
    a1 = (site / "assignments" / "01_dense_backward.html").read_text(encoding="utf-8")
    assert 'display="inline"' in a1 and 'href="01_dense_backward.ipynb"' in a1


# --------------------------------------------------------------------------- the converter and the checks


@pytest.mark.parametrize("tex", [r"\frac{\partial L}{\partial W} = x^\top \delta", r"\sum_i \delta_i",
                                 r"\lVert f - y\rVert^2", r"\mathbb R^{D\times H}", r"\operatorname{tr}(A)",
                                 r"\tfrac12 \le \mu \ge 0", r"\Big\lfloor \frac{H + 2p - k}{s} \Big\rfloor",
                                 r"\bigl\lVert x \bigr\rVert", r"\mathcal T", r"\lambda_{\min}(\Theta)"])
def test_the_contracts_latex_becomes_mathml(tex):
    out = build_site.tex_to_mathml(tex, display=True)
    assert out.startswith("<math") and "\\" not in out and "mathvariant=\"double-struck\"" not in out


def test_double_struck_letters_are_characters():
    """Chromium ignores mathvariant but draws ℝ: the converter's attribute becomes the character."""
    assert "ℝ" in build_site.tex_to_mathml(r"\mathbb R", display=False)
    assert "𝒯" in build_site.tex_to_mathml(r"\mathcal T", display=False)


@pytest.mark.parametrize("tex", [r"\eqref{x}", r"\notacommand x", r"\frac{a}"])
def test_an_unknown_command_is_refused(tex):
    with pytest.raises(build_site.BuildError, match="formula"):
        build_site.tex_to_mathml(tex, display=False)


def test_an_aligned_display_becomes_a_table():
    """``aligned`` (amsmath; THEORY.md's radius derivation) is laid out as ``align*``: latex2mathml drops the
    environment it does not know and leaves bare ``&`` -- malformed XML that broke the whole build."""
    out = build_site.tex_to_mathml("\\begin{aligned}\na &\\le b && \\text{why}\\\\\nc &\\le d && (10)\n\\end{aligned}",
                                   display=True)
    assert out.count("<mtr>") == 2 and out.count("<mtd") == 8 and "<mi>&" not in out


@pytest.mark.parametrize("tex, why", [
    ("\\begin{gathered} a \\\\ b \\end{gathered}", "environment {gathered} is not supported"),
    ("a & b", "the converter wrote malformed MathML"),
])
def test_what_the_converter_would_garble_is_refused(tex, why):
    with pytest.raises(build_site.BuildError, match=re.escape(why)):
        build_site.tex_to_mathml(tex, display=True)


def test_a_bad_display_is_one_line_naming_the_page_and_the_formula():
    with pytest.raises(build_site.BuildError) as err:
        _render("# T\n\n$$\nx\n  &= y\n$$\n", "docs/y.md")
    line = str(err.value)
    assert "\n" not in line and line.startswith("docs/y.md: formula $x &= y$: "), line


def test_a_cell_that_starts_with_maths_and_ends_with_a_digit():
    """THEORY.md's table row "(R2) | $\\Sigma^{(l+1)}$, arc-cosine of degree 1": the maths stayed raw text."""
    page = _render("| a | b |\n|-|-|\n| (R2) | $\\Sigma^{(l+1)}$, arc-cosine of degree 1 |\n\n$x$ is 1\n")
    assert page.body.count('display="inline"') == 2 and "$" not in page.body


def _render(text, name="docs/x.md"):
    return build_site.render_markdown(text, ROOT / name, Path(name).with_suffix(".html").name)


def test_inline_display_and_code():
    page = _render("# T\n\nInline $a_i$ here.\n\n$$\n\\frac{1}{2N}\n$$\n\nCode `$x$` and\n\n```python\n"
                   ">>> x = '$$'\n```\n")
    assert 'display="inline"' in page.body and 'display="block"' in page.body
    assert "<code>$x$</code>" in page.body  # maths is never read inside code
    assert build_site.check_pages([page], ROOT / "docs") == []


def test_a_formula_the_converter_refuses_names_the_file():
    with pytest.raises(build_site.BuildError, match=r"docs/x.md: formula \$\\eqref\{a\}\$"):
        _render("$\\eqref{a}$\n")


@pytest.mark.parametrize("text, problem", [
    ("A stray $ sign.\n", "raw TeX or '$'"),
    ("Unclosed $$ \\frac{a}{b} here\n", "raw TeX or '$'"),
    ("A <span>\\frac{a}{b}</span> in HTML.\n", "raw TeX or '$'"),
    ("[gone](no-such-chapter.md)\n", "link no-such-chapter.html does not exist"),
    ("![gone](img/no-such.png)\n", "image img/no-such.png does not exist"),
    ("[a chapter](01-backprop.md#no-such-heading)\n", "no heading #no-such-heading"),
])
def test_the_static_checks_catch(text, problem, site):
    page = build_site.render_markdown("# T\n\n" + text, ROOT / "docs" / "x.md", "x.html")
    pages = [page] + [build_site.render_markdown((ROOT / "docs" / "01-backprop.md").read_text(encoding="utf-8"),
                                                 ROOT / "docs" / "01-backprop.md", "01-backprop.html")]
    problems = build_site.check_pages(pages, site)
    assert any(problem in p for p in problems), problems


def test_an_existing_folder_that_is_not_a_site_is_kept(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(build_site.BuildError, match="exists and is not a site this script built"):
        build_site.build(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


# --------------------------------------------------------------------------- in a real browser


@needs_chromium
def test_every_page_in_chromium(site):
    reports = check_site.check_site(site, CHROMIUM)
    assert len(reports) == len(list(site.rglob("*.html")))
    bad = [r.line() for r in reports if not r.ok]
    assert not bad, "\n".join(bad)
    by_page = {r.page: r for r in reports}
    assert by_page["01-backprop.html"].n_fractions >= 10, "chapter 1's fractions were not found as MathML"
    assert by_page["03-jacobian-and-ntk.html"].n_images >= 2


BAD_PAGES = {
    "raw.html": "<p>Left as text: $$ \\frac{a}{b} $$</p>",
    "image.html": '<p><img src="missing.png" alt="x"></p>',
    "console.html": "<script>console.error('boom')</script><p>x</p>",
    "throw.html": "<script>throw new Error('uncaught')</script><p>x</p>",
    "hidden_math.html": '<math style="display:none"><mi>x</mi></math>',
    "flat_fraction.html": '<p><mfrac><mi>a</mi><mi>b</mi></mfrac> outside math: not laid out as MathML</p>',
    "good.html": '<p>Fine: <math><mfrac><mi>a</mi><mi>b</mi></mfrac></math></p><details><summary>answer</summary>'
                 '<math display="block"><msup><mi>x</mi><mn>2</mn></msup></math></details>',
}


@needs_chromium
def test_the_browser_checks_catch(tmp_path):
    for name, body in BAD_PAGES.items():
        (tmp_path / name).write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head>'
                                     f"<body>{body}</body></html>", encoding="utf-8")
    reports = {r.page: r for r in check_site.check_site(tmp_path, CHROMIUM)}
    assert reports["raw.html"].raw_tex and not reports["raw.html"].errors
    assert reports["image.html"].broken_images == ["missing.png"]
    assert any("boom" in e for e in reports["console.html"].errors)
    assert any("uncaught" in e for e in reports["throw.html"].errors)
    assert reports["hidden_math.html"].bad_math
    assert reports["flat_fraction.html"].bad_fractions
    good = reports["good.html"]
    assert good.ok and good.n_math == 2 and good.n_fractions == 1, good.line()


@needs_chromium
def test_a_screenshot_of_a_page_with_maths(site, tmp_path):
    png = tmp_path / "shot.png"
    check_site.screenshot(site, "04-pl-from-the-ntk.html", png, CHROMIUM)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1000, 800)
