"""Build the run config: defaults of the model and of each dataset, the user's YAML, then ``--options``.

Each source is validated on its own against the owning class's schema, so an error names the key,
the file (or ``--options``) it came from and what is allowed; the merged result is then checked for
required keys and existing paths. Nothing is built here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from minigpt4.errors import ConfigError
from minigpt4.registry import DATASETS, MODELS, RUNNERS, import_modules

from . import seed_project
from .schema import DatasetConfigurable, Key, ModelConfigurable, defaults, type_problem, unknown_key_message

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
CUSTOM_IMPORTS = "custom_imports"
SECTIONS = (CUSTOM_IMPORTS, "model", "datasets", "evaluation_datasets", "run")
OPTIONS = "--options"
DEFAULT_RUNNER = "epoch_runner"
DEFAULT_EVALUATION = "flickr30k_eval"  # scored when an evaluation config has no evaluation_datasets
TOP_LEVEL_SCHEMA: dict[str, Key] = {
    CUSTOM_IMPORTS: Key(
        "Modules imported before the rest of the config is read, so that the components they "
        "register (models, model types, datasets, tasks, ...) can be named, e.g. "
        "[minigpt4.testing] for model_type tiny.",
        list,
        [],
    ),
}


def resolve_path(value: str) -> Path:
    """A config path: absolute, or relative to the working directory, else to the package
    (so the built-in ``prompts/alignment.txt`` and ``configs/...`` work from anywhere)."""
    p = Path(os.path.expanduser(value))
    if p.is_absolute() or p.exists():
        return p.resolve()
    packaged = PACKAGE_DIR / p
    return packaged if packaged.exists() else p.resolve()


def read_yaml(path: str | Path) -> dict:
    """Load a YAML mapping; a missing file or a syntax error names the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: config file not found"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}{where}: YAML syntax error: {getattr(e, 'problem', e)}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {type(data).__name__}"])
    # OmegaConf's float parsing (1e-5 is a float, unlike plain YAML 1.1)
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=False) or {}


