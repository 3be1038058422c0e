"""Suite-wide set-up.

Several tests send SIGINT (Ctrl-C) to a run or a sweep, in this process or in a child, and check what
the runner does with it. A shell without job control (a script, ``bash -c``, a CI step) starts a
background job (``pytest &``) with SIGINT ignored, and an ignored SIGINT is inherited by every child: the
runner then rightly leaves Ctrl-C alone (``runner/rundir.py``, ``StepInterrupts``) and those tests would fail
for the way pytest was started. Give this process Python's own Ctrl-C handler, as an interactive start has;
the children it starts then get the default disposition back at exec and install the same handler. (The
price: a Ctrl-C in that terminal now reaches such a backgrounded pytest too.)
"""

from __future__ import annotations

import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
