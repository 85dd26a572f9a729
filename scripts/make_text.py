#!/usr/bin/env python3
"""Regenerates data/text/{eval,calib}.txt from text CPython ships.

eval.txt:  sentences of the Python Language Reference as CPython ships it
           for pydoc (`pydoc_data/topics.py`).
calib.txt: sentences of the docstrings of CPython's standard library
           modules (tests, idlelib and lib2to3 left out).

The two sources are different documents, and no sentence is in both files:
encode calibrates on calib.txt, eval reports on eval.txt. Both are under the
PSF License 2.0 (see data/text/README.md). The committed files were made with
CPython 3.11.7; another CPython version gives other sentences, which is why
the output is committed rather than made at run time.
"""
import ast
import os
import random
import re
import sys
import sysconfig

import pydoc_data.topics

EVAL_N = 600
CALIB_N = 1000
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
NOT_PROSE = re.compile(r"[{}\[\]<>=_*`|\\#@$%^~]|\.\.\.|>>>|\(\)")


def sentences(paragraph, indent):
    """Prose sentences of one paragraph; code blocks (indented) are skipped."""
    lines = paragraph.split("\n")
    if any(line.startswith(indent) for line in lines):
        return
    for s in SPLIT.split(" ".join(line.strip() for line in lines)):
        s = s.strip()
        if not 8 <= len(s.split()) <= 40:
            continue
        if not s[0].isupper() or s[-1] not in ".!?" or NOT_PROSE.search(s):
            continue
        if sum(c.isalpha() or c == " " for c in s) / len(s) < 0.93:
            continue
        yield s


def reference_sentences():
    out = set()
    for key in sorted(pydoc_data.topics.topics):
        for para in re.split(r"\n\s*\n", pydoc_data.topics.topics[key]):
            out.update(sentences(para, "   "))
    return out


def docstring_sentences():
    root = sysconfig.get_paths()["stdlib"]
    skip = {"test", "tests", "idlelib", "site-packages", "lib2to3"}
    out = set()
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in skip)
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            try:
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    tree = ast.parse(fh.read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                if isinstance(node, kinds) and (doc := ast.get_docstring(node)):
                    for para in re.split(r"\n\s*\n", doc):
                        out.update(sentences(para, "    "))
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "data/text"
    ref = reference_sentences()
    doc = docstring_sentences() - ref
    rng = random.Random(20261130)
    eval_set = rng.sample(sorted(ref), min(EVAL_N, len(ref)))
    calib_set = rng.sample(sorted(doc), min(CALIB_N, len(doc)))
    assert not set(eval_set) & set(calib_set)
    for name, rows in (("eval.txt", eval_set), ("calib.txt", calib_set)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            fh.write("\n".join(rows) + "\n")
        print(f"{name}: {len(rows)} sentences")


if __name__ == "__main__":
    main()