def parse_options(options: Iterable[str] | None) -> dict:
    """``["run.init_lr=1e-4", "model.ckpt=null"]`` -> nested dict (values parsed as YAML)."""
    options = list(options or [])
    bad = [o for o in options if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError([f"{OPTIONS} {o!r}: expected key=value, e.g. run.init_lr=1e-4" for o in bad])
    return OmegaConf.to_container(OmegaConf.from_dotlist(options), resolve=False)


class _Checker:
    """Validates sources against schemas, records which source set each key, collects problems and
    notes (official names and ignored official keys, logged by ``load_config``)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []  # logged as info: official names read, defaults taken
        self.ignored: list[str] = []  # logged as warnings: official keys that have no effect here
        self.origins: dict[str, str] = {}

    def source(self, value: Any, schema: Mapping[str, Key], origin: str, prefix: str) -> Any:
        """``value`` checked against ``schema``; returns it without the ignored (official) keys."""
        if not isinstance(value, dict):
            self.problems.append(f"{prefix.rstrip('.')} in {origin}: expected a mapping, got {value!r}")
            return value
        kept = {}
        for name, v in value.items():
            dotted = f"{prefix}{name}"
            if name not in schema:
                self.problems.append(f"{dotted} in {origin}: {unknown_key_message(str(name), schema)}")
                continue
            key = schema[name]
            if key.children is not None and isinstance(v, dict):
                self.origins[dotted] = origin
                kept[name] = self.source(v, key.children, origin, dotted + ".")
                continue
            problem = type_problem(key, v)
            if problem:
                self.problems.append(f"{dotted} in {origin}: {problem}")
            if key.ignored is not None:
                if not problem:
                    self.ignored.append(f"{dotted} in {origin}: ignored: {key.ignored}")
                continue
            self.origins[dotted] = origin
            kept[name] = v
        return kept

    def complete(self, value: dict, schema: Mapping[str, Key], prefix: str) -> None:
        """Required keys present; paths exist (and are made absolute)."""
        for name, key in schema.items():
            dotted = f"{prefix}{name}"
            v = value.get(name, None)
            if key.children is not None:
                if isinstance(v, dict):
                    self.complete(v, key.children, dotted + ".")
                continue
            if key.required and v is None:
                self.problems.append(f"{dotted}: required key is missing ({key.doc})")
            elif key.check_merged is not None and v is not None:
                origin = self.origins.get(dotted, "defaults")
                self.problems += [f"{dotted} in {origin}: {problem}" for problem in key.check_merged(v)]
            elif key.path and isinstance(v, str):
                p = resolve_path(v)
                ok = {"file": p.is_file(), "dir": p.is_dir()}.get(key.path, p.exists())
                if not ok:
                    origin = self.origins.get(dotted, "defaults")
                    kind = {"file": "file", "dir": "directory"}.get(key.path, "path")
                    self.problems.append(f"{dotted} in {origin}: {kind} not found: {v}")
                else:
                    value[name] = str(p)

    def merged(self, parts: list[tuple[Any, str]], schema: Mapping[str, Key], prefix: str) -> dict:
        base: dict = defaults(schema)
        for value, origin in parts:
            if value is None:
                continue
            value = self.source(value, schema, origin, prefix)
            if isinstance(value, dict):
                base = _deep_merge(base, value)
        return _with_child_defaults(base, schema)


def validate_section(value: Any, schema: Mapping[str, Key], origin: str, prefix: str = "") -> dict:
    """One mapping over its schema's defaults, validated like a config section (unknown keys, types,
    required keys, existing paths); raises ``ConfigError``. For components built without ``load_config``."""
    ck = _Checker()
    merged = ck.merged([(value, origin)], schema, prefix)
    ck.complete(merged, schema, prefix)
    if ck.problems:
        raise ConfigError(ck.problems)
    return merged


def _with_child_defaults(value: dict, schema: Mapping[str, Key]) -> dict:
    """Nested mappings that are off by default (``lora: null``) but given: completed with their defaults."""
    for name, key in schema.items():
        if key.children is not None and isinstance(value.get(name), dict):
            value[name] = _with_child_defaults(_deep_merge(defaults(key.children), value[name]), key.children)
    return value


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _get(d: dict, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _model_section(user: dict, opts: dict, cfg_path: str, ck: _Checker) -> dict | None:
    arch = _get(opts, "model", "arch") or _get(user, "model", "arch")
    if arch is None:
        ck.problems.append(f"model.arch: required key is missing in {cfg_path} (registered: {MODELS.names()})")
        return None
    arch_origin = OPTIONS if _get(opts, "model", "arch") else cfg_path
    try:
        cls: type[ModelConfigurable] = MODELS.get(arch)
    except KeyError as e:
        ck.problems.append(f"model.arch in {arch_origin}: {e.args[0]}")
        return None
    if arch != cls.registry_name:
        ck.notes.append(f"model.arch in {arch_origin}: {arch!r} is the official name of {cls.registry_name!r}")
    given = _get(opts, "model", "model_type") or _get(user, "model", "model_type") or cls.DEFAULT_MODEL_TYPE
    origin = OPTIONS if _get(opts, "model", "model_type") else cfg_path
    model_type = cls.MODEL_TYPE_ALIASES.get(given, given)
    if model_type != given:
        ck.notes.append(f"model.model_type in {origin}: {given!r} is the official name of {model_type!r}")
    parts = []
    if model_type not in cls.MODEL_TYPES:
        aliases = ", ".join(f"{a} (= {c})" for a, c in sorted(cls.MODEL_TYPE_ALIASES.items()))
        ck.problems.append(
            f"model.model_type in {origin}: unknown model_type {given!r} for arch {arch!r}; "
            f"allowed: {sorted(cls.MODEL_TYPES)}, official names: {aliases} (tiny and standin need "
            "custom_imports: [minigpt4.testing] or [minigpt4.quickstart])"
        )
    else:
        dpath = PACKAGE_DIR / cls.MODEL_TYPES[model_type]
        parts.append((read_yaml(dpath).get("model", {}), str(dpath)))
    parts += [(_get(user, "model"), cfg_path), (_get(opts, "model"), OPTIONS)]
    model = ck.merged(parts, cls.SCHEMA, "model.")
    model["arch"], model["model_type"] = cls.registry_name, model_type
    ck.complete(model, cls.SCHEMA, "model.")
    if not ck.problems:  # across keys, e.g. model.lora vs the LLM's modules
        ck.problems += cls.config_problems(model, ck.origins)
    return model


def _fits(section: str) -> Callable[[type], bool]:
    """Builders that can fill ``section`` (by their ``splits()``): training ones for ``datasets``,
    evaluation ones for ``evaluation_datasets``; a builder that does not say fits both."""
    return lambda cls: not hasattr(cls, "splits") or any((s == "train") == (section == "datasets") for s in cls.splits())


def _datasets_section(section: str, user: dict, opts: dict, cfg_path: str, ck: _Checker) -> dict:
    entries: dict[str, list[tuple[Any, str]]] = {}
    for src, origin in ((user, cfg_path), (opts, OPTIONS)):
        value = src.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            ck.problems.append(f"{section} in {origin}: expected a mapping of dataset name -> settings")
            continue
        for name, entry in value.items():
            entries.setdefault(name, []).append((entry, origin))
    out = {}
    for name, parts in entries.items():
        builder = next((p.get("builder") for p, _ in reversed(parts) if isinstance(p, dict) and p.get("builder")), name)
        try:
            cls: type[DatasetConfigurable] = DATASETS.get(builder, suggest=_fits(section))
        except KeyError as e:
            ck.problems.append(f"{section}.{name} in {parts[0][1]}: {e.args[0]}")
            continue
        dpath = PACKAGE_DIR / cls.DEFAULT_CONFIG_PATH
        parts = [(read_yaml(dpath).get("datasets", {}).get(cls.registry_name, {}), str(dpath))] + parts
        entry = ck.merged(parts, cls.SCHEMA, f"{section}.{name}.")
        entry["builder"] = cls.registry_name
        ck.complete(entry, cls.SCHEMA, f"{section}.{name}.")
        out[name] = entry
    return out


def _custom_imports(user: dict, opts: dict, cfg_path: str) -> list[str]:
    """Import the modules listed under ``custom_imports`` (YAML, then ``--options``); returns them."""
    modules: list[str] = []
    for src, origin in ((user, cfg_path), (opts, OPTIONS)):
        value = src.get(CUSTOM_IMPORTS)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
            raise ConfigError([f"{CUSTOM_IMPORTS} in {origin}: expected a list of module names, e.g. [minigpt4.testing], got {value!r}"])
        for module in value:
            try:
                import_modules([module])
            except ImportError as e:
                raise ConfigError([f"{CUSTOM_IMPORTS} in {origin}: cannot import {module!r}: {type(e).__name__}: {e}"]) from None
            if module not in modules:
                modules.append(module)
    return modules


def _run_schema(user: dict, opts: dict, cfg_path: str, ck: _Checker) -> Mapping[str, Key]:
    """The ``run`` section's schema: the one of the runner it names."""
    name = _get(opts, "run", "runner") or _get(user, "run", "runner") or DEFAULT_RUNNER
    try:
        return RUNNERS.get(name).SCHEMA
    except KeyError as e:
        ck.problems.append(f"run.runner in {OPTIONS if _get(opts, 'run', 'runner') else cfg_path}: {e.args[0]}")
        return RUNNERS.get(DEFAULT_RUNNER).SCHEMA


