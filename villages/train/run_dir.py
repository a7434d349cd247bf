"""A training run's folder (``--out``): one live run at a time, and what resuming reads.

* ``lock``: a live run holds an exclusive ``flock`` on ``<out>/.lock``; a second run into
  the folder is refused. The kernel drops the lock when the process dies (even by
  SIGKILL), so a killed run never blocks its own ``--resume``.
* ``saved_args`` / ``check_same_args``: ``--resume`` continues the run as it was started;
  an argument that differs from the run's ``args.json`` is refused, naming it.
* ``truncate_metrics``: the rows a killed run wrote after its last checkpoint are dropped
  (they are computed again, identically), so ``metrics.jsonl`` has each update once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from pathlib import Path

from villages.atomic import atomic_write_text
from villages.validation import InputError

LOCK_NAME = ".lock"
# Args fields that do not change what a run computes: a resume may set them differently.
FREE_ON_RESUME = ("progress",)

_held: list[int] = []  # lock file descriptors this process holds (a forked helper closes its copies)


@contextlib.contextmanager
def lock(out: Path):
    """Hold ``out``'s run lock for the duration of the block, or refuse if a live run holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise InputError(f"{out}: another training run (pid {holder}) is writing into this folder; "
                         f"wait for it to finish or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held.append(fd)
    try:
        yield
    finally:
        _held.remove(fd)
        os.close(fd)  # (closing the last descriptor releases the lock)


def close_inherited_locks() -> None:
    """In a forked child: drop the copies of the parent's lock descriptors (without unlocking:
    the lock belongs to the parent), so that the lock dies with the parent alone."""
    while _held:
        with contextlib.suppress(OSError):
            os.close(_held.pop())


def saved_args(out: Path) -> dict | None:
    """The run's ``args.json`` as a dict, None if there is none; a damaged file is refused."""
    path = out / "args.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: expected the run's arguments as JSON, got an unreadable file ({e}); "
                         f"it cannot be resumed, train into a new --out") from None
    if not isinstance(saved, dict):
        raise InputError(f"{path}: expected a JSON object of the run's arguments, got {type(saved).__name__}")
    return saved


def args_from_saved(cls, saved: dict, path: Path):
    """``cls(**saved)``, refusing unknown fields and values of the wrong type by name."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise InputError(f"{path}: unknown argument(s) {', '.join(unknown)} (written by another villages version?)")
    for name, value in saved.items():
        default = fields[name].default
        if value is None or isinstance(value, bool):
            ok = default is None or (value is not None and isinstance(default, bool))
        elif default is None:
            ok = isinstance(value, (str, int, float))
        elif isinstance(default, float):
            ok = isinstance(value, (int, float))
        else:
            ok = isinstance(value, type(default)) and not isinstance(default, bool)
        if not ok:
            raise InputError(f"{path}: {name}: expected a value like {default!r}, got {value!r}")
    return cls(**saved)


def given_on_command_line(renames: dict | None = None) -> set[str] | None:
    """Names of the options the user typed on the running ``villages`` command (``renames``
    maps an option's name to its Args field); None outside a command (a Python caller)."""
    try:  # typer >= 0.20 runs its own copy of click (private, hence the fallback)
        from typer._click.core import ParameterSource
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context
        from click.core import ParameterSource
    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    renames = renames or {}
    return {renames.get(name, name) for name in ctx.params
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)}


def check_same_args(given: dict, saved: dict, source: str, defaults: dict | None = None) -> None:
    """Refuse a resume whose arguments differ from the run's, naming every difference. A field
    the run did not record (added to Args since) counts as its default there."""
    saved = {**(defaults or {}), **saved}
    diff = [f"{k} {given.get(k)!r} (given) vs {saved.get(k)!r} (the run's)"
            for k in sorted(set(given) | set(saved)) if k not in FREE_ON_RESUME and given.get(k) != saved.get(k)]
    if diff:
        raise InputError(f"{source}: --resume continues a run with its own arguments, but these differ: "
                         f"{'; '.join(diff)}. Drop them to continue the run, or train into a new --out")


def last_episode_row(path: Path) -> dict:
    """The last row of a run's ``metrics.jsonl`` that reports an episode (the last row if none does;
    {} without the file): what experiments record as a run's outcome."""
    if not Path(path).exists():
        return {}
    rows = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    return next((r for r in reversed(rows) if "charts/episodic_return" in r), rows[-1] if rows else {})


def truncate_metrics(path: Path, last_update: int) -> None:
    """Keep the rows of updates 1..last_update (written before the checkpoint resumed from)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a row cut by the kill: everything after it is gone too
        if not isinstance(row, dict) or not isinstance(row.get("update"), int) or row["update"] > last_update:
            break
        kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))
