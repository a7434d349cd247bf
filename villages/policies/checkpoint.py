"""Checkpoint files: written atomically with a format version and a content hash, read
back only as plain tensors and primitives (``torch.load(weights_only=True)``) and
validated before a network is built from them.

A checkpoint is a dict: ``format`` (``"villages-checkpoint"``), ``version``, ``meta``
(the network's sizes and what it was trained on), ``model`` (the state dict), the
trainer's resume state where there is one (``optimizer``, RNG states, counters), and
``sha256``: a hash of everything else, so that a flipped byte that still unpickles is
caught. Version 1 files (before the hash) are still read.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from villages.atomic import atomic_write
from villages.game.layouts import SCENARIO_SELF_FEATURES
from villages.validation import (
    MAX_ALLIANCES,
    MAX_BANNER_DIM,
    MAX_CHECKPOINT_BYTES,
    MAX_HIDDEN,
    MAX_VILLAGES,
    InputError,
    Limit,
    finite,
)

CHECKPOINT_FORMAT = "villages-checkpoint"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# meta key -> (type, smallest, limit): the sizes a network is built from.
META_SIZES = {
    "hidden": (1, MAX_HIDDEN),
    "n_rows": (1, MAX_VILLAGES),
    "n_alliances": (1, MAX_ALLIANCES),
    "banner_dim": (1, MAX_BANNER_DIM),
}
RESUME_KEYS = ("optimizer", "torch_rng", "update", "episode")


class CheckpointError(InputError):
    """A checkpoint file cannot be used: names the file and what is wrong with it."""


def content_hash(blob: dict) -> str:
    """sha256 of every entry but ``sha256`` itself: tensors by dtype, shape and bytes,
    containers in key order, primitives by type and value."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in blob.items() if k != "sha256"})
    return h.hexdigest()


def _feed(h, x) -> None:
    if isinstance(x, dict):
        h.update(b"{%d" % len(x))
        for k in sorted(x, key=repr):
            _feed(h, k)
            _feed(h, x[k])
    elif isinstance(x, (list, tuple)):
        h.update(b"[%d" % len(x))
        for v in x:
            _feed(h, v)
    elif isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(f"{type(x).__name__}:{x!r};".encode())


def save_checkpoint(path, net: torch.nn.Module | dict, meta: dict, extra: dict | None = None) -> None:
    """Atomic write (temporary file, fsync, rename): a crash mid-save leaves the previous
    checkpoint as it was and no partial file. ``net``: a network, or a state dict of tensors
    (the population trainer's stacked parameters)."""
    model = net.state_dict() if isinstance(net, torch.nn.Module) else dict(net)
    blob = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": meta, "model": model, **(extra or {})}
    blob["sha256"] = content_hash(blob)
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def read_checkpoint(path, resumable: bool = False) -> dict:
    """The validated contents of a checkpoint; ``resumable``: it must also hold the trainer's state."""
    path = Path(path)
    fail = lambda msg: CheckpointError(f"{path}: {msg}")  # noqa: E731
    if not path.is_file():
        raise fail("no such checkpoint file" if not path.exists() else "not a file")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES.value:
        raise fail(_over(MAX_CHECKPOINT_BYTES, "file size", "bytes", size))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refused, truncated zip, not a torch file ...
        raise fail(f"not a readable villages checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    try:
        _validate(blob, fail, resumable)
    except CheckpointError:
        raise
    except Exception as e:  # tensors of a kind ours never are (sparse, quantized ...): hashing or checking failed
        raise fail(f"not a valid villages checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    return blob


def _validate(blob, fail, resumable: bool) -> None:
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise fail(f"not a villages checkpoint (missing format tag {CHECKPOINT_FORMAT!r})")
    version = blob.get("version")
    if version not in READABLE_VERSIONS:
        raise fail(f"checkpoint version {version!r} is not supported (this villages reads versions "
                   f"{', '.join(map(str, READABLE_VERSIONS))})")
    for key in ("meta", "model"):
        if key not in blob:
            raise fail(f"checkpoint lacks {key!r}")
    if version >= 2:
        stored = blob.get("sha256")
        if not isinstance(stored, str) or stored != content_hash(blob):
            raise fail("content hash mismatch: the file is corrupted (its sha256 does not match its contents)")
    check_meta(blob["meta"], fail)
    model = blob["model"]
    if not isinstance(model, dict) or not model or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) and v.layout == torch.strided and v.is_floating_point()
            for k, v in model.items()):
        raise fail("'model' is not a state dict (names -> dense floating-point tensors)")
    bad = _first_non_finite(blob)
    if bad is not None:
        raise fail(f"{bad} holds NaN or infinite values (a diverged run); refusing to use it")
    if resumable:
        missing = [k for k in RESUME_KEYS if k not in blob]
        if missing:
            raise fail(f"not a resumable training checkpoint (lacks {', '.join(map(repr, missing))}; "
                       f"final.pt holds the model only: resume from the run's checkpoint.pt)")


def check_meta(meta, fail) -> None:
    """The sizes a network is built from, checked before anything is allocated."""
    if not isinstance(meta, dict):
        raise fail(f"'meta' must be a table, got {type(meta).__name__}")
    if not isinstance(meta.get("arch"), str):
        raise fail(f"meta 'arch': expected the name of an architecture, got {meta.get('arch')!r}")
    for key, (lo, limit) in META_SIZES.items():
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise fail(f"meta {key!r}: expected an integer >= {lo}, got {v!r}")
        if v > limit.value:
            raise fail(_over(limit, f"meta {key!r}", "", v))
    for key in ("banner_scale",):
        if key in meta and not finite(meta[key]):
            raise fail(f"meta {key!r}: expected a finite number, got {meta[key]!r}")
    extra = meta.get("scenario_self_features", [])
    if not isinstance(extra, list) or any(x not in SCENARIO_SELF_FEATURES for x in extra) or len(set(extra)) < len(extra):
        raise fail(f"meta 'scenario_self_features': expected a list of distinct names among "
                   f"{', '.join(SCENARIO_SELF_FEATURES)}, got {extra!r}")


def check_state_dict(net: torch.nn.Module, model: dict, path) -> None:
    """The file's tensors are exactly the network's (names and shapes); ``net`` may live on
    the meta device, so this costs no memory."""
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in model.items()}
    if want.keys() != got.keys():
        extra, missing = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
        raise CheckpointError(f"{path}: checkpoint does not match the network its meta describes "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, shape in want.items():
        if got[k] != shape:
            raise CheckpointError(f"{path}: checkpoint does not match the network its meta describes "
                                  f"({k}: shape {got[k]} in the file, {shape} from the meta)")


def _first_non_finite(x, where: str = "") -> str | None:
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            return where or "a tensor"
        return None
    if isinstance(x, dict):
        items = x.items()
    elif isinstance(x, (list, tuple)):
        items = enumerate(x)
    elif isinstance(x, float) and not finite(x):
        return where
    else:
        return None
    for k, v in items:
        bad = _first_non_finite(v, f"{where}.{k}" if where else str(k))
        if bad is not None:
            return bad
    return None


def _over(limit: Limit, key: str, unit: str, got) -> str:
    return f"{key}: expected at most {limit}{' ' + unit if unit else ''}, got {got:,} ({limit.why})"


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""
