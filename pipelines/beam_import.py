"""Start the pipeline commands without the packages they never use.

`import apache_beam` also imports pandas (for Beam's DataFrame batch
converters, `apache_beam.typehints`), bson and pymongo (MongoDB I/O) and
the BigQuery and Pub/Sub clients (`apache_beam.io`), each inside
`try … except ImportError`, and carries on without them. pyarrow, too,
imports pandas on its first conversion of Python objects (`pa.array(list)`,
a Python number given to a compute function), only to recognise pandas
objects, and tries again on every conversion while pandas cannot be
imported. hexsieve's pipelines hand neither library a pandas object.

On this 2-core host those imports were 0.3–0.4 s of every `hexsieve batch`
start-up (pandas alone 0.2–0.25 s), serial work before the first input is
read, paid again by a local Dask cluster's fork server on the other core.

* `install()` puts a finder in front of the import system that, when
  `apache_beam` is first imported, hides OPTIONAL for the length of that
  one import, so Beam takes its own no-such-package path; afterwards they
  import normally. If Beam's import fails with them hidden (a future Beam
  needing one), it is redone with everything present.
* `install(for_good=True)` also hides FOR_GOOD for the rest of the process:
  only for processes that run nothing but hexsieve's pipelines (the
  `hexsieve batch|run|stream` command, the workers of a local cluster), never
  for a library caller or a shared Dask worker. A hidden package fails to
  import with a message that names this module.

Hidden means what "not installed" means to the importer: the finder raises
ModuleNotFoundError (a `None` in sys.modules is not the same thing to
pyarrow's Cython code, which then got `None` as the module).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

# Beam imports these only to offer integrations hexsieve does not use.
OPTIONAL = ("pandas", "bson", "pymongo", "apache_beam.io.gcp.bigquery")
# What pyarrow and Beam would import later in a run, for the same reason.
FOR_GOOD = ("pandas",)


class _Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, names, why: str):
        self.names = tuple(n for n in names if n not in sys.modules)
        self._why = why

    def find_spec(self, name, path, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {name!r} ({self._why}, see pipelines.beam_import)",
                                      name=name)
        return None


class _LeanBeamLoader(importlib.abc.Loader):
    """Runs the real loader of `apache_beam` with OPTIONAL hidden."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        hidden = _Hidden(OPTIONAL, "hidden while Beam imports")
        sys.meta_path.insert(0, hidden)
        try:
            try:
                self._loader.exec_module(module)
            except ImportError:
                sys.meta_path.remove(hidden)
                for name in [m for m in sys.modules if m.startswith("apache_beam.")]:
                    del sys.modules[name]
                self._loader.exec_module(module)
        finally:
            if hidden in sys.meta_path:
                sys.meta_path.remove(hidden)
            module.__loader__ = module.__spec__.loader = self._loader


class _LeanBeamFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "apache_beam":
            return None
        sys.meta_path.remove(self)  # one import of Beam per process
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _LeanBeamLoader(spec.loader)
        return spec


def install(for_good: bool = False) -> None:
    """The first `import apache_beam` of this process is lean from now on
    (nothing to do once Beam is imported); with `for_good`, FOR_GOOD stays
    hidden for the life of the process."""
    if for_good and not any(isinstance(f, _Hidden) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hidden(FOR_GOOD, "hexsieve's pipeline processes run without it"))
    if "apache_beam" not in sys.modules and not any(isinstance(f, _LeanBeamFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _LeanBeamFinder())
