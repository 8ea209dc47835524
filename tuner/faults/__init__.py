"""Surviving faults: a sweep's Tune state kept restorable (``recovery``), files written whole and a full disk
reported in one line (``storage``), Ctrl-C and SIGTERM inside a Tune run (``interrupts``)."""
