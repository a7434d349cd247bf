"""``villages train``'s options, generated from the trainers' argument dataclasses.

Every field of ``NativeArgs`` (native trainer) and ``RLlibArgs`` (``--backend rllib``)
becomes ``--field-name`` with the field's docstring as its help, so a new setting needs
no CLI code. An option left out keeps the chosen trainer's default; an option the chosen
backend does not have is refused by name.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Optional

import typer

from .args import DEVICES, NativeArgs, field_docs

BACKENDS = ("native", "rllib")
ALIASES = {"total_steps": ("--steps",)}  # the short spelling the README and older scripts use


def _choices() -> dict[str, tuple]:
    from villages.scenarios.spec import OBJECTIVES

    return {"device": DEVICES, "objective": OBJECTIVES}


def backend_args(backend: str):
    if backend == "rllib":
        from .rllib import RLlibArgs  # (no Ray import: that happens when training starts)

        return RLlibArgs
    return NativeArgs


@dataclasses.dataclass
class TrainerField:
    name: str
    type: type  # the field's type without Optional
    defaults: dict  # backend -> default
    docs: dict  # backend -> docstring

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help(self) -> str:
        docs = set(self.docs.values())
        doc = docs.pop() if len(docs) == 1 else "; ".join(f"{b}: {d}" for b, d in self.docs.items())
        values = {repr(v) for v in self.defaults.values()}
        if len(self.defaults) == len(BACKENDS) and len(values) == 1:
            return f"{doc} (default: {values.pop()})"
        if len(self.defaults) == 1:
            (backend, v), = self.defaults.items()
            return f"{doc} ({backend} only; default: {v!r})"
        parts = "; ".join(f"{b}: {v!r}" for b, v in self.defaults.items())
        return f"{doc} (default: {parts})"


def _base_type(hint) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def trainer_fields() -> dict[str, TrainerField]:
    """Every field of every backend's dataclass, in declaration order (the native one first)."""
    out: dict[str, TrainerField] = {}
    for backend in BACKENDS:
        cls = backend_args(backend)
        hints, docs = typing.get_type_hints(cls), field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name not in out:
                out[f.name] = TrainerField(f.name, _base_type(hints[f.name]), {}, {})
            out[f.name].defaults[backend] = f.default
            out[f.name].docs[backend] = docs[f.name]
    return out


def _option(field: TrainerField):
    decls = [field.flag, *ALIASES.get(field.name, ())]
    if field.type is bool:
        decls = [f"{field.flag}/--no-{field.flag[2:]}"]
    return typer.Option(None, *decls, help=field.help(), show_default=False)


def make_train_command(run):
    """A typer command function whose options are the trainer fields plus --backend, --out,
    --resume and the population's --seeds/--compile; it calls
    ``run(backend, overrides, out, resume, population)`` with the options given (``population``:
    None, or those three)."""
    fields = trainer_fields()
    params = [
        inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                          default=typer.Option("native", help="the trainer: native | rllib")),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                          default=typer.Option(Path("runs/train"), help="the run folder")),
        inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, help="native only: resume from the last checkpoint in --out")),
        inspect.Parameter("seeds", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
                          default=typer.Option(None, help="native only: train these seeds (e.g. 0,1,2 or 0-9) as one "
                                               "population in this process, each into <out>/seed<N>")),
        inspect.Parameter("compile", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, help="with --seeds: torch.compile the PPO loss once for all "
                                               "members (pays on runs longer than its compile time)")),
    ]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[f.type],
                                 default=_option(f)) for f in fields.values()]

    def train(**kw):
        """Train the assistant with PPO (every trainer setting is an option)."""
        backend, out, resume = kw.pop("backend"), kw.pop("out"), kw.pop("resume")
        population = {k: kw.pop(k) for k in ("seeds", "compile")}
        if population["seeds"] is None:
            if population["compile"]:
                raise typer.BadParameter("--compile is a setting of a population: give --seeds")
            population = None
        elif backend != "native":
            raise typer.BadParameter("--seeds trains a population with the native trainer (--backend native)")
        if backend not in BACKENDS:
            raise typer.BadParameter(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        given = {k: v for k, v in kw.items() if v is not None}
        foreign = [fields[k].flag for k in given if backend not in fields[k].defaults]
        if foreign:
            raise typer.BadParameter(f"{', '.join(foreign)} not used by --backend {backend}")
        for name, allowed in _choices().items():
            if name in given and given[name] not in allowed:
                raise typer.BadParameter(f"{fields[name].flag} must be one of {' | '.join(allowed)}, "
                                         f"got {given[name]!r}")
        if resume and backend != "native":
            raise typer.BadParameter("--resume is for the native trainer; an RLlib run restarts from scratch")
        if population is not None and "seed" in given:
            raise typer.BadParameter("give either --seed (one run) or --seeds (a population)")
        run(backend, given, out, resume, population)

    train.__signature__ = inspect.Signature(params)
    return train
