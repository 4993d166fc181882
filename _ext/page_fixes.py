"""Two fixes to the built pages that Jupyter Book 1 has no option for.

- It registers sphinx-thebe's (and sphinx-togglebutton's) inline
  configuration scripts twice, so every page declares `const THEBE_JS_URL`
  twice, which the browser reports as a SyntaxError: drop the repeats.
- Its launch buttons open the chapter's source, `book/NAME.md`; Colab
  cannot open MyST markdown, so point Binder and Colab at the paired
  `notebooks/NAME.ipynb`.
"""
import re
from pathlib import Path

LAUNCH = re.compile(r"(urlpath=tree/|/blob/[^/\"]+/)(?:\./)?book/([\w-]+)\.md")


def _fix_pages(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        seen, kept, changed = set(), [], False
        for line in page.read_text(encoding="utf-8").splitlines(keepends=True):
            text = line.strip()
            if text.startswith("<script>") and text.endswith("</script>"):
                if text in seen:
                    changed = True
                    continue
                seen.add(text)
            kept.append(line)
        text = "".join(kept)
        text, launches = LAUNCH.subn(r"\1notebooks/\2.ipynb", text)
        if changed or launches:
            page.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _fix_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
