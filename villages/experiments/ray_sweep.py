"""Fan a grid of native-trainer runs out as Ray Tune trials (local Ray or a cluster).

    from villages.experiments.ray_sweep import run_grid_on_ray
    res = run_grid_on_ray([dict(scenario="diverse-training", diversity=f, seed=s, total_steps=300_000)
                           for f in (0, 0.02, 0.1) for s in range(3)], "runs/sweep/agents")
    res[0]["final"], res[0]["last"]     # path of final.pt, last metrics row (with episode stats)

Every config is one trial: ``villages.train.ppo.train(Args(**config), out_dir / name)``
(``progress`` off). ``run_populations_on_ray`` makes each trial a population of members
(``villages.train.population``): fewer, longer trials, each one process per core. ``villages sweep-diversity --executor ray`` aggregates the results
into the same report as the local backend. A trial whose ``done.json`` and ``final.pt``
already exist is reused without running (resumable sweeps, like the local backend); a
trial with a ``checkpoint.pt`` resumes from it.

Where the files go: trials on the driver's node write straight into ``out_dir / name``.
Trials on other nodes of a cluster train in their Tune working directory and report the
run directory as a Tune checkpoint, which Tune persists to ``storage_path``; the driver
then copies it into ``out_dir / name``. On a multi-node cluster ``storage_path`` must
therefore be reachable from every node — a shared filesystem path or a cloud URI
(``s3://...``, ``gs://...``), as Ray Tune requires — see docs/scale-out.md. Ray is
imported lazily (``villages`` never imports it on the local path).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from villages.train.run_dir import last_episode_row

from .common import finished_run, record_run


def native_train(cfg: dict, trial_dir: Path) -> Path:
    """The default ``train_fn``: the native PPO trainer (resumes from ``checkpoint.pt``)."""
    from villages.train.ppo import Args, train

    trial_dir = Path(trial_dir)
    cfg = {"progress": False, **cfg}
    resume = (trial_dir / "checkpoint.pt").exists()
    return train(Args(**cfg), trial_dir, resume=resume, log=lambda *_: None)


def population_train(cfg: dict, trial_dir: Path) -> Path:
    """A ``train_fn`` whose trial trains a population (``villages.train.population``): ``cfg`` is
    ``{"args": shared Args fields, "runs": [member fields + "name"]}``; each member goes into
    ``trial_dir / name`` with its ``done.json`` (``run_populations_on_ray`` brings them home)."""
    from villages.train.population import STATE_FILE, members_of, train_population
    from villages.train.ppo import Args

    trial_dir = Path(trial_dir)
    runs = [dict({k: v for k, v in r.items() if k != "name"}, out=trial_dir / r["name"]) for r in cfg["runs"]]
    args = Args(**{"progress": False, **cfg["args"], "processes": 1})
    t0 = time.perf_counter()
    train_population(args, runs, trial_dir, resume=(trial_dir / STATE_FILE).exists(), log=lambda *_: None)
    seconds = (time.perf_counter() - t0) / len(runs)
    for run, m in zip(cfg["runs"], members_of(args, runs)):
        record_run(m.out, m.args, seconds, name=run["name"])
    return trial_dir / STATE_FILE


def run_populations_on_ray(populations: list[dict], out_dir, names: list[str] | None = None, **kw) -> list[dict]:
    """Run each population (``{"args": shared Args fields, "runs": [member fields + "name"]}``) as one
    Ray Tune trial (``population_train``), and bring every member home to ``out_dir / name``, as the
    local backend leaves it. Returns one result per member (``train_job``'s keys, ``error``), in order."""
    import shutil

    out_dir = Path(out_dir).resolve()
    names = names or [f"population-{p['runs'][0]['name']}" for p in populations]
    members: list[dict] = []
    todo, todo_names = [], []
    for pop, name in zip(populations, names):
        if all(finished_run(out_dir / r["name"]) is not None for r in pop["runs"]):
            continue
        todo.append(pop)
        todo_names.append(name)
    trials = run_grid_on_ray(todo, out_dir, train_fn=population_train, names=todo_names, **kw) if todo else []
    errors = {name: t.get("error") for name, t in zip(todo_names, trials)}
    for pop, name in zip(populations, names):
        for r in pop["runs"]:
            home = out_dir / r["name"]
            away = out_dir / name / r["name"]
            if errors.get(name) is None and away.is_dir() and not (home / "done.json").exists():
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(away, home)
                res = json.loads((home / "done.json").read_text())
                (home / "done.json").write_text(json.dumps(dict(res, out=str(home), final=str(home / "final.pt"))))
            if (home / "done.json").exists():
                members.append(dict(json.loads((home / "done.json").read_text()), out=str(home),
                                    final=str(home / "final.pt"), error=None))
            else:
                members.append({"name": r["name"], "out": str(home), "final": None, "error": errors.get(name) or
                                "the population trial left no result for this member"})
    return members


def default_name(cfg: dict, i: int) -> str:
    parts = [str(cfg.get("scenario", "training")).replace("/", "_").removesuffix(".toml")]
    if cfg.get("diversity") is not None:
        parts.append(f"f{cfg['diversity']:g}".replace(".", "p"))
    parts.append(f"seed{cfg.get('seed', 0)}")
    return f"{i:03d}-" + "-".join(parts)


def _trial(config, specs, out_dir, driver_node, train_fn):
    """One Tune trial (runs in a Ray worker)."""
    import ray
    from ray import tune

    i = int(config["i"])
    name, cfg = specs[i]
    local = ray.get_runtime_context().get_node_id() == driver_node
    run_dir = Path(out_dir) / name if local else Path(os.getcwd()).resolve() / name
    t0 = time.perf_counter()
    final = Path(train_fn(dict(cfg), run_dir))
    result = {"name": name, "out": str(run_dir), "final": str(final), "seconds": time.perf_counter() - t0,
              "last": last_episode_row(run_dir / "metrics.jsonl"), "args": dict(cfg), "node": "driver" if local else "remote"}
    (run_dir / "done.json").write_text(json.dumps(result, default=str))
    checkpoint = None if local else tune.Checkpoint.from_directory(str(run_dir))
    tune.report({"i": i, "result_json": json.dumps(result, default=str)}, checkpoint=checkpoint)


def run_grid_on_ray(configs: list[dict], out_dir, address: str | None = None, train_fn=native_train,
                    names: list[str] | None = None, cpus_per_trial: float = 1, max_concurrent: int | None = None,
                    storage_path: str | None = None, runtime_env: dict | None = None, num_cpus: int | None = None,
                    verbose: int = 1, log=print, _driver_node: str | None = None) -> list[dict]:
    """Run every config (``villages.train.ppo.Args`` fields) as one Ray Tune trial.

    ``names``: run-directory names under ``out_dir`` (default: index-scenario-fraction-seed).
    ``address``: an existing Ray cluster; None starts a private local instance (``num_cpus``
    cores, default all) and stops it afterwards. ``train_fn(cfg, run_dir) -> final.pt path``
    must be importable on the workers (a module-level function).
    Returns, in the order of ``configs``, one dict per trial: ``name``, ``out`` (run dir on
    this machine), ``final`` (its final.pt), ``last`` (last metrics row with episode stats),
    ``seconds``, ``args``, ``error`` (None, or the trial's error message).
    ``storage_path``: where Tune keeps its experiment state and the run dirs of trials on
    other nodes (default: ``$VILLAGES_RAY_STORAGE``, else ``out_dir/_tune``); on a multi-node
    cluster it must be a shared filesystem path or a cloud URI. ``_driver_node`` (tests):
    pretend the driver runs on that node, so every trial takes the other-node path.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else [default_name(c, i) for i, c in enumerate(configs)]
    if len(names) != len(configs) or len(set(names)) != len(names):
        raise ValueError("names must be unique, one per config")
    results: list[dict | None] = [None] * len(configs)
    todo = []
    for i, (name, cfg) in enumerate(zip(names, configs)):
        d = out_dir / name
        done = json.loads((d / "done.json").read_text()) if (d / "done.json").exists() else None
        if done and (d / Path(done["final"]).name).exists():  # finished earlier: reuse
            results[i] = dict(done, out=str(d), final=str(d / Path(done["final"]).name), error=None, reused=True)
        else:
            todo.append(i)
    if todo:
        log(f"ray tune: {len(todo)} trials ({len(configs) - len(todo)} reused) -> {out_dir}")
        for i, res in _run_tune(configs, names, todo, out_dir, address, train_fn, cpus_per_trial, max_concurrent,
                                storage_path, runtime_env, num_cpus, verbose, _driver_node):
            results[i] = res
    return results


def _run_tune(configs, names, todo, out_dir, address, train_fn, cpus_per_trial, max_concurrent, storage_path,
              runtime_env, num_cpus, verbose, driver_node=None):
    import ray
    from ray import tune

    from villages.train.rllib import _logs_into, project_runtime_env, ray_session

    if address is not None and runtime_env is None and os.environ.get("VILLAGES_RAY_SHIP_CODE", "1") != "0":
        runtime_env = project_runtime_env()
    specs = [(n, dict(c)) for n, c in zip(names, configs)]
    storage = storage_path or os.environ.get("VILLAGES_RAY_STORAGE") or str(out_dir / "_tune")
    exp_name = f"grid-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    with ray_session(address, num_cpus=num_cpus, runtime_env=runtime_env), _logs_into(out_dir / "_tune"):
        driver_node = driver_node or ray.get_runtime_context().get_node_id()
        trainable = tune.with_resources(
            tune.with_parameters(_trial, specs=specs, out_dir=str(out_dir), driver_node=driver_node,
                                 train_fn=train_fn),
            {"cpu": cpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space={"i": tune.grid_search(list(todo))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=False,
                                        trial_dirname_creator=lambda t: names[int(t.config["i"])][:100]),
            run_config=tune.RunConfig(name=exp_name, storage_path=storage, verbose=verbose,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
        grid = tuner.fit()
        out = []
        for r in grid:
            i = int(r.config["i"])
            name = names[i]
            local_dir = out_dir / name
            if r.error is not None or "result_json" not in (r.metrics or {}):
                out.append((i, {"name": name, "out": str(local_dir), "final": None, "last": last_episode_row(
                    local_dir / "metrics.jsonl"), "args": configs[i], "seconds": None, "error": str(r.error)}))
                continue
            res = json.loads(r.metrics["result_json"])
            if res.get("node") == "remote" and r.checkpoint is not None:  # bring the run dir home
                r.checkpoint.to_directory(str(local_dir))
                res["last"] = last_episode_row(local_dir / "metrics.jsonl") or res.get("last", {})
                (local_dir / "done.json").write_text(json.dumps(dict(res, out=str(local_dir),
                                                                     final=str(local_dir / Path(res["final"]).name)),
                                                                default=str))
            res.update(out=str(local_dir), final=str(local_dir / Path(res["final"]).name), error=None)
            out.append((i, res))
    return out
