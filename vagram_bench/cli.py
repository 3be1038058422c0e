"""``key=value`` command lines for tyro: the one pre-pass shared by ``run``, ``sweep`` and ``leaderboard``.

tyro parses ``--key value`` / ``--key=value`` but not the Hydra-style ``key=value`` our documented
commands use (``python -m vagram_bench.run agent=sac seed=3``). This pre-pass rewrites a command line
into tyro's form before ``tyro.cli`` sees it, so both spellings work, and can be mixed, everywhere:

* ``key=value`` and ``a.b=value`` (nested fields) -> ``--key=value``, ``--a.b=value``;
* a boolean field: ``flag=true|1|yes|on`` -> ``--flag``, ``flag=false|0|no|off`` -> ``--no-flag``
  (tyro's own flag pair, so ``--flag`` / ``--no-flag`` work too); any other value is refused;
* a sequence field: ``key=v1,v2`` or ``key=[v1,v2]`` -> ``--key v1 v2``;
* tokens starting with ``-``, tokens without ``=`` (positional arguments) and everything after
  ``--`` pass through unchanged.

Which fields are booleans and sequences is read from the config dataclass's type hints
(:func:`option_kinds`), so a caller never lists them by hand.

Examples:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     agents: tuple[str, ...] = ()
    ...     dry_run: bool = False
    ...     out: str = "runs"
    >>> kv_to_tyro(["runs", "agents=a,b", "dry_run=false", "out=x"], Cfg)
    ['runs', '--agents', 'a', 'b', '--no-dry-run', '--out=x']
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import threading
import types
import typing
from typing import Any, Iterable

__all__ = [
    "UsageError",
    "error_status",
    "normalize_argv",
    "canonical",
    "pop_option",
    "peek_option",
    "field_types",
    "option_kinds",
    "int_options",
    "tyro_error_line",
    "to_tyro_form",
    "kv_to_tyro",
    "parse_config",
    "plain_text",
    "help_registry",
]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


def error_status(exc: Exception) -> int:
    """Print the one line ``error: <exc>`` on stderr and return the command's exit status: 2 for bad
    input (a ``ValueError``: :class:`UsageError`, a policy file that is not one; or an error whose
    ``usage`` is true, e.g. a ``RunError`` of a conflicting run directory), 1 for a run that failed
    (a ``RunError``, an unreadable checkpoint)."""
    print(f"error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, ValueError) or getattr(exc, "usage", False) else 1


def normalize_argv(argv: Iterable[str]) -> list[str]:
    """Rewrite ``key=value`` tokens into ``--key=value``; everything else passes through.

    Examples:
        >>> normalize_argv(["agent=sac", "agent.batch_size=512", "--seed", "3", "list", "a b=c"])
        ['--agent=sac', '--agent.batch_size=512', '--seed', '3', 'list', 'a b=c']
    """
    out: list[str] = []
    after_double_dash = False
    for token in argv:
        if after_double_dash or token.startswith("-") or "=" not in token:
            after_double_dash = after_double_dash or token == "--"
            out.append(token)
        elif _KEY.match(token.split("=", 1)[0]):
            out.append(f"--{token}")
        else:
            out.append(token)
    return out


def canonical(option: str) -> str:
    """``--agent.batch-size`` -> ``agent.batch_size``."""
    return option.lstrip("-").replace("-", "_")


def pop_option(tokens: list[str], name: str) -> tuple[list[str], str | None]:
    """Remove ``--name value`` / ``--name=value`` from ``tokens``; return the rest and the value."""
    rest, value, i = [], None, 0
    while i < len(tokens):
        tok = tokens[i]
        head = tok.split("=", 1)[0]
        if head.startswith("--") and canonical(head) == name:
            if "=" in tok:
                value = tok.split("=", 1)[1]
            elif i + 1 < len(tokens):
                value = tokens[i + 1]
                i += 1
            else:
                raise UsageError(f"--{name} needs a value")
            i += 1
            continue
        rest.append(tok)
        i += 1
    return rest, value


def peek_option(tokens: list[str], name: str) -> str | None:
    """The value of ``--name`` in ``tokens`` (``None`` if absent), leaving ``tokens`` as they are."""
    return pop_option(list(tokens), name)[1]


def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of the settable fields of a dataclass (string annotations resolved;
    an ``init=False`` field is recorded but no setting)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls) if f.init}


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X`` (any other type unchanged)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_sequence(tp: Any) -> bool:
    tp = _without_none(tp)
    return tp in (tuple, list) or typing.get_origin(tp) in (tuple, list)


def option_kinds(cls: type, prefix: str = "") -> tuple[set[str], set[str]]:
    """The boolean and the sequence options of dataclass ``cls`` (nested dataclasses as ``a.b``).

    Examples:
        >>> @dataclasses.dataclass
        ... class Inner:
        ...     learn: bool = True
        >>> # make_dataclass: real types (this module's string annotations would be resolved in its namespace)
        >>> Outer = dataclasses.make_dataclass("Outer", [
        ...     ("seeds", tuple[int, ...] | None, None), ("inner", Inner, dataclasses.field(default_factory=Inner))])
        >>> option_kinds(Outer)
        ({'inner.learn'}, {'seeds'})
    """
    bools: set[str] = set()
    sequences: set[str] = set()
    for name, tp in field_types(cls).items():
        key = prefix + name
        if tp is bool:
            bools.add(key)
        elif _is_sequence(tp):
            sequences.add(key)
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            inner_bools, inner_sequences = option_kinds(tp, prefix=f"{key}.")
            bools |= inner_bools
            sequences |= inner_sequences
    return bools, sequences


def _is_int(tp: Any) -> bool:
    return tp is int


def int_options(cls: type, prefix: str = "") -> set[str]:
    """The options of dataclass ``cls`` that hold integers: ``int`` fields and sequences of ints
    (``tuple[int, ...]``, ``tuple[int, int]``), nested dataclasses as ``a.b``.

    Examples:
        >>> @dataclasses.dataclass
        ... class Cfg:
        ...     steps: int = 1
        ...     seed: tuple[int, ...] = (0,)
        ...     lr: float = 0.1
        ...     sched: tuple[int, float] = (1, 0.5)
        >>> sorted(int_options(Cfg))
        ['seed', 'steps']
    """
    found: set[str] = set()
    for name, tp in field_types(cls).items():
        key, tp = prefix + name, _without_none(tp)
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if _is_int(tp) or (_is_sequence(tp) and args and all(_is_int(a) for a in args)):
            found.add(key)
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            found |= int_options(tp, prefix=f"{key}.")
    return found


def exact_int(text: str) -> str:
    """``text`` as an integer literal when it is an exact integer in another notation (``1e3``,
    ``2.5e4``, ``1000.0``); otherwise unchanged (tyro then names the bad value).

    Examples:
        >>> [exact_int(t) for t in ["1e3", "2.5E4", "1000.0", "1e-3", "1.5", "abc", "7"]]
        ['1000', '25000', '1000', '1e-3', '1.5', 'abc', '7']
    """
    import decimal

    stripped = text.strip()
    if re.fullmatch(r"[+-]?\d+", stripped):
        return text
    try:
        number = decimal.Decimal(stripped)
    except decimal.InvalidOperation:
        return text
    if number.is_finite() and number == number.to_integral_value():
        return str(int(number))
    return text


def _split_sequence(value: str) -> list[str]:
    value = value.strip().removeprefix("[").removesuffix("]").removeprefix("(").removesuffix(")")
    return [v.strip() for v in value.split(",") if v.strip()]


def to_tyro_form(tokens: Iterable[str], bool_options: set[str], sequence_options: set[str],
                 int_opts: set[str] = frozenset()) -> list[str]:
    """Turn ``--flag=<bool>`` into tyro's ``--flag`` / ``--no-flag`` and ``--seq=a,b`` into
    ``--seq a b`` (``tokens`` as :func:`normalize_argv` returns them); the values of ``int_opts``
    that are exact integers in another notation (``steps=1e3``) become integer literals.

    Raises:
        UsageError: a boolean option given a value that is not a boolean.

    Examples:
        >>> to_tyro_form(["--quiet=False", "--agent.learn_alpha=yes", "--agent.sched=[1,2]"],
        ...              {"quiet", "agent.learn_alpha"}, {"agent.sched"})
        ['--no-quiet', '--agent.learn_alpha', '--agent.sched', '1', '2']
    """
    out: list[str] = []
    after_double_dash = False
    int_values = False  # the tokens after `--<int option>` (its values, in the space-separated form)
    for tok in tokens:
        after_double_dash = after_double_dash or tok == "--"
        if after_double_dash or tok.startswith("-"):
            int_values = not after_double_dash and "=" not in tok and canonical(tok) in int_opts
        elif int_values:
            tok = exact_int(tok)
        if not after_double_dash and tok.startswith("--") and "=" in tok:
            head, value = tok.split("=", 1)
            name = canonical(head)
            if name in bool_options:
                v = value.strip().lower()
                if v in _TRUE:
                    out.append(head)
                elif v in _FALSE:
                    parent, _, leaf = name.rpartition(".")
                    out.append(f"--{parent + '.' if parent else ''}no-{leaf.replace('_', '-')}")
                else:
                    raise UsageError(f"{name}: expected a boolean (true/false), got {value!r}")
                continue
            if name in sequence_options:
                out.append(head)
                out.extend(exact_int(v) if name in int_opts else v for v in _split_sequence(value))
                continue
            if name in int_opts:
                tok = f"{head}={exact_int(value)}"
        out.append(tok)
    return out


def kv_to_tyro(argv: Iterable[str], config_cls: type) -> list[str]:
    """The whole pre-pass for a command line parsed into ``config_cls`` with ``tyro.cli``.

    Raises:
        UsageError: a boolean field given a value that is not a boolean.
    """
    bools, sequences = option_kinds(config_cls)
    return to_tyro_form(normalize_argv(argv), bools, sequences, int_options(config_cls))


def parse_config(config_cls: type, argv: Iterable[str], *, prog: str, **tyro_kwargs: Any) -> Any:
    """``argv`` (``key=value`` or tyro form) parsed into ``config_cls`` by ``tyro.cli``, with tyro's boxed
    parse errors turned into one line (:func:`tyro_error_line`): what sweep, leaderboard and publish
    call, so that every command's bad input reads ``error: <one line>`` with exit code 2.

    Raises:
        UsageError: bad input, as one line. ``--help`` still prints and exits 0 (``SystemExit``).
    """
    import contextlib
    import io

    import tyro

    args = kv_to_tyro(argv, config_cls)
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            return tyro.cli(config_cls, prog=prog, args=args, **tyro_kwargs)
    except SystemExit as exc:
        if exc.code in (0, None):  # --help (printed on stdout)
            raise
        raise UsageError(tyro_error_line(messages.getvalue())) from None


#: the characters of the rules and borders of rich's boxes (Unicode and ASCII)
_RULE = " -+=\u2500\u2501\u2550\u256d\u256e\u2570\u256f"


def tyro_error_line(text: str) -> str:
    r"""tyro's boxed parse error (what it prints on stderr before exiting 2) as one line naming the
    option, the value it got and what it expects, e.g. ``--steps expects an integer (INT), got 'abc'``.

    Examples:
        >>> box = (
        ...     "╭─ Value error ───╮\n│ Error parsing --steps: invalid literal for int() with base 10: 'abc' │\n"
        ...     "│ ─────── │\n│ Argument helptext: │\n│     --steps INT │\n│     real env steps (default: 5) │\n╰──╯")
        >>> tyro_error_line(box)
        "--steps expects an integer (INT), got 'abc'"
        >>> tyro_error_line(" Value error\n ---\n  Error parsing --seed: Could not find valid parse for arguments: "
        ...                 "['0', 'x']\n  ---\n  Argument helptext:\n      --seed [INT [INT ...]]\n")
        "--seed expects [INT [INT ...]], got '0 x'"
        >>> tyro_error_line("│ invalid choice 'orthogonl' for argument '--agent.init'. Expected one of ('torch_default', │\n"
        ...                 "│ 'orthogonal'). │")
        "--agent.init: invalid choice 'orthogonl'; did you mean orthogonal? valid choices: torch_default, orthogonal"
    """
    import ast
    import difflib

    sections: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("╭", "╰", "+-")):  # the title bar or the bottom border
            sections.append([])
            continue
        # rich draws the box in Unicode on a terminal and in ASCII otherwise (a pipe, a test)
        line = line[1:] if line[:1] in ("│", "|") else line
        line = (line[:-1] if line[-1:] in ("│", "|") else line).strip()
        if not line.strip(_RULE):  # a rule between the message and the help
            sections.append([])
        elif line:
            sections[-1].append(line)
    sections = [sec for sec in sections if sec]
    if len(sections) > 1 and len(sections[0]) == 1 and ":" not in sections[0][0]:
        sections = sections[1:]  # the title ("Value error") printed above a rule, without a box
    if not sections:
        return "(tyro gave no message)"
    message = " ".join(sections[0])
    usage = ""
    for sec in sections[1:]:
        if sec[0].startswith("Argument helptext") and len(sec) > 1:
            usage = sec[1]
    m = re.search(r"invalid choice '(.*?)' for argument '(.*?)'\. Expected one of (\(.*\))", message)
    if m:
        value, option = m.group(1), m.group(2)
        try:
            choices = [str(c) for c in ast.literal_eval(m.group(3))]
        except (ValueError, SyntaxError):
            choices = [m.group(3)]
        close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"{option}: invalid choice {value!r}; {hint}valid choices: {', '.join(choices)}"
    m = re.search(r"Error parsing (\S+): (.*)", message)
    if m:
        option, reason = m.group(1), m.group(2)
        kinds = {r"invalid literal for int\(\) with base 10: (.*)": "an integer",
                 r"could not convert string to float: (.*)": "a number"}
        metavar = usage.split(" ", 1)[1] if " " in usage else ""
        for pattern, kind in kinds.items():
            got = re.fullmatch(pattern, reason)
            if got:
                return f"{option} expects {kind}{f' ({metavar})' if metavar else ''}, got {got.group(1)}"
        got = re.search(r"arguments:? (\[.*?\])", reason)
        if got and metavar:
            try:
                values = " ".join(ast.literal_eval(got.group(1)))
            except (ValueError, SyntaxError):
                values = got.group(1)
            return f"{option} expects {metavar}, got {values!r}"
        return f"{option}: {reason}{f' ({usage})' if usage else ''}"
    return message


# --------------------------------------------------------------------------------------------------
# --help: field docstrings as plain text

_ROLE = re.compile(r":[\w:.-]+:`(~?)([^`<]*?)\s*(?:<[^>]*>)?`")


def plain_text(text: str | None) -> str | None:
    """A docstring as ``--help`` shows it: reST roles and literals as `x`, the source's line breaks
    joined (paragraphs, separated by a blank line, stay apart).

    Examples:
        >>> plain_text("uses :class:`~vagram_bench.envs.EnvInfo` and\\n    ``num_layers`` (see :func:`model_capacity`).")
        'uses `EnvInfo` and `num_layers` (see `model_capacity`).'
        >>> plain_text(":mod:`the runner <vagram_bench.runner>` runs")
        '`the runner` runs'
    """
    if text is None:
        return None

    def role(m: re.Match) -> str:
        target = m.group(2).strip()
        return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"

    text = _ROLE.sub(role, text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n".join(" ".join(p.split()) for p in paragraphs)


_inside_rule = threading.local()


@functools.cache
def help_registry() -> Any:
    """A tyro ``ConstructorRegistry`` (pass it as ``tyro.cli(..., registry=...)``) whose dataclass
    fields carry :func:`plain_text` help: tyro's own dataclass rule builds the spec, this one only
    rewrites each field's help text."""
    from tyro.constructors import ConstructorRegistry, StructConstructorSpec

    registry = ConstructorRegistry()

    @registry.struct_rule
    def plain_help(info: Any) -> Any:
        if getattr(_inside_rule, "active", False) or not dataclasses.is_dataclass(info.type):
            return None
        _inside_rule.active = True  # let tyro's default rules build the spec
        try:
            spec = ConstructorRegistry.get_struct_spec(info)
        finally:
            _inside_rule.active = False
        if not isinstance(spec, StructConstructorSpec):
            return spec
        fields = tuple(
            dataclasses.replace(f, helptext=plain_text(f.helptext() if callable(f.helptext) else f.helptext))
            for f in spec.fields
        )
        return dataclasses.replace(spec, fields=fields)

    return registry
