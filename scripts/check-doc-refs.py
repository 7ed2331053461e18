#!/usr/bin/env python3
"""Every file path and every section that a comment or a document cites must exist.

Reads the repository's sources and docs (*.md, *.hpp, *.cpp, *.h, *.cmake, CMakeLists.txt, *.sh,
*.py and .ci/run; never build*/ or .git) and checks two kinds of citation in the documents and in
the code's comments (code itself is checked by compiling and running it):

  paths     a token with a '/' whose first part is a top-level directory of the repository
            (libsession/src/repair.cpp, bench/run.sh, tools/sessionctl/) or whose name ends in a
            known extension (sessionbroker/client.hpp), and a bare file name with a source
            extension (repair.cpp, LAYOUT.md). A path resolves against the repository root or the
            citing file's directory; one without a top-level directory is checked only when a file
            of its name or its directory exists (then it may be an include path, the tail of a
            path: sessionbroker/shm/block.hpp), so install-tree paths (lib/pkgconfig/...) pass; a bare name, any file of that name. Not
            checked: what a .gitignore excludes (build output, bench/results/), placeholders in
            capitals (DIR/table.md), <system/headers.h>, and the names in NOT_OURS.
  sections  a markdown file followed by quoted headings (LAYOUT.md section "Lock protocol",
            see LAYOUT.md "Eviction", LAYOUT.md sections "Header" and "Attach handshake") or by a
            section number (protocol.md §3; inside protocol.md a bare §3 is its own). A quoted name
            matches a '#' heading of that file case-insensitively as a prefix ("Repair" finds
            "Repair summary"); §n matches a heading that starts with "n.".

Prints "file:line: cites X, which does not exist" for each broken citation and exits 1 if any.
Python 3 standard library only.
"""
import fnmatch
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

SCANNED_EXT = (".md", ".hpp", ".cpp", ".h", ".cmake", ".sh", ".py")
SCANNED_NAMES = ("CMakeLists.txt",)
SCANNED_PATHS = (".ci/run",)
C_LIKE_EXT = (".hpp", ".cpp", ".h")
# A token with a '/' is a path when it ends in one of these (or starts at a top-level directory).
PATH_EXT = SCANNED_EXT + (".txt", ".in", ".c", ".cc", ".json", ".png", ".dict", ".service", ".conf")
BARE_EXT = ("cpp", "hpp", "h", "md", "sh", "py", "cmake")

# Bare names cited on purpose that are no file of the repository.
NOT_OURS = {
    "app.cpp": "README.md's pkg-config line: the reader's own program",
    "table.md": "what bench/run.sh writes into its results directory",
}

# Paths: not inside an absolute path, a URL, a variable or a placeholder (/proc/<pid>/stat,
# ${CMAKE_CURRENT_SOURCE_DIR}/support, <prefix>/lib). Trailing dots are sentence ends.
PATH_RE = re.compile(r"(?<![\w$}<>/.~:@-])((?:\.\.?/)*[A-Za-z0-9_][\w.+-]*(?:/[\w.+-]+)+/?)(?![\w<*${])")
BARE_RE = re.compile(r"(?<![\w$}<>/.~:@*-])([A-Za-z_][\w+-]*(?:\.[\w+-]+)*\.(?:%s))(?![\w/.-]*[\w/])" % "|".join(BARE_EXT))
# Sections: a .md file, then optionally a comma and "section(s)", then quoted names joined by commas,
# "and" or "or"; or a .md file and a section number.
MD_FILE = r"((?:\.\.?/)*(?:[\w.-]+/)*[\w.-]+\.md)`?(?:'s)?"
QUOTED_RE = re.compile(MD_FILE + r',?\s+(?:sections?\s+)?((?:"[^"\n]+"(?:\s*(?:,|and|or)\s*(?=")|\s*(?:,\s*)?and\s+(?="))?)+)')
NUMBERED_RE = re.compile(MD_FILE + r",?\s+(?:section\s+)?§(\d+)")
BARE_SECTION_RE = re.compile(r"§(\d+)")
HEADING_RE = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def load_ignores():
    """(directory of the .gitignore, pattern) for each directory entry of every .gitignore."""
    rules = []
    for dirpath, dirnames, filenames in walk():
        if ".gitignore" not in filenames:
            continue
        base = os.path.relpath(dirpath, ROOT)
        base = "" if base == "." else base + "/"
        with open(os.path.join(dirpath, ".gitignore"), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and line.endswith("/"):
                    rules.append((base, line.strip("/"), line.startswith("/")))
    return rules


def walk():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not (dirpath == ROOT and d.startswith("build")))
        yield dirpath, dirnames, sorted(filenames)


def generated(rel, ignores):
    """True when `rel` (a path from the root) lies under a directory a .gitignore excludes."""
    parts = rel.split("/")
    for base, pattern, anchored in ignores:
        if not rel.startswith(base):
            continue
        sub = rel[len(base):].split("/")
        candidates = sub[:1] if anchored else sub[:-1] or sub[:1]
        if any(fnmatch.fnmatch(p, pattern) for p in candidates):
            return True
    return parts[0].startswith("build")


def hash_comment_text(lines):
    """Shell, Python and CMake lines reduced to their '#' comments (line numbers kept)."""
    out = []
    for line in lines:
        quote, kept = None, ""
        for i, c in enumerate(line):
            if quote:
                quote = None if c == quote and line[i - 1] != "\\" else quote
            elif c in "'\"":
                quote = c
            elif c == "#" and (i == 0 or line[i - 1].isspace()):
                kept = line[i + 1:]
                break
        out.append(kept)
    return out


