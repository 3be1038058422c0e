"""The runner behind ``python -m vagram_bench.run``, one module per concern, in the order a run uses them:

* :mod:`vagram_bench.runner.config` — the run's options and the command line -> :class:`RunConfig`;
* :mod:`vagram_bench.runner.rundir` — the run directory: refuse a conflicting one, start afresh or
  resume from the checkpoint (agent, env RNGs, global RNGs, the runner's counters);
* :mod:`vagram_bench.runner.loop` — the environment loop: act, observe, update, log, evaluate,
  checkpoint;
* :mod:`vagram_bench.runner.summary` — ``summary.json``, which marks a run complete.

The shared ``key=value`` pre-pass is :mod:`vagram_bench.cli`; every run file is read and written
through :mod:`vagram_bench.records`. ``docs/runner.md`` describes the behaviour.
"""