def _image_size_problems(model: dict | None, sections: dict[str, dict], ck: _Checker) -> list[str]:
    """Each dataset's image processor must give the images the model's ViT is sized for (training
    uses an entry's ``train`` processor, evaluation its ``eval`` one)."""
    size = (model or {}).get("image_size")
    if size is None:
        return []
    problems = []
    for section, which in (("datasets", "train"), ("evaluation_datasets", "eval")):
        for name, entry in sections[section].items():
            proc = (entry.get("vis_processor") or {}).get(which) or {}
            if "image_size" in proc and proc["image_size"] != size:
                key = f"{section}.{name}.vis_processor"
                problems.append(
                    f"{key}.{which}.image_size is {proc['image_size']} (set in {ck.origins.get(key, 'defaults')}) but "
                    f"model.image_size is {size} (set in {ck.origins.get('model.image_size', 'defaults')}): the ViT's "
                    "position embeddings are sized for model.image_size; give both the same value"
                )
    return problems


def _batch_size_problems(datasets: dict[str, dict], run: dict, ck: _Checker) -> list[str]:
    """Newer official configs give the batch size per dataset (``datasets.<name>.batch_size``), older
    ones and ours in ``run.batch_size_train``: map the first onto the second; they must agree."""
    given = {name: b for name, entry in datasets.items() if (b := entry.pop("batch_size", None)) is not None}
    if not given:
        return []
    where = ", ".join(f"datasets.{n}.batch_size = {b} ({ck.origins.get(f'datasets.{n}.batch_size')})" for n, b in given.items())
    if len(set(given.values())) > 1:
        return [f"{where}: one batch size is used for every dataset here; give them the same value (or set run.batch_size_train instead)"]
    size = next(iter(given.values()))
    if "run.batch_size_train" in ck.origins and run.get("batch_size_train") != size:
        return [
            f"{where} but run.batch_size_train = {run.get('batch_size_train')} "
            f"({ck.origins['run.batch_size_train']}): give one of them, or the same value"
        ]
    run["batch_size_train"] = size
    ck.notes.append(f"{where}: used as run.batch_size_train (the official per-dataset batch size)")
    return []


