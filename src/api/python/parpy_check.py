"""``parpy check``: the modules that a script imports, and whether each one
loads in parpy's workers, found without running the script.

The launcher runs this source as the module ``_parpy_check`` of the main
interpreter of ``parpy check`` and calls :func:`main` (src/check/mod.rs).

1. Scan. The script's imports, read with ``ast`` (never run), and those of
   each local module that it imports, recursively. Local: a source file
   found in the script's folder (``sys.path[0]``, the current folder for
   ``-m``) or in a ``PYTHONPATH`` folder. ``import a.b``, ``from a import
   b`` (``a.b`` when b is a submodule), relative imports in local packages,
   ``importlib.import_module("a")`` and ``__import__("a")`` with a literal
   name; imports in a function or a class count, those under ``if
   TYPE_CHECKING:`` do not. An import in the body of a ``try`` that catches
   ImportError is optional: a missing optional module is no failure.
2. Probe. Every other module (standard library and installed ones) is
   imported in a fresh own-GIL sub-interpreter made as parpy's workers are
   made: a 1-worker pool per module (``parpy._probe_import``, an ``spmd``
   rank), in which parpy's own watch of extension modules that refuse the
   interpreter (``parpy._watch_refusals``) sees refusals that a package
   catches (PyYAML without ``yaml._yaml``). The pools run in a child
   process, ``parpy check --probe`` (:func:`probe_child`): a module whose
   import crashes or hangs ends that child, not the check. It is reported,
   and a new child goes on with the modules left.
3. Report: a table on stdout, one line per module (the standard library's
   modules that run in workers on one line), then one line of advice per
   module that does not run in workers as it does under python; or JSON.

Exit codes: 0 when every module runs in workers, 1 when one refuses, runs as
pure Python there, is not installed (unless optional), fails to import,
hangs or crashes, 2 when the check cannot run (no such script, a script that
does not compile, a failed probe process).
"""

import ast
import sys

# What a module's probe found, most serious first (the table's order too).
REFUSES, PURE, CRASHED, TIMEOUT, FAILS, MISSING, RUNS, LOCAL = (
    "refuses", "pure-python", "crashed", "timeout", "error", "missing", "runs", "local")
_ORDER = (REFUSES, PURE, CRASHED, TIMEOUT, FAILS, MISSING, RUNS, LOCAL)
_LABEL = {
    REFUSES: "refuses", PURE: "pure Python", CRASHED: "crashed", TIMEOUT: "timed out",
    FAILS: "import fails", MISSING: "not installed", RUNS: "runs in workers",
    LOCAL: "local source",
}


class CheckError(Exception):
    """The check cannot run: said on stderr, exit code 2."""


def main(argv):
    """``argv``: mode (``script``, ``module`` or ``probe``), target, output
    format (``table`` or ``json``), probe timeout in seconds."""
    mode, target, fmt, timeout = argv
    if mode == "probe":
        return probe_child()
    try:
        program = _Program(mode, target)
        uses, notes = _Scanner(program).run()
        results = _probe_all([u for u in uses if u.kind != "local"], float(timeout))
    except CheckError as e:
        print(f"parpy: check: {e}", file=sys.stderr)
        return 2
    verdicts = sorted((_verdict(u, results.get(u.name)) for u in uses), key=_Verdict.order)
    code = 1 if any(v.counts for v in verdicts) else 0
    advice = _advice(verdicts)
    if fmt == "json":
        _print_json(program, verdicts, notes, advice, code)
    else:
        _print_table(program, verdicts, notes, advice)
    return code


# ---------------------------------------------------------------------------
# What python would run
# ---------------------------------------------------------------------------

