"""The tuner: sweeps, comparisons, confirmations and studies over the trial engine (``docs/design.md``)."""

from tuner.aliases import install as _install_aliases

_install_aliases()
