"""vagram-bench environments (placeholder until the env suite lands)."""