class _Program:
    """The script or module, and ``sys.path`` as python would set it up for
    it (``sys.path[0]``: the script's folder, or the current one for ``-m``)."""

    def __init__(self, mode, target):
        import os
        self.mode, self.target = mode, target
        self.entries = []   # (path, module name, is a package, is the program) to scan first
        if mode == "script":
            self.path = os.path.abspath(target)
            first = os.path.dirname(os.path.realpath(self.path))
            self.entries.append((self.path, "__main__", False, True))
        else:
            first = os.getcwd()
        # `parpy -c`, which runs this, put "" (the current folder) first.
        if not sys.flags.safe_path and sys.path and sys.path[0] == "":
            sys.path[0] = first
        roots = [sys.path[0]] if not sys.flags.safe_path and sys.path else []
        if not sys.flags.ignore_environment:
            roots += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.roots = {os.path.realpath(r) for r in roots}

    def display(self):
        return self.target if self.mode == "script" else f"-m {self.target}"


# ---------------------------------------------------------------------------
# Scan
# ---------------------------------------------------------------------------

class _Use:
    """A module that the program imports, and where."""

    def __init__(self, name, kind, file=None):
        self.name, self.kind, self.file = name, kind, file
        self.where = []       # (path, line, optional, in a function)
        self.fromlist = set()  # names of `from name import ...`
        self.broken = None    # local: why it could not be scanned

    @property
    def optional(self):
        return all(w[2] for w in self.where)

    @property
    def lazy(self):
        return all(w[3] for w in self.where)


class _Scanner:
    def __init__(self, program):
        self.program = program
        self.uses = {}
        self.todo = list(program.entries)
        self.scanned = set()
        self.notes = []

    def run(self):
        p = self.program
        if p.mode == "module":
            self.add(p.target, (None, 0, False, False), (), entry=True)
        while self.todo:
            self.scan(*self.todo.pop(0))
        return list(self.uses.values()), self.notes

    def scan(self, path, modname, is_pkg, entry):
        """Scans one source file; ``entry``: the program's own (a script, or
        the module of ``-m``), which must compile for the check to run."""
        import os
        key = os.path.realpath(path)
        if key in self.scanned:
            return
        self.scanned.add(key)
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError as e:
            if entry:
                raise CheckError(f"cannot read {path}: {e.strerror or e}") from None
            self._broken(modname, f"cannot be read: {e.strerror or e}")
            return
        try:
            tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError) as e:
            import traceback
            text = "".join(traceback.format_exception_only(e)).rstrip()
            if entry:
                raise CheckError(f"cannot check {_show(path)}: it does not compile\n{text}") from None
            line = f", line {e.lineno}" if getattr(e, "lineno", None) else ""
            msg = getattr(e, "msg", None) or str(e)
            self._broken(modname, f"does not compile: {type(e).__name__}{line}: {msg}")
            return
        package = modname if is_pkg else modname.rpartition(".")[0]
        _Visitor(self, path, package).visit(tree)

    def _broken(self, modname, why):
        use = self.uses.get(modname)
        if use is not None:
            use.broken = why

    def use(self, name, kind, where, file=None):
        use = self.uses.get(name)
        if use is None:
            use = self.uses[name] = _Use(name, kind, file)
        use.where.append(where)
        return use

    def add(self, name, where, fromlist, entry=False):
        """One import statement: ``import name`` or ``from name import *fromlist``."""
        if name.partition(".")[0] == "parpy":
            return  # this launcher's own module, at home in every interpreter
        kind, spec = self.classify(name)
        if kind == "local":
            self.add_local(name, where, fromlist, entry)
            return
        subs = [f"{name}.{a}" for a in fromlist] if spec is not None and spec.submodule_search_locations else []
        found = [s for s in subs if self.find(s) is not None]
        if found and len(found) == len(fromlist):
            # `from a import b, c` of submodules only: their probes import a too.
            for s in found:
                self.use(s, kind, where)
            return
        use = self.use(name, kind, where)
        use.fromlist.update(a for a in fromlist if f"{name}.{a}" not in found)
        for s in found:
            self.use(s, kind, where)

    def add_local(self, name, where, fromlist, entry):
        """A local module: it and each package above it (which python imports
        first) are scanned, and so are the submodules that ``fromlist`` names."""
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            spec = self.find(sub)
            if spec is None:
                self.use(sub, "third-party", where)  # not there: its probe says so
                return
            is_pkg = spec.submodule_search_locations is not None
            origin = spec.origin if spec.has_location else None
            if origin is not None and not origin.endswith(".py"):
                self.use(sub, "third-party", where)  # an extension module next to the script
                return
            self.use(sub, "local", where, origin)
            if origin is not None:
                self.todo.append((origin, sub, is_pkg, entry and sub == name))
                if entry and sub == name and is_pkg:
                    # `-m pkg` imports pkg, then runs pkg.__main__.
                    main = self.find(f"{sub}.__main__")
                    if main is not None and main.has_location:
                        self.todo.append((main.origin, f"{sub}.__main__", False, True))
        if spec.submodule_search_locations is not None:
            for a in fromlist:
                if self.find(f"{name}.{a}") is not None:
                    self.add_local(f"{name}.{a}", where, (), False)

    def classify(self, name):
        """``(kind, spec of the top-level module)``: kind is ``local``,
        ``stdlib`` or ``third-party`` (installed, or not found)."""
        top = name.partition(".")[0]
        if top in sys.builtin_module_names:
            return "stdlib", None
        spec = self.find(top)
        if spec is not None and self.is_local(spec):
            return "local", spec
        if top in sys.stdlib_module_names:
            return "stdlib", spec
        return "third-party", spec

    def is_local(self, spec):
        import os
        if spec.submodule_search_locations is not None:
            dirs = [os.path.dirname(p) for p in spec.submodule_search_locations]
        elif spec.has_location and spec.origin:
            dirs = [os.path.dirname(spec.origin)]
        else:
            return False
        return any(os.path.realpath(d) in self.program.roots for d in dirs)

    @staticmethod
    def find(name):
        """The spec of module ``name`` on ``sys.path``, found without
        importing anything (``PathFinder`` looks at files only)."""
        from importlib.machinery import PathFinder
        parts = name.split(".")
        path = None
        spec = None
        for i in range(len(parts)):
            try:
                spec = PathFinder.find_spec(".".join(parts[:i + 1]), path)
            except (ImportError, ValueError, OSError):
                return None
            if spec is None:
                return None
            if i < len(parts) - 1:
                if spec.submodule_search_locations is None:
                    return None
                path = list(spec.submodule_search_locations)
        return spec


