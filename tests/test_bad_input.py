"""Every loader, fed anything: a clear one-line error or a valid object, never anything else.

Property-based (hypothesis): scenario files and tables, checkpoint files, replay files and
command-line values are broken at random (bytes flipped, cut or replaced; values of the
wrong type, size or range), and each loader must either refuse with its ``InputError`` (one
line, naming the file or option) or return an object that works: a scenario whose worlds
reset and step, a policy that acts, a replay whose last frame draws.
"""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import copy
import io
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from villages.game import ObservationLayout
from villages.game.layouts import ActionLayout
from villages.policies.checkpoint import CheckpointError, content_hash, read_checkpoint, save_checkpoint
from villages.policies.neural import build_net, load_policy
from villages.render import ReplayError, load_replay, save_replay
from villages.render._demo import demo_replay
from villages.render.replay import _write, replay_arrays
from villages.scenarios import ScenarioError, ScenarioGame, load_file, parse
from villages.validation import LIMITS, InputError, check_count, parse_fractions, parse_ints

sys.path.insert(0, str(Path(__file__).parent))
from test_loader_errors import BASE  # noqa: E402  (the small valid scenario the error tests break)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


def assert_one_line(error: Exception, names: str) -> None:
    msg = str(error)
    assert isinstance(error, InputError), f"{type(error).__name__}: {msg}"
    assert "\n" not in msg and msg.strip() == msg and msg, repr(msg)
    assert names in msg, f"{names!r} not named in {msg!r}"


def mutate_bytes(data: bytes, draw) -> bytes:
    """Flip, cut, overwrite or insert bytes (what a disk, a network or a careless edit does)."""
    how = draw(st.sampled_from(["flip", "cut", "overwrite", "insert"]))
    i = draw(st.integers(0, max(len(data) - 1, 0)))
    if how == "flip":
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if how == "cut":
        return data[:i]
    chunk = draw(st.binary(min_size=1, max_size=64))
    return data[:i] + chunk + data[i + (len(chunk) if how == "overwrite" else 0):]


