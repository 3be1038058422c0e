"""``key=value`` command lines for tyro (used by :mod:`vagram_bench.sweep` and
:mod:`vagram_bench.leaderboard`).

tyro does not accept Hydra-style ``key=value`` arguments (``shared/spec/ecosystem.md`` §7), but the
documented commands use them (``python -m vagram_bench.sweep protocol=quick agents=a,b``). This
pre-pass rewrites them into tyro's own form before ``tyro.cli`` sees them, so both spellings work:

* ``key=value``        -> ``--key value``
* ``a.b=value``        -> ``--a.b value`` (nested dataclass fields)
* ``key=v1,v2`` or ``key=[v1,v2]`` -> ``--key v1 v2`` for the sequence-valued keys the caller names
* ``flag=true|false``  -> ``--flag True|False`` (configs are parsed with ``FlagConversionOff``)
* anything starting with ``-`` or without ``=`` (positional arguments) is passed through unchanged.
"""

from __future__ import annotations

import re
from typing import Iterable

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")


def kv_to_tyro(argv: Iterable[str], list_keys: Iterable[str] = ()) -> list[str]:
    """Rewrite ``key=value`` tokens of ``argv`` into tyro arguments.

    Args:
        argv: the raw command-line tokens (without the program name).
        list_keys: keys whose value is a comma-separated sequence (``agents=a,b``).

    Examples:
        >>> kv_to_tyro(["runs", "protocol=quick", "agents=a,b", "dry_run=true"], list_keys=["agents"])
        ['runs', '--protocol', 'quick', '--agents', 'a', 'b', '--dry_run', 'True']
    """
    lists = {k.replace("-", "_") for k in list_keys}
    out: list[str] = []
    after_double_dash = False
    for token in argv:
        if after_double_dash or token.startswith("-") or "=" not in token:
            after_double_dash = after_double_dash or token == "--"
            out.append(token)
            continue
        key, value = token.split("=", 1)
        if not _KEY.match(key):
            out.append(token)
            continue
        out.append(f"--{key}")
        if key.replace("-", "_") in lists:
            value = value.strip().removeprefix("[").removesuffix("]")
            out.extend(v.strip() for v in value.split(",") if v.strip())
        elif value.lower() in ("true", "false"):
            out.append(value.capitalize())
        else:
            out.append(value)
    return out