def _resolve_relative(module, level, package):
    """The absolute name of ``from .{level}module import ...`` in ``package``."""
    if not package:
        return None
    bits = package.rsplit(".", level - 1)
    if len(bits) < level:
        return None
    return f"{bits[0]}.{module}" if module else bits[0]


def _catches_import_error(t):
    if t is None:
        return True
    if isinstance(t, ast.Tuple):
        return any(_catches_import_error(e) for e in t.elts)
    name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
    return name in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException")


def _is_type_checking(test):
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


class _Visitor(ast.NodeVisitor):
    """Finds the imports of one file (see the module's docstring)."""

    def __init__(self, scanner, path, package):
        self.s, self.path, self.package = scanner, path, package
        self.guarded = 0  # in the body of a `try` that catches ImportError
        self.in_def = 0

    def add(self, name, node, fromlist=()):
        where = (self.path, node.lineno, self.guarded > 0, self.in_def > 0)
        self.s.add(name, where, fromlist)

    def visit_Import(self, node):
        for alias in node.names:
            self.add(alias.name, node)

    def visit_ImportFrom(self, node):
        names = [a.name for a in node.names if a.name != "*"]
        if node.level:
            base = _resolve_relative(node.module, node.level, self.package)
            if base is None:
                where = "beyond its top-level package" if self.package else "with no parent package"
                self.s.notes.append(f"{_show(self.path)}:{node.lineno}: a relative import {where} "
                                    "(python raises ImportError there); not followed")
                return
        else:
            base = node.module
        self.add(base, node, names)

    def visit_Try(self, node):
        catches = any(_catches_import_error(h.type) for h in node.handlers)
        self.guarded += catches
        for n in node.body:
            self.visit(n)
        self.guarded -= catches
        for n in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(n)

    visit_TryStar = visit_Try

    def visit_If(self, node):
        if _is_type_checking(node.test):
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    def visit_FunctionDef(self, node):
        for d in node.decorator_list:
            self.visit(d)
        self.visit(node.args)
        self.in_def += 1
        for n in node.body:
            self.visit(n)
        self.in_def -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self.visit(node.args)
        self.in_def += 1
        self.visit(node.body)
        self.in_def -= 1

    def visit_Call(self, node):
        f = node.func
        dynamic = ((isinstance(f, ast.Name) and f.id in ("__import__", "import_module"))
                   or (isinstance(f, ast.Attribute) and f.attr == "import_module"))
        arg = node.args[0] if node.args else None
        if (dynamic and isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                and arg.value and not arg.value.startswith(".")):
            self.add(arg.value, node)
        self.generic_visit(node)


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------