# Values of every TOML type and then some: huge and negative integers, nan/inf, deep lists.
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["focal", "raider", "Home", "Foe", "war", "spear", "villages"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(data, prefix=()):
    """Every key path into a nested table (for replacing one value)."""
    yield prefix
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


# --- scenarios ------------------------------------------------------------------------------


def _usable_scenario(spec) -> None:
    game = ScenarioGame(spec, 1)
    game.reset(np.array([0]))
    for _ in range(2):
        game.step(np.zeros((1, len(game.focal)), np.int64))


@FUZZ
@given(data=st.data())
def test_scenario_tables_fuzzed(data):
    """One value of a valid scenario table replaced by anything."""
    table = tomllib.loads(BASE)
    paths = [p for p in _paths(table) if p]
    path = data.draw(st.sampled_from(paths))
    target = table
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = data.draw(ANY_VALUE)
    if isinstance(table.get("map"), dict) and data.draw(st.booleans()):  # and maybe a map size
        table["map"][data.draw(st.sampled_from(["n_villages", "episode_length", "n_rows"]))] = \
            data.draw(st.integers(-5, 2**40))
    try:
        spec = parse(table, "fuzz.toml")
    except ScenarioError as e:
        assert_one_line(e, "fuzz.toml: ")
        return
    _usable_scenario(spec)


@FUZZ
@given(data=st.data())
def test_scenario_files_fuzzed(tmp_path_factory, data):
    """The bytes of a valid scenario file damaged."""
    path = tmp_path_factory.mktemp("scenario") / "fuzz.toml"
    path.write_bytes(mutate_bytes(BASE.encode(), data.draw))
    try:
        spec = load_file(path)
    except ScenarioError as e:
        assert_one_line(e, str(path))
        return
    _usable_scenario(spec)


# --- checkpoints ----------------------------------------------------------------------------


def _small_checkpoint(path: Path) -> Path:
    meta = {"arch": "entity", "hidden": 8, "n_rows": 16, "n_alliances": 6, "banner_dim": 6, "seed": 0, "step": 0}
    torch.manual_seed(0)
    save_checkpoint(path, build_net("entity", ObservationLayout(16, 6, 6), ActionLayout(16, 6), 8), meta)
    return path


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    return _small_checkpoint(tmp_path_factory.mktemp("ckpt") / "good.pt").read_bytes()


def _usable_policy(path) -> None:
    policy = load_policy(path)
    obs_size = ObservationLayout.of(policy.meta).size
    n_actions = ActionLayout(policy.meta["n_rows"], policy.meta["n_alliances"]).n_actions
    logits, _ = policy.logits_value(np.zeros((1, 1, obs_size), np.float32), np.ones((1, 1, n_actions), bool))
    assert logits.shape == (1, 1, n_actions)


@FUZZ
@given(data=st.data())
def test_checkpoint_files_fuzzed(tmp_path_factory, checkpoint_bytes, data):
    path = tmp_path_factory.mktemp("ckpt") / "fuzz.pt"
    path.write_bytes(mutate_bytes(checkpoint_bytes, data.draw))
    try:
        _usable_policy(path)
    except CheckpointError as e:
        assert_one_line(e, str(path))


@FUZZ
@given(data=st.data())
def test_checkpoint_contents_fuzzed(tmp_path_factory, checkpoint_bytes, data):
    """Meta values and weights replaced, the hash then recomputed: the contents themselves are checked."""
    blob = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
    blob = copy.deepcopy(blob)
    what = data.draw(st.sampled_from(["meta", "weight", "drop"]))
    if what == "meta":
        key = data.draw(st.sampled_from(["arch", "hidden", "n_rows", "n_alliances", "banner_dim", "banner_scale"]))
        blob["meta"][key] = data.draw(ANY_VALUE | st.integers(-3, 30_000))
    elif what == "weight":
        name = data.draw(st.sampled_from(sorted(blob["model"])))
        shape = data.draw(st.lists(st.integers(0, 5), max_size=3).map(tuple) | st.just(tuple(blob["model"][name].shape)))
        fill = data.draw(st.floats(allow_nan=True, allow_infinity=True, width=32))
        blob["model"][name] = torch.full(shape, fill)
    else:
        blob.pop(data.draw(st.sampled_from(["meta", "model", "format", "version"])))
    blob["sha256"] = content_hash(blob)
    path = tmp_path_factory.mktemp("ckpt") / "fuzz.pt"
    torch.save(blob, path)
    try:
        _usable_policy(path)
    except CheckpointError as e:
        assert_one_line(e, str(path))


def test_checkpoint_limits_refuse_before_allocating(tmp_path, checkpoint_bytes):
    """A meta asking for a 20,000-wide network (its weights would be 1.6e9 numbers) is refused by
    its bound; a smaller mismatch by its shapes, compared on the meta device."""
    for hidden, expect in ((20_000, "at most 4,096"), (4000, "does not match the network")):
        blob = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
        blob["meta"]["hidden"] = hidden
        blob["sha256"] = content_hash(blob)
        torch.save(blob, tmp_path / "wide.pt")
        with pytest.raises(CheckpointError, match=expect):
            load_policy(tmp_path / "wide.pt")


def test_flipped_byte_in_the_weights_is_caught(tmp_path, checkpoint_bytes):
    """The zip container does not check its CRCs on load: the content hash does."""
    blob = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
    raw = blob["model"]["value.weight"].numpy().tobytes()
    at = checkpoint_bytes.index(raw) + 5
    path = tmp_path / "flipped.pt"
    path.write_bytes(checkpoint_bytes[:at] + bytes([checkpoint_bytes[at] ^ 0x10]) + checkpoint_bytes[at + 1:])
    assert not torch.equal(torch.load(path, weights_only=True)["model"]["value.weight"], blob["model"]["value.weight"])
    with pytest.raises(CheckpointError, match="content hash mismatch"):
        load_policy(path)


def test_nan_weights_are_refused(tmp_path, checkpoint_bytes):
    blob = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
    blob["model"]["value.bias"][0] = float("nan")
    blob["sha256"] = content_hash(blob)
    torch.save(blob, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="value.bias holds NaN or infinite values"):
        load_policy(tmp_path / "nan.pt")


def test_version_1_checkpoints_are_still_read(tmp_path, checkpoint_bytes):
    blob = torch.load(io.BytesIO(checkpoint_bytes), weights_only=True)
    blob["version"] = 1
    del blob["sha256"]
    torch.save(blob, tmp_path / "v1.pt")
    _usable_policy(tmp_path / "v1.pt")


def test_failed_checkpoint_save_leaves_the_old_file_and_nothing_else(tmp_path, monkeypatch):
    path = _small_checkpoint(tmp_path / "model.pt")
    before = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("villages.atomic.os.fsync", broken)  # the write fails after the bytes went out
    with pytest.raises(OSError, match="disk full"):
        _small_checkpoint(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert read_checkpoint(path)["meta"]["hidden"] == 8


# --- replays --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory) -> Path:
    return save_replay(demo_replay(12, seed=1), tmp_path_factory.mktemp("replay") / "good.replay.npz")


def _usable_replay(path) -> None:
    from villages.render import viewer

    replay = load_replay(path)
    if replay.n_frames:
        viewer.Renderer(replay, (320, 200)).draw(replay.n_frames - 1)


@FUZZ
@given(data=st.data())
def test_replay_files_fuzzed(tmp_path_factory, replay_file, data):
    path = tmp_path_factory.mktemp("replay") / "fuzz.replay.npz"
    path.write_bytes(mutate_bytes(replay_file.read_bytes(), data.draw))
    try:
        _usable_replay(path)
    except ReplayError as e:
        assert_one_line(e, str(path))


@FUZZ
@given(data=st.data())
def test_replay_contents_fuzzed(tmp_path_factory, replay_file, data):
    """One array replaced by values of any dtype, shape and range; written with a valid hash."""
    arrays = replay_arrays(load_replay(replay_file))
    name = data.draw(st.sampled_from(sorted(k for k in arrays if k not in ("format", "version", "index"))))
    old = np.asarray(arrays[name])
    dtype = data.draw(st.sampled_from([old.dtype, np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.int8),
                                       np.dtype(bool)]))
    shape = data.draw(st.just(old.shape) | st.lists(st.integers(0, 4), max_size=3).map(tuple))
    if name == "meta":
        import json

        meta = json.loads(str(old))
        key = data.draw(st.sampled_from(sorted(meta)))
        meta[key] = data.draw(ANY_VALUE)
        arrays[name] = np.array(json.dumps(meta))
    else:
        value = data.draw(st.integers(-(2**31), 2**31) | st.floats(allow_nan=True, allow_infinity=True))
        with np.errstate(all="ignore"):
            arrays[name] = np.full(shape, value).astype(dtype) if data.draw(st.booleans()) else \
                np.where(np.arange(old.size).reshape(old.shape) == 0, value, old).astype(dtype)
    path = tmp_path_factory.mktemp("replay") / "fuzz.replay.npz"
    _write(arrays, path)
    try:
        _usable_replay(path)
    except ReplayError as e:
        assert_one_line(e, str(path))


@pytest.mark.parametrize("value", [None, 3, "abc"])
def test_replay_meta_lists_of_another_type_are_refused(tmp_path, replay_file, value):
    """Found by the fuzz above: a meta list replaced by null raised TypeError from len()."""
    import json

    arrays = replay_arrays(load_replay(replay_file))
    meta = json.loads(str(arrays["meta"]))
    meta["alliance_colours"] = value
    arrays["meta"] = np.array(json.dumps(meta))
    path = _write(arrays, tmp_path / "meta.replay.npz")
    with pytest.raises(ReplayError, match=r"meta\['alliance_colours'\]: expected a list of \d+ entries") as e:
        load_replay(path)
    assert_one_line(e.value, str(path))


def test_version_1_replays_are_still_read(tmp_path, replay_file):
    arrays = replay_arrays(load_replay(replay_file))
    arrays["version"] = np.array(1, np.int64)
    with open(tmp_path / "v1.replay.npz", "wb") as f:
        np.savez_compressed(f, **arrays)  # as version 1 wrote it: no sha256
    _usable_replay(tmp_path / "v1.replay.npz")
    arrays["version"] = np.array(3, np.int64)  # the current version must carry its hash
    with open(tmp_path / "v3.replay.npz", "wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(ReplayError, match="content hash mismatch"):
        load_replay(tmp_path / "v3.replay.npz")


def test_replay_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    """Zeros compress about 1000:1: a small file that would inflate past the bound is refused
    from its zip directory, before a byte is inflated (the bound lowered to 1 MiB to keep this quick)."""
    import zipfile

    from villages.validation import Limit

    monkeypatch.setattr("villages.render.replay.MAX_REPLAY_BYTES", Limit(1 << 20, "test bound"))
    path = tmp_path / "bomb.replay.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.npy", bytes(2 << 20))
    assert path.stat().st_size < 64 << 10
    with pytest.raises(ReplayError, match=r"at most 1,048,576 bytes of arrays, got 2,097,152 once inflated \(test"):
        load_replay(path)


# --- command-line values ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30) | st.lists(st.integers(-5, 2**70), max_size=5).map(lambda x: ",".join(map(str, x))))
def test_cli_integer_lists_fuzzed(text):
    try:
        values = parse_ints(text, "--seeds")
    except InputError as e:
        assert_one_line(e, "--seeds: ")
        return
    assert values and all(isinstance(v, int) and 0 <= v <= LIMITS["MAX_SEED"].value for v in values)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=30) | st.lists(st.floats(), max_size=5).map(lambda x: ",".join(map(str, x))))
def test_cli_fraction_lists_fuzzed(text):
    try:
        values = parse_fractions(text, "--fractions")
    except InputError as e:
        assert_one_line(e, "--fractions: ")
        return
    assert values and all(0 <= v <= 1 for v in values)


@settings(max_examples=100, deadline=None)
@given(value=ANY_VALUE)
def test_cli_counts_fuzzed(value):
    try:
        assert check_count(value, "--episodes", 1, LIMITS["MAX_EPISODES"]) in (None, value)
    except InputError as e:
        assert_one_line(e, "--episodes: ")
        return
    assert value is None or 1 <= value <= LIMITS["MAX_EPISODES"].value


# --- the README lists every limit --------------------------------------------------------------


def test_readme_lists_every_limit():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Limits and bad input", 1)
    assert len(section) == 2, "README.md has no 'Limits and bad input' section"
    for name, limit in LIMITS.items():
        assert str(limit) in section[1], f"{name} ({limit}) is not in the README's limits section"