def comment_text(lines):
    """C/C++ lines reduced to their comments (line numbers kept)."""
    out, in_block = [], False
    for line in lines:
        kept, i = [], 0
        while i < len(line):
            if in_block:
                end = line.find("*/", i)
                kept.append(line[i:] if end < 0 else line[i:end])
                if end < 0:
                    break
                in_block, i = False, end + 2
                continue
            # Skip string literals so "//" inside one is not a comment.
            m = re.compile(r'"(?:\\.|[^"\\])*"|//|/\*').search(line, i)
            if not m:
                break
            if m.group() == "//":
                kept.append(line[m.end():])
                break
            if m.group() == "/*":
                in_block, i = True, m.end()
                continue
            i = m.end()
        out.append(" ".join(kept))
    return out


class Tree:
    def __init__(self):
        self.files, self.by_name, self.headings = set(), {}, {}
        self.dirs = set()
        for dirpath, dirnames, filenames in walk():
            rel_dir = os.path.relpath(dirpath, ROOT)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            if rel_dir:
                self.dirs.add(rel_dir.rstrip("/"))
            for name in filenames:
                self.files.add(rel_dir + name)
                self.by_name.setdefault(name, []).append(rel_dir + name)
        self.top = {d for d in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, d))}

    def exists(self, rel):
        rel = os.path.normpath(rel).replace(os.sep, "/")
        return rel in self.files or rel in self.dirs

    def has_dir_tail(self, path):
        return any(d == path or d.endswith("/" + path) for d in self.dirs)

    def resolve(self, token, citing_dir, tail_ok):
        """The path from the root that `token` names, or None."""
        for base in ("", citing_dir):
            rel = os.path.normpath(os.path.join(base, token.rstrip("/"))).replace(os.sep, "/")
            if not rel.startswith("..") and self.exists(rel):
                return rel
        if tail_ok:
            for f in self.files:
                if f.endswith("/" + token):
                    return f
        return None

    def resolve_md(self, token, citing_dir):
        if "/" in token:
            return self.resolve(token, citing_dir, True)
        for rel in (os.path.join(citing_dir, token), token):  # a README.md next to the citer first
            rel = os.path.normpath(rel).replace(os.sep, "/")
            if rel in self.files:
                return rel
        found = self.by_name.get(token, [])
        return found[0] if len(found) == 1 else None

    def headings_of(self, rel):
        if rel not in self.headings:
            hs, fenced = [], False
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("```"):
                        fenced = not fenced
                    m = None if fenced else HEADING_RE.match(line)
                    if m:
                        hs.append(m.group(1).replace("`", "").strip().lower())
            self.headings[rel] = hs
        return self.headings[rel]

    def has_heading(self, rel, name):
        name = name.replace("`", "").strip().lower()
        return any(h.startswith(name) for h in self.headings_of(rel))

    def has_number(self, rel, n):
        return any(re.match(r"%s\.(\s|$)" % n, h) for h in self.headings_of(rel))


def scanned(rel):
    name = os.path.basename(rel)
    return rel in SCANNED_PATHS or name in SCANNED_NAMES or name.endswith(SCANNED_EXT)


def check_line(tree, ignores, rel, lineno, text, report):
    citing_dir = os.path.dirname(rel)
    for m in PATH_RE.finditer(text):
        token = m.group(1).rstrip(".")
        first = token.split("/")[0]
        is_top = first in tree.top
        if re.fullmatch(r"[A-Z][A-Z_]+", first):
            continue  # a placeholder: DIR/table.md
        if not is_top and not token.startswith("."):
            name, parent = os.path.basename(token.rstrip("/")), os.path.dirname(token.rstrip("/"))
            if not name.endswith(PATH_EXT) or (name not in tree.by_name and not tree.has_dir_tail(parent)):
                continue  # not a file of ours: an install-tree path or another project's
        target = os.path.normpath(os.path.join(citing_dir, token)).replace(os.sep, "/") if token.startswith(".") else token
        if generated(target, ignores):
            continue
        if tree.resolve(token, citing_dir, tail_ok=not is_top and not token.startswith(".")) is None:
            report(rel, lineno, token)
    for m in BARE_RE.finditer(text):
        name = m.group(1)
        if name not in tree.by_name and name not in NOT_OURS:
            report(rel, lineno, name)
    for m in QUOTED_RE.finditer(text):
        md = tree.resolve_md(m.group(1), citing_dir)
        if md is None:
            continue  # the file itself is reported as a path above
        for name in re.findall(r'"([^"]+)"', m.group(2)):
            if not tree.has_heading(md, name):
                report(rel, lineno, '%s section "%s"' % (m.group(1), name))
    numbered = set()
    for m in NUMBERED_RE.finditer(text):
        numbered.add(m.start(2) - 1)
        md = tree.resolve_md(m.group(1), citing_dir)
        if md is not None and not tree.has_number(md, m.group(2)):
            report(rel, lineno, "%s §%s" % (m.group(1), m.group(2)))
    if rel.endswith(".md"):  # a bare §n in a document is its own section n
        for m in BARE_SECTION_RE.finditer(text):
            if m.start() not in numbered and not tree.has_number(rel, m.group(1)):
                report(rel, lineno, "§%s of %s" % (m.group(1), rel))


def main():
    tree, ignores = Tree(), load_ignores()
    broken = []

    def report(rel, lineno, what):
        broken.append("%s:%d: cites %s, which does not exist" % (rel, lineno, what))

    for rel in sorted(tree.files):
        if not scanned(rel) or generated(rel, ignores):
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        if rel.endswith(C_LIKE_EXT):
            lines = comment_text(lines)
        elif not rel.endswith(".md"):
            lines = hash_comment_text(lines)
        for lineno, text in enumerate(lines, 1):
            check_line(tree, ignores, rel, lineno, text, report)
    for line in broken:
        print(line)
    if broken:
        print("%d broken citation(s)" % len(broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