def _probe_all(uses, timeout):
    """``{module: probe result}``: see :func:`probe_child` and
    ``parpy._probe_import``; ``{"timeout": s}`` or ``{"crashed": code,
    "stderr": text}`` for a probe that ended its child."""
    import os
    import threading
    todo = [[u.name, sorted(u.fromlist)] for u in sorted(uses, key=lambda u: u.name)]
    results, errors = {}, []
    # A child per 4 modules, up to one per CPU (4 at most): each probe
    # spends most of its ~50 ms making and ending a sub-interpreter.
    n = max(1, min(4, len(os.sched_getaffinity(0)), (len(todo) + 3) // 4))

    def probe(part):
        try:
            while part:
                part = part[_probe_some(part, timeout, results):]
        except Exception as e:  # raised again below, in the main thread
            errors.append(e)

    threads = [threading.Thread(target=probe, args=(todo[i::n],), daemon=True) for i in range(1, n)]
    for t in threads:
        t.start()
    probe(todo[::n])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _probe_some(todo, timeout, results):
    """Probes ``todo`` in one child, in order, until one crashes or hangs;
    returns how many were settled (a hang included, a crash only when it was
    the child's first probe)."""
    import json
    import subprocess
    import tempfile
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "check", "--probe"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err)
        clean = False
        try:
            try:
                child.stdin.write(json.dumps({"path": sys.path, "modules": todo}).encode())
                child.stdin.close()
            except OSError:
                pass
            lines = _Lines(child.stdout.fileno())
            if lines.next(timeout) != b"ready":
                raise CheckError("the probe process (parpy check --probe) did not start:\n"
                                 + _tail(err, child))
            for i, (name, _) in enumerate(todo):
                # Each module's lines: its result, "ended" once its worker's
                # interpreter ended, and the main interpreter's error if one follows.
                stage, result, more = "import", None, True
                while more:
                    line = lines.next(timeout)
                    if line is None or line is _TIMEOUT:
                        if line is _TIMEOUT:
                            child.kill()
                        code = child.wait()
                        if line is None and i > 0:
                            # A crash may come of what an earlier probe left
                            # (3.12.1 corrupts its heap): this module goes
                            # first in a fresh child, where a crash is its own.
                            return i
                        bad = {"timeout": timeout} if line is _TIMEOUT else {
                            "crashed": code, "stderr": _tail(err, child)}
                        results[name] = dict(bad, stage=stage, after=result)
                        return i + 1
                    kind, payload = json.loads(line)
                    if kind == "result":
                        stage, result = "end", payload
                    elif kind == "ended":
                        stage, more = "main", payload
                    else:
                        result["main_error"], more = payload, False
                results[name] = result
            clean = True
            return len(todo)
        finally:
            # With every answer in, how the child ends does not matter (on
            # 3.12.1 it may abort at exit); else it is stopped.
            if child.poll() is None:
                try:
                    child.wait(timeout=10 if clean else 0)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            child.stdout.close()


_TIMEOUT = object()


class _Lines:
    """Lines from a pipe, each awaited at most a number of seconds."""

    def __init__(self, fd):
        self.fd, self.buf = fd, b""

    def next(self, timeout):
        """A line without its newline, None at end of file, or ``_TIMEOUT``."""
        import os
        import select
        import time
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return _TIMEOUT
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line


def _tail(err, child):
    err.flush()
    err.seek(0)
    text = err.read().decode("utf-8", "replace").strip()
    lines = text.splitlines()[-6:]
    if child.returncode is not None and child.returncode < 0:
        lines.append(f"(ended by {_signal_name(-child.returncode)})")
    return "\n".join(lines)


def _signal_name(n):
    import signal
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def probe_child():
    """``parpy check --probe``: reads ``{"path": sys.path, "modules": [[name,
    fromlist], ...]}`` on stdin, then imports each module in a fresh 1-worker
    pool. It writes ``ready``, then for each module JSON lines: ``["result",
    what parpy._probe_import says]``; ``["ended", bool]`` once the pool's
    interpreter ended (which can crash or hang too), true when there follows
    ``["main", error or None]``: the import in this main interpreter, for a
    module whose import failed in the worker for another reason than a
    refusal or a missing module."""
    import json
    import os
    import parpy
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # what the probed imports print goes to stderr, not among the results
    request = json.load(sys.stdin)
    sys.path[:] = request["path"]
    print("ready", file=out, flush=True)
    def say(kind, payload):
        print(json.dumps([kind, payload]), file=out, flush=True)

    for name, fromlist in request["modules"]:
        pool = parpy.Executor(max_workers=1)
        try:
            [result] = pool.spmd(parpy._probe_import, name, fromlist)
        except Exception as e:
            result = {"error": f"parpy: {type(e).__name__}: {e}", "missing": None,
                      "refused": [], "fatal": None, "absent": []}
        say("result", result)
        pool.shutdown()
        compare = bool(result["error"] and not result["refused"] and not result["missing"])
        say("ended", compare)
        if compare:
            say("main", _import_here(name))
    return 0


def _import_here(name):
    """The error of importing ``name`` in this (main) interpreter, or None:
    does a module that fails in a sub-interpreter import under python?"""
    import importlib
    try:
        importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return f"{type(e).__name__}: {e}"
    return None


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

class _Verdict:
    def __init__(self, use, status, detail="", refused=None, error=None):
        self.use, self.status, self.detail = use, status, detail
        self.refused = refused  # the extension module that refused
        self.error = error
        self.all_refused = [refused] if refused else []
        self.stage = "import"    # TIMEOUT, CRASHED: the import, or the interpreter's end
        self.missing = None      # FAILS: the module that it needs and is not installed
        self.everywhere = False  # FAILS: its import fails under python too

    @property
    def counts(self):
        """Whether it makes the exit code 1."""
        if self.status == MISSING:
            return not self.use.optional
        return self.status not in (RUNS, LOCAL)

    def order(self):
        return (_ORDER.index(self.status), self.use.name)


def _verdict(use, r):
    if use.kind == "local":
        if use.broken:
            return _Verdict(use, FAILS, f"{_show(use.file)} {use.broken}; its imports are not known")
        return _Verdict(use, LOCAL, f"{_show(use.file)}, scanned" if use.file else "namespace package")
    if r is None:
        return _Verdict(use, FAILS, "not probed")
    stage = r.get("stage")
    if stage == "main":
        # It failed in the worker, and then crashed or hung under python too.
        r = dict(r["after"], main_error="crashed" if "crashed" in r else "did not end")
    elif "timeout" in r:
        v = _Verdict(use, TIMEOUT, f"its import took over {r['timeout']:g} s in a sub-interpreter (--timeout)"
                     if stage == "import" else "its import ended, but its sub-interpreter did not end "
                     f"within {r['timeout']:g} s (a thread that it started?)")
        v.stage = stage
        return v
    elif "crashed" in r:
        code = r["crashed"]
        how = f"by {_signal_name(-code)}" if code < 0 else f"with exit status {code}"
        last = r["stderr"].splitlines()[-1:] if r["stderr"] else []
        v = _Verdict(use, CRASHED, f"its import in a sub-interpreter ended the process {how}"
                     if stage == "import" else f"its import ended, but ending its sub-interpreter "
                     f"ended the process {how}", error="\n".join(last) or None)
        v.stage = stage
        return v
    refused, error = r["refused"], r["error"]
    if error is None:
        if refused:
            # Its own accelerator first (simplejson._speedups), then those of
            # what it imports (_decimal, on 3.12).
            root = use.name.partition(".")[0]
            refused = sorted(refused, key=lambda m: m.partition(".")[0] != root)
            gone = f" (no {', '.join(r['absent'])} there)" if r["absent"] else ""
            which = "which refuses" if len(refused) == 1 else "which refuse"
            v = _Verdict(use, PURE, f"without {_and(refused)}, {which} sub-interpreters{gone}",
                         refused=refused[0])
            v.all_refused = refused
            return v
        if r["absent"]:
            return _Verdict(use, FAILS, f"cannot import name {r['absent'][0]!r}", error=None)
        return _Verdict(use, RUNS)
    if refused:
        culprit = r["fatal"] or refused[-1]
        return _Verdict(use, REFUSES, f"{culprit} refuses sub-interpreters", refused=culprit, error=error)
    missing = r["missing"]
    if _missing_itself(use.name, missing):
        return _Verdict(use, MISSING)
    if missing:
        v = _Verdict(use, FAILS, f"needs {missing}, which is not installed", error=error)
        v.missing = missing
        return v
    first = next((ln for ln in error.splitlines() if ln.strip()), error)
    if len(first) > 100:
        first = first[:97] + "..."
    v = _Verdict(use, FAILS, error=error)
    v.everywhere = r.get("main_error") is not None
    v.detail = f"{first} ({'under python too' if v.everywhere else 'imports under python'})"
    return v


def _and(names):
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _missing_itself(name, missing):
    """Whether ``ModuleNotFoundError(name=missing)`` says that module ``name`` is not there."""
    return bool(missing) and (name == missing or name.startswith(missing + "."))


def _advice(verdicts):
    """One line per module that does not run in workers as under python
    (one per package when several of its modules fail alike)."""
    import os
    import parpy
    mode = parpy._fallback_mode()
    where = {"process": f"{parpy._default_workers()} worker processes",
             "main": "the main interpreter"}.get(mode)
    fallback = (f"tasks that use it run in {where} instead (--fallback={mode})" if where
                else "tasks that use it raise ImportError (--fallback=error)")
    seen = set()
    lines = []
    for v in verdicts:
        key = (v.use.name.partition(".")[0], v.status)
        if not v.counts or key in seen:
            continue
        seen.add(key)
        name = v.use.name
        if v.use.kind == "local":
            text = f"fix {_show(v.use.file)} so that python can import it and its imports can be checked"
        elif v.status == REFUSES:
            why = "it cannot" if v.refused == name else f"{v.refused} cannot"
            text = (f"{why} load in a sub-interpreter, so {fallback}; to keep those tasks in "
                    f"workers, use {name} in the main interpreter only and pass tasks plain values")
        elif v.status == PURE and v.refused.partition(".")[0] == key[0]:
            text = (f"workers load it without {v.refused}, as pure Python (slower, and without what "
                    f"only {v.refused} provides), so {fallback}")
        elif v.status == PURE:
            text = (f"workers load it with {_and(v.all_refused)} missing, so what it uses of "
                    f"{'that' if len(v.all_refused) == 1 else 'those'} runs as pure Python there (slower)")
        elif v.status == MISSING or v.missing:
            venv = sys.prefix != sys.base_prefix or os.environ.get("VIRTUAL_ENV")
            missing = v.missing or name
            text = (f"{'it needs ' + missing + ', which is ' if v.missing else ''}"
                    f"not installed for this Python ({sys.prefix}): install it there, e.g. `parpy -m "
                    f"pip install {missing.partition('.')[0]}` (its package may have another name)"
                    + ("" if venv else ", or run with the virtualenv that has it (VIRTUAL_ENV)"))
        elif v.status == TIMEOUT and v.stage == "end":
            text = ("a sub-interpreter that imported it does not end, and parpy waits for its "
                    "workers to end when the script does")
        elif v.status == TIMEOUT:
            text = "its import did not end in time: a longer --timeout tells a slow import from a hang"
        elif v.status == CRASHED:
            when = "importing it" if v.stage == "import" else "ending a sub-interpreter that imported it"
            text = (f"{when} crashed the process: parpy's workers share one process, so keep "
                    f"{name} out of tasks")
        elif v.everywhere:
            text = "it fails to import under python too: fix it or its installation"
        else:
            text = ("it imports under python but fails in a sub-interpreter, and only refusals "
                    f"fall back: tasks that use it fail in workers, so keep {name} out of tasks")
        lines.append(f"{name}: {text}")
    return lines


def _show(path):
    """A path as the user would type it: relative to the current folder
    when below it."""
    import os
    if not path or path.startswith("<"):
        return path or ""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _where(use):
    path, line, _, _ = use.where[0]
    text = _show(path) + (f":{line}" if line else "") if path else "command line"
    flags = [f for f, on in (("optional", use.optional), ("in a function", use.lazy)) if on]
    return f"{text} ({', '.join(flags)})" if flags else text


def _header(program):
    import platform
    return f"parpy check {program.display()}: Python {platform.python_version()}, {sys.prefix}"


def _print_table(program, verdicts, notes, advice):
    rows = [("module", "status", "imported at", "detail")]
    stdlib_ok = []
    for v in verdicts:
        if v.use.kind == "stdlib" and v.status == RUNS:
            stdlib_ok.append(v.use.name)
            continue
        rows.append((v.use.name, _LABEL[v.status], _where(v.use), v.detail))
    if stdlib_ok:
        rows.append(("stdlib", _LABEL[RUNS], "", ", ".join(stdlib_ok)))
    print(_header(program))
    if len(rows) == 1:
        print(f"{program.display()} imports no modules")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            cells = [c.ljust(w) for c, w in zip(r, widths)] + [r[3]]
            print("  ".join(cells).rstrip())
    for n in notes:
        print(f"note: {n}")
    if advice:
        print()
        for a in advice:
            print(f"advice: {a}")
    bad = sum(v.counts for v in verdicts)
    if not verdicts:
        return
    print()
    print(f"result: {bad} of {len(verdicts)} modules do not run in workers as under python" if bad
          else f"result: all {len(verdicts)} modules run in workers")


def _print_json(program, verdicts, notes, advice, code):
    import json
    import platform
    modules = []
    for v in verdicts:
        u = v.use
        modules.append({
            "module": u.name, "kind": u.kind, "status": v.status, "detail": v.detail,
            "refused": v.refused, "all_refused": v.all_refused, "error": v.error, "optional": u.optional, "in_function": u.lazy,
            "file": u.file,
            "imported_at": [{"file": p, "line": ln, "optional": o, "in_function": f}
                            for p, ln, o, f in u.where],
        })
    print(json.dumps({
        "target": program.target, "mode": program.mode, "python": platform.python_version(),
        "prefix": sys.prefix, "modules": modules, "notes": notes, "advice": advice,
        "exit_code": code,
    }, indent=2))
