"""Drop repeated inline <script> lines from the built pages.

Jupyter Book 1 registers sphinx-thebe's (and sphinx-togglebutton's) inline
configuration scripts twice, so every page declares `const THEBE_JS_URL`
twice, which the browser reports as a SyntaxError.
"""
from pathlib import Path


def _dedupe(app, exception):
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
        if changed:
            page.write_text("".join(kept), encoding="utf-8")


def setup(app):
    app.connect("build-finished", _dedupe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