def _report(ck: _Checker) -> None:
    """Log the notes, then raise ``ConfigError`` for any problem."""
    for note in ck.notes:  # before any error: they explain what was read (e.g. a default evaluation dataset)
        log.info(note)
    for note in ck.ignored:
        log.warning(note)
    if ck.problems:
        raise ConfigError(ck.problems)


def load_model_config(cfg_path: str | Path, options: Iterable[str] | None = None) -> DictConfig:
    """The validated ``model`` section of ``cfg_path`` with ``options`` (its ``custom_imports`` imported;
    the other sections are not read: e.g. a run's ``config.yaml`` whose data has moved)."""
    user, opts = read_yaml(cfg_path), parse_options(options)
    _custom_imports(user, opts, str(cfg_path))
    ck = _Checker()
    model = _model_section(user, opts, str(cfg_path), ck)
    _report(ck)
    return OmegaConf.create(model)


def load_config(cfg_path: str | Path, options: Iterable[str] | None = None, evaluation: bool = False) -> DictConfig:
    """The merged, validated run config of ``cfg_path`` with ``options`` (``key=value``) applied.

    ``custom_imports`` modules are imported first, so the components they register can be named.
    Official names (arch, model_type) become the canonical ones, official keys that have no effect
    here are dropped, and both are logged. ``evaluation``: the config of an evaluation, whose
    ``datasets`` section is not used (dropped, logged) and whose ``evaluation_datasets`` default to
    ``flickr30k_eval`` with its defaults (as in the official eval configs, which have none).
    Raises ``ConfigError`` listing every problem (key, source file, what is allowed).
    """
    cfg_path = str(cfg_path)
    user = read_yaml(cfg_path)
    opts = parse_options(options)
    imports = _custom_imports(user, opts, cfg_path)
    ck = _Checker()
    for src, origin in ((user, cfg_path), (opts, OPTIONS)):
        for name in src:
            if name not in SECTIONS:
                ck.problems.append(f"{name} in {origin}: unknown section. Allowed sections: {', '.join(SECTIONS)}")
    if "model" not in user and "model" not in opts:
        ck.problems.append(f"{cfg_path}: the 'model' section is missing")
    if evaluation:
        for src, origin in ((user, cfg_path), (opts, OPTIONS)):
            if src.pop("datasets", None) is not None:
                ck.notes.append(f"datasets in {origin}: not used by the evaluation (it scores evaluation_datasets)")
        if user.get("evaluation_datasets") is None and opts.get("evaluation_datasets") is None:
            user["evaluation_datasets"] = {DEFAULT_EVALUATION: {}}
            ck.notes.append(
                f"{cfg_path} has no evaluation_datasets: scoring {DEFAULT_EVALUATION} with its defaults "
                f"(set evaluation_datasets.{DEFAULT_EVALUATION}.build_info to its files)"
            )
    ck.problems += seed_project.problems(user, cfg_path) + seed_project.problems(opts, OPTIONS)
    model = _model_section(user, opts, cfg_path, ck)
    datasets = _datasets_section("datasets", user, opts, cfg_path, ck)
    eval_datasets = _datasets_section("evaluation_datasets", user, opts, cfg_path, ck)
    run_schema = _run_schema(user, opts, cfg_path, ck)
    run = ck.merged([(user.get("run"), cfg_path), (opts.get("run"), OPTIONS)], run_schema, "run.")
    ck.complete(run, run_schema, "run.")
    ck.problems += _batch_size_problems(datasets, run, ck)
    ck.problems += _image_size_problems(model, {"datasets": datasets, "evaluation_datasets": eval_datasets}, ck)
    _report(ck)
    cfg: dict[str, Any] = {CUSTOM_IMPORTS: imports} if imports else {}
    cfg.update({"model": model, "datasets": datasets, "run": run})
    if eval_datasets:
        cfg["evaluation_datasets"] = eval_datasets
    return OmegaConf.create(cfg)
