"""Banner geometry and observation settings as scenario settings (issue 14, point 4):
``banner_like`` identities, ``[map] banner_scale`` / ``relation_in_rows`` in TOML and on
``villages train``, recorded in the checkpoint and honoured by ``villages eval``."""

from __future__ import annotations

import numpy as np
import pytest

from villages.scenarios import ScenarioError, config_for, game_config, load, load_file
from villages.scenarios.spec import Identity, banner_like, cosine

SUBSTRATE = "builtin:substrates/alliance-war.toml"


def write(tmp_path, text: str):
    p = tmp_path / "s.toml"
    p.write_text(f'extends = "{SUBSTRATE}"\nname = "s"\n' + text)
    return p


@pytest.mark.parametrize("c", [-0.5, 0.0, 0.3, 0.8, 0.99, 1.0])
def test_banner_like_has_the_asked_cosine(c):
    ref = Identity("Aurora").banner_vector(6)
    b = banner_like(ref, c, "Nova")
    assert np.isclose(cosine(b, ref), c, atol=1e-9) and np.isclose(np.linalg.norm(b), 1.0)
    assert np.array_equal(b, banner_like(ref, c, "Nova"))  # deterministic from the names
    if c < 1:
        assert not np.allclose(b, banner_like(ref, c, "Other"))  # the name picks the orthogonal part


def test_toml_banner_like_and_observation_settings(tmp_path):
    spec = load_file(write(tmp_path, """
[map]
banner_scale = 1.5
relation_in_rows = false

[[extra_identities]]
name = "Nova"
banner_like = { of = "Aurora", cosine = 0.8 }
"""))
    nova = spec.identities[spec.identity_index("Nova")]
    aurora = spec.identities[spec.identity_index("Aurora")]
    assert np.isclose(cosine(nova.banner_vector(6), aurora.banner_vector(6)), 0.8)
    cfg = game_config(spec)
    assert cfg.banner_scale == 1.5 and cfg.relation_in_rows is False
    assert spec.map.n_villages == 24  # the rest of [map] still comes from the substrate


@pytest.mark.parametrize("text, key", [
    ('[[extra_identities]]\nname = "Nova"\nbanner_like = { of = "Nobody", cosine = 0.5 }\n', "banner_like.of"),
    ('[[extra_identities]]\nname = "Nova"\nbanner_like = { of = "Aurora", cosine = 1.5 }\n', "banner_like.cosine"),
    ('[[extra_identities]]\nname = "Nova"\nbanner_like = { of = "Aurora" }\n', "banner_like.cosine"),
    ('[[extra_identities]]\nname = "Nova"\nbanner = [1, 0, 0, 0, 0, 0]\nbanner_like = { of = "Aurora", cosine = 0.5 }\n',
     "banner_like"),
    ('[map]\nbanner_scale = -1\n', "map.banner_scale"),
])
def test_bad_banner_settings_name_the_key(tmp_path, text, key):
    with pytest.raises(ScenarioError, match=key.replace(".", r"\.")):
        load_file(write(tmp_path, text))


def test_checkpoint_settings_win_over_the_scenario():
    spec = load("training")
    assert config_for(None, spec).banner_scale == spec.map.banner_scale
    cfg = config_for({"banner_scale": 1.0, "relation_in_rows": False}, spec)
    assert cfg.banner_scale == 1.0 and cfg.relation_in_rows is False


def test_train_settings_reach_the_checkpoint_meta():
    from villages.scenarios import ScenarioGame
    from villages.train.ppo import Args, checkpoint_meta, make_spec

    args = Args(banner_scale=1.0, relation_in_rows=False)
    spec = make_spec(args)
    meta = checkpoint_meta(args, ScenarioGame(spec, 1, config=game_config(spec)), 0)
    assert meta["banner_scale"] == 1.0 and meta["relation_in_rows"] is False


def test_cli_eval_uses_the_checkpoint_banner_scale(tmp_path, monkeypatch):
    """A checkpoint trained at banner scale 1 is evaluated at 1, not at the scenario's 3."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    import villages.scenarios.runner as runner
    from villages.cli import app
    from villages.policies.neural import net_from_meta, save_checkpoint

    cfg = game_config(load("training"))
    meta = {"arch": "entity", "hidden": 8, "n_rows": cfg.n_rows, "n_alliances": cfg.n_alliances,
            "banner_dim": cfg.banner_dim, "relation_in_rows": False, "banner_scale": 1.0, "scenario": "training"}
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, net_from_meta(meta), meta)
    seen = {}

    def fake_evaluate(spec, policy, n, seeds, batch_size=None, observer=None, config=None):
        seen["config"] = config
        return runner.run_episodes(spec, policy, 1, 0, config=config_short(config))

    def config_short(config):
        import dataclasses

        return dataclasses.replace(config, episode_length=3)

    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    r = CliRunner().invoke(app, ["eval", str(ckpt), "--scenario", "training", "--episodes", "1"])
    assert r.exit_code == 0, r.output
    assert seen["config"].banner_scale == 1.0 and seen["config"].relation_in_rows is False
