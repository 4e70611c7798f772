#!/usr/bin/env python3
"""Runs clang's thread-safety analysis (-Wthread-safety) over every translation unit that can
see an annotated mutex, using the compile commands of a (GCC) build tree.

GCC has no such analysis, so the project's normal build cannot catch a GUARDED_BY member read
without its lock; this check parses those files again with clang (-fsyntax-only, so nothing is
compiled or linked) and fails on any thread-safety diagnostic. It first proves that the analysis
is switched on: tests/thread_safety/unguarded_access.cc, which reads a guarded member without
the lock, must be rejected.

Usage: thread_safety_check.py --build BUILD_DIR [--clang clang++] [--jobs N] [FILE...]
Exit status: 0 clean, 1 a diagnostic (printed), 77 clang++ missing (the test is then skipped).
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
MUTEX_HEADER = "common/mutex.h"
NEGATIVE_CONTROL = REPO / "tests" / "thread_safety" / "unguarded_access.cc"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# Flags of the GCC command line that clang must not see: warning choices (clang's differ; only the
# analysis matters here), the output file, and GCC-only options.
DROPPED_PREFIXES = ("-W", "-o", "-fdiagnostics-color", "-fno-fat-lto", "-flto")


def includes_mutex(path, seen):
    """True when `path` includes common/mutex.h, directly or through project headers."""
    if path in seen:
        return False
    seen.add(path)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    for name in INCLUDE.findall(text):
        if name == MUTEX_HEADER:
            return True
        header = REPO / name
        if header.is_file() and includes_mutex(header, seen):
            return True
    return False


def clang_command(entry, clang):
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    # Skip a launcher (ccache) and the compiler itself.
    while args and not args[0].startswith("-") and (os.path.basename(args[0]) in ("ccache", "sccache")):
        args = args[1:]
    out, skip_next = [clang], False
    for a in args[1:]:
        if skip_next:
            skip_next = False
            continue
        if a == "-o":
            skip_next = True
            continue
        if a == "-c" or a.startswith(DROPPED_PREFIXES):
            continue
        out.append(a)
    out += ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety", "-Wno-unknown-warning-option"]
    return out


def run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", required=True, type=pathlib.Path)
    parser.add_argument("--clang", default="clang++")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("files", nargs="*", help="only these sources (default: every one that sees the mutex)")
    opts = parser.parse_args()

    clang = shutil.which(opts.clang)
    if clang is None:
        print(f"SKIP: {opts.clang} not found; install clang (scripts/setup.sh does) to run the "
              "thread-safety analysis")
        return 77
    db_path = opts.build / "compile_commands.json"
    if not db_path.is_file():
        print(f"error: {db_path} missing; configure the build with CMAKE_EXPORT_COMPILE_COMMANDS")
        return 1
    entries = [e for e in json.loads(db_path.read_text())
               if e["file"].endswith(".cc") and pathlib.Path(e["file"]).is_relative_to(REPO)]
    wanted = {str((REPO / f).resolve()) for f in opts.files}
    if wanted:
        chosen = [e for e in entries if str(pathlib.Path(e["file"]).resolve()) in wanted]
    else:
        chosen = [e for e in entries if includes_mutex(pathlib.Path(e["file"]), set())]
    # One command per source file (a file compiled for two targets is analysed once).
    by_file = {}
    for e in chosen:
        by_file.setdefault(e["file"], e)
    if not by_file:
        print("error: no translation unit includes " + MUTEX_HEADER)
        return 1

    # The negative control: compiled like common/metrics.cc, it must fail with the analysis' message.
    template = next((e for e in entries if e["file"].endswith("common/metrics.cc")), None)
    if template is None:
        print("error: common/metrics.cc is not in the build; cannot run the negative control")
        return 1
    control = [str(NEGATIVE_CONTROL) if a == template["file"] else a
               for a in clang_command(template, clang)]
    code, text = run(control, template["directory"])
    if code == 0 or "requires holding mutex" not in text:
        print("error: the negative control compiled without a thread-safety error; the analysis is "
              "not running:\n" + " ".join(control) + "\n" + text)
        return 1

    failures = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futures = {pool.submit(run, clang_command(e, clang), e["directory"]): f for f, e in by_file.items()}
        for fut in concurrent.futures.as_completed(futures):
            code, text = fut.result()
            rel = os.path.relpath(futures[fut], REPO)
            if code != 0:
                failures += 1
                print(f"FAIL {rel}\n{text}")
            else:
                print(f"ok   {rel}")
    print(f"thread-safety analysis: {len(by_file) - failures} of {len(by_file)} translation units clean")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
