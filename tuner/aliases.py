"""Where the modules that saved sweeps name live now.

Ray Tune pickles a sweep's state (``tuner.pkl``, the searcher's state, the experiment's callbacks) with
the import path of each class and function in it, and unpickles it on ``resume``, ``compare`` and
``confirm``. Sweeps saved before the package layout of 2026-12-05 name modules that have since moved
(``tuner.searcher.AxSearcher``, ``tuner.sweep.ProgressPrinter``, ``tuner.records.trial_dirname``, ...).
:data:`MOVED` maps each old module to the one that holds those names today; :func:`install` puts a finder
on ``sys.meta_path`` that answers an old name with the new module on first import, so nothing is imported
before a saved sweep asks for it. ``tests/tuner/test_aliases.py`` unpickles every name the committed
evidence state holds. Add a line here whenever a module Tune state can name moves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

#: old module path -> module that holds its names now.
MOVED: dict[str, str] = {
    "tuner.ax_searcher": "tuner.search.ax",
    "tuner.searcher": "tuner.search.registry",
    "tuner.searcher_base": "tuner.search.base",
    "tuner.compare": "tuner.store.compare_plan",  # plans and run keys; the runner is tuner.run.compare
    "tuner.confirm": "tuner.store.confirm_plan",
    "tuner.sweep": "tuner.run.sweep",
    "tuner.study": "tuner.run.study",  # StudyEta, the study callback
    "tuner.pools": "tuner.run.pools",
    "tuner.trackers": "tuner.run.trackers",
    "tuner.records": "tuner.store.records",
    "tuner.spec": "tuner.store.spec",
    "tuner.recovery": "tuner.faults.recovery",
    "tuner.storage": "tuner.faults.storage",
    "tuner.interrupts": "tuner.faults.interrupts",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finder and loader of the old paths: the module is the new one, under a second name."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """A placeholder module (the default); :meth:`exec_module` replaces it."""

    def exec_module(self, module: ModuleType) -> None:
        """Import the new module and put it in ``sys.modules`` under the old name too: the import system
        then returns it for the old name, and the placeholder is dropped (the new module keeps its own
        ``__name__`` and ``__spec__``)."""
        sys.modules[module.__name__] = importlib.import_module(MOVED[module.__name__])


def install() -> None:
    """Resolve the old paths from now on (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
