#include "build/python_tools.h"

namespace slipway::build_internal {

// Kept as Python because it must see exactly what the venv's interpreter sees
// (importlib.metadata over the venv and the system site packages) and reuse pip's own
// requirement grammar (packaging).
const char* PythonToolsScript() {
  return R"PY(# Slipway build helper: run by the builder with the release's .venv/bin/python.
import importlib.metadata as metadata
import os
import re
import shlex
import subprocess
import sys

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.utils import canonicalize_name
    except ImportError:
        Requirement = None  # every requirement goes to pip unchecked


def say(line):
    print(line, flush=True)


def pip_install(args):
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
           "--no-input", *args]
    say("$ pip install " + " ".join(shlex.quote(a) for a in args))
    return subprocess.call(cmd)


def installed():
    found = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def satisfies(req, dists, depth=0):
    """(True, dist) when an installed dist satisfies req (dist None: marker excludes us)."""
    if req.url:
        return False, None
    if req.marker is not None and not req.marker.evaluate():
        return True, None
    dist = dists.get(canonicalize_name(req.name))
    if dist is None or not req.specifier.contains(dist.version, prereleases=True):
        return False, dist
    if req.extras:
        if depth > 3:
            return False, dist
        for text in dist.requires or []:
            dep = Requirement(text)
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                continue  # a base dependency, not one an extra adds
            if not any(dep.marker.evaluate({"extra": e}) for e in req.extras):
                continue
            dep.marker = None
            ok, _ = satisfies(dep, dists, depth + 1)
            if not ok:
                return False, dist
    return True, dist


def check(spec, dists):
    if Requirement is None:
        return False, None
    try:
        return satisfies(Requirement(spec), dists)
    except Exception:
        return False, None


def report_satisfied(spec, dist):
    if dist is None:
        say(f"Ignoring {spec}: markers don't match your environment")
    else:
        say(f"Requirement already satisfied: {spec} in {dist.locate_file('')} ({dist.version})")


COMMENT = re.compile(r"(^|\s+)#.*$")
OPTIONS = re.compile(r"\s+(?=--?[A-Za-z])")
INCLUDE = re.compile(r"^(?:(-r|-c)\s*|(--requirement|--constraint)(?:\s*=\s*|\s+))(\S+)$")


def logical_lines(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines, pending = [], ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        lines.append(pending + raw)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def filter_requirements(path, dists, out, seen):
    real = os.path.realpath(path)
    if real in seen:
        return
    seen.add(real)
    base = os.path.dirname(os.path.abspath(path))
    for line in logical_lines(path):
        line = COMMENT.sub("", line).strip()
        if not line:
            continue
        include = INCLUDE.match(line)
        if include:
            flag = include.group(1) or include.group(2)
            target = include.group(3)
            if "://" not in target:
                target = os.path.join(base, target)
                if flag in ("-r", "--requirement") and os.path.isfile(target):
                    filter_requirements(target, dists, out, seen)
                    continue
            out.append(f"{flag} {target}")
            continue
        if line.startswith("-"):
            out.append(line)  # -e, --index-url, ...: pip's business
            continue
        spec = OPTIONS.split(line, maxsplit=1)[0]
        ok, dist = check(spec, dists)
        if ok:
            report_satisfied(spec, dist)
        else:
            out.append(line)


def install_requirements(path):
    out = []
    filter_requirements(path, installed(), out, set())
    wanted = [l for l in out if not l.startswith("-") or l.startswith(("-e", "--editable"))]
    if not wanted:
        say("All requirements are already satisfied; nothing to download.")
        return 0
    pending = os.path.join(sys.prefix, "slipway-requirements.txt")
    with open(pending, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    try:
        return pip_install(["-r", pending])
    finally:
        os.remove(pending)


def read_pyproject():
    import tomllib
    try:
        with open("pyproject.toml", "rb") as f:
            return tomllib.load(f), None
    except (OSError, tomllib.TOMLDecodeError) as e:
        return None, f"pyproject.toml: {e}"


def is_packaged(data):
    return data.get("build-system") is not None or os.path.exists("setup.py")


def install_project(deps=True, project=True):
    data, error = read_pyproject()
    if error:
        say(error)
        return 1
    project_table = data.get("project") or {}
    build = data.get("build-system")
    packaged = is_packaged(data)
    if "dependencies" in project_table.get("dynamic", []):
        return pip_install(["--no-build-isolation", "."])
    if deps:
        dists = installed()
        pending = []
        specs = list(project_table.get("dependencies", []))
        if packaged and build:
            specs += build.get("requires", [])  # needed in the venv: no build isolation
        for spec in specs:
            ok, dist = check(spec, dists)
            if ok:
                report_satisfied(spec, dist)
            else:
                pending.append(spec)
        if pending:
            rc = pip_install(pending)
            if rc != 0:
                return rc
        else:
            say("All dependencies are already satisfied; nothing to download.")
    if not project:
        return 0
    if not packaged:
        say("pyproject.toml has no [build-system]: its dependencies are installed, "
            "the project itself runs from the app directory")
        return 0
    return pip_install(["--no-build-isolation", "--no-deps", "."])


def file_digest(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


FIND_LINKS = re.compile(r"^(?:-f\s*|--find-links(?:\s*=\s*|\s+))(\S+)$")
LOCAL_PATH = re.compile(r"^(\.|/|~|file:)")


def requirements_inputs(path, files, seen):
    """Digests of path and the local files it includes; the reason it cannot be cached."""
    real = os.path.realpath(path)
    if real in seen:
        return None
    seen.add(real)
    files[os.path.relpath(real)] = file_digest(path)
    base = os.path.dirname(os.path.abspath(path))
    for line in logical_lines(path):
        line = COMMENT.sub("", line).strip()
        if not line:
            continue
        include = INCLUDE.match(line)
        if include:
            target = include.group(3)
            if "://" in target:
                return f"{path} includes {target} from the network"
            target = os.path.join(base, target)
            if not os.path.isfile(target):
                return f"{path} includes {include.group(3)}, which is missing"
            reason = requirements_inputs(target, files, seen)
            if reason:
                return reason
            continue
        if line.startswith(("-e", "--editable")):
            return f"{path} installs an editable project ({line})"
        if line.startswith("-"):
            links = FIND_LINKS.match(line)
            target = links.group(1) if links else ""
            if target.startswith("file:"):
                target = re.sub(r"^file:(//)?", "", target)
            elif "file:" in line:
                return f"{path} installs from a local index ({line})"
            if target and "://" not in target:
                # Local archives pip may pick from: their bytes are inputs too.
                where = os.path.join(base, target)
                names = sorted(os.listdir(where)) if os.path.isdir(where) else [""]
                for name in names:
                    found = os.path.join(where, name) if name else where
                    if os.path.isfile(found):
                        files[os.path.relpath(found)] = file_digest(found)
            continue
        spec = OPTIONS.split(line, maxsplit=1)[0]
        if LOCAL_PATH.match(spec) or (os.sep in spec and os.path.exists(os.path.join(base, spec))):
            return f"{path} installs the local path {spec}"
    return None


def fingerprint():
    """One JSON line: what the dependency install depends on, or why it cannot be cached."""
    import json
    import platform
    import site
    out = {
        "python": sys.version,
        "implementation": sys.implementation.cache_tag,
        "platform": sys.platform,
        "machine": platform.machine(),
        # A package added, upgraded or removed in the system site packages renames an
        # entry there, which the directory's mtime shows.
        "site": [[p, os.stat(p).st_mtime_ns] for p in site.getsitepackages()
                 if os.path.isdir(p)],
    }
    reason = None
    if os.path.isfile("requirements.txt"):
        out["source"] = "requirements.txt"
        files = {}
        reason = requirements_inputs("requirements.txt", files, set())
        out["files"] = files
    else:
        data, error = read_pyproject()
        if error:
            reason = error
        else:
            project_table = data.get("project") or {}
            build = data.get("build-system") or {}
            out["source"] = "pyproject.toml"
            out["packaged"] = is_packaged(data)
            out["dependencies"] = project_table.get("dependencies", [])
            out["requires-python"] = project_table.get("requires-python")
            out["build-requires"] = build.get("requires", []) if out["packaged"] else []
            out["locks"] = {name: file_digest(name) for name in ("poetry.lock", "uv.lock")
                            if os.path.isfile(name)}
            if "dependencies" in project_table.get("dynamic", []):
                reason = "pyproject.toml declares its dependencies dynamic"
    out["cacheable"] = reason is None
    if reason:
        out["reason"] = reason
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


def link_deps(venv):
    """Makes the dependencies installed in another venv (same interpreter) visible to this one."""
    import sysconfig
    own = sysconfig.get_path("purelib")
    lib = os.path.join(venv, os.path.relpath(own, sys.prefix))
    if not os.path.isdir(lib):
        say(f"{lib}: no such directory; the dependency cache entry is incomplete")
        return 1
    # An "import" line runs at startup: addsitedir also reads the other venv's .pth files.
    with open(os.path.join(own, "_slipway_dependencies.pth"), "w", encoding="utf-8") as f:
        f.write(f"import site; site.addsitedir({lib!r})\n")
    say(f"dependencies from {lib}")
    return 0


SCRIPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
ENTRY = re.compile(r"\s*(?P<module>[\w.]+)\s*(?::\s*(?P<attr>[\w.]+)\s*)?(?:\[.*\])?\s*$")


def launcher(python, module, attr):
    # What pip (distlib) writes, including its /bin/sh trampoline for long shebangs.
    if len(python) + 3 > 127 or " " in python:
        shebang = f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n"
    else:
        shebang = f"#!{python}\n"
    return (shebang +
            "# -*- coding: utf-8 -*-\n"
            "import re\n"
            "import sys\n"
            f"from {module} import {attr.split('.')[0]}\n"
            "if __name__ == '__main__':\n"
            "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
            f"    sys.exit({attr}())\n")


def console_scripts():
    bindir = os.path.join(sys.prefix, "bin")
    python = os.path.join(bindir, "python")
    seen = set()
    made = 0
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
            points = [p for p in dist.entry_points if p.group == "console_scripts"]
        except Exception:
            continue
        for point in points:
            if point.name in seen or not SCRIPT_NAME.fullmatch(point.name):
                continue
            seen.add(point.name)  # the first distribution on sys.path wins, as for imports
            target = os.path.join(bindir, point.name)
            if os.path.lexists(target):
                continue
            entry = ENTRY.match(point.value)
            if not entry or not entry.group("attr"):
                say(f"skipped {point.name}: entry point {point.value!r} of {name} names no callable")
                continue
            tmp = target + ".slipway-tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(launcher(python, entry.group("module"), entry.group("attr")))
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
            say(f"{point.name} -> {point.value} ({name} {dist.version})")
            made += 1
    say(f"made {made} console script(s) runnable in {bindir}")
    return 0


def main(argv):
    if len(argv) == 2 and argv[0] == "install-requirements":
        return install_requirements(argv[1])
    if argv == ["install-project"]:
        return install_project()
    if argv == ["install-project-dependencies"]:
        return install_project(project=False)
    if argv == ["install-project-only"]:
        return install_project(deps=False)
    if argv == ["console-scripts"]:
        return console_scripts()
    if argv == ["fingerprint"]:
        return fingerprint()
    if len(argv) == 2 and argv[0] == "link-dependencies":
        return link_deps(argv[1])
    say("usage: python_tools.py install-requirements FILE | install-project | "
        "install-project-dependencies | install-project-only | console-scripts | fingerprint | "
        "link-dependencies VENV")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
)PY";
}

}  // namespace slipway::build_internal
