"""The shipped protocols (``*.toml``), and the agent settings a published protocol version ran with
that the agents' own defaults have since changed.

A protocol's content hash covers its file, not the agents' defaults, so a default changed after a
protocol's results were published would change what ``protocol=<name>`` runs under the same version
and hash. :data:`PINNED_AGENT_SETTINGS` keeps such a version reproducible: its entries are applied as
that version's ``[[agent_overrides]]`` are (the runner makes them the agent's defaults there and refuses
explicit conflicting values), for the exact (name, version, content hash) only, so a new version of
the protocol runs the current defaults. See docs/protocols.md "Pinned agent settings".
"""

#: ``{(name, version, content_hash): [entry, ...]}`` with entries shaped as ``[[agent_overrides]]``
#: (``agents``, ``tasks``, ``values``, ``reason``); values may be ``None`` (TOML has no null).
PINNED_AGENT_SETTINGS: dict[tuple[str, int, str], list[dict]] = {
    ("cpu", 1, "d8328f597e0b38c71218611534a611a8e5cac6a1891ec51437d41a3cb0374896"): [
        {
            "agents": ["mbpo_mse", "mbpo_mle", "mbpo_itervaml", "mbpo_vagram"],
            "tasks": ["InvertedDoublePendulumDistract-0-v0", "InvertedDoublePendulumDistract-20-v0",
                      "InvertedDoublePendulumCapacity-2x16-v0"],
            "values": {
                "model_wd": 5e-5,
                "model_data_likelihood": (0.0, 1.0, 0.95, 0.95),
                "sac_init_alpha": 0.3,
                "sac_learnable_alpha": False,
                "sac_target_entropy": None,
            },
            "reason": (
                "results/cpu (version 1) ran the InvertedDoublePendulum defaults of its time: model weight "
                "decay 5e-5, a constant 0.95 model-data probability and a fixed temperature 0.3. The family's "
                "defaults are now mbrl-lib v0.2.0's (weight decay 1e-5, model data only, temperature learned "
                "towards entropy -1 from 1.0; docs/mbpo.md); this keeps version 1 reproducible."
            ),
        },
    ],
}
