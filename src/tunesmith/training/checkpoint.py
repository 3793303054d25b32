"""Checkpoints that rebuild themselves, without pickle.

A checkpoint is a folder::

    model.safetensors   the model's weights (safetensors: tensors only, no code)
    config.json         model name and config, representation and its config, the data's
                        DataInfo (``data_info``), the output mask (``output_mask``: what
                        never occurs in the training data), corpus and split, training
                        metadata, library versions

:func:`load_checkpoint` rebuilds the model from these two files alone through the
registry (nanoGPT keeps ``model_args`` beside the weights for the same reason). Nothing
here ever calls ``torch.load`` or unpickles anything.

The trainer's in-progress state (``last/`` of a run) adds optimiser and scheduler states,
flattened into ``optimizer.safetensors`` + ``optimizer.json``, see
:func:`save_optimizer_states` / :func:`load_optimizer_states`.

A checkpoint may also be named ``pretrained:NAME``: one of the checkpoints shipped in the
package (``tunesmith/pretrained/NAME/``, see :mod:`tunesmith.pretrained`).
:func:`resolve_checkpoint` turns that name into the folder, in this one place, so every
command that takes a checkpoint takes a shipped one too.

Every file is checked before it is used, here and nowhere else: weights must have the
model's names, shapes and dtypes and be finite (:func:`check_tensor`); JSON states must
have the structure of a freshly made state of the same kind (:func:`check_like`); a config
whose weights would not fit in memory is refused before anything is allocated
(:func:`model_size_problem`). Each failure is one :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import tunesmith
from tunesmith.errors import CheckpointError, ConfigError, TunesmithError
from tunesmith.models import registry
from tunesmith.models.base import GenerativeModel
from tunesmith.representations.adapter import get_representation
from tunesmith.representations.info import DataInfo
from tunesmith.representations.output_mask import OutputMask

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "tunesmith-checkpoint"
FORMAT_VERSION = 1
#: ``pretrained:NAME`` names a checkpoint shipped in the package
PRETRAINED_PREFIX = "pretrained:"
#: a shipped model's card (tunesmith.pretrained); its ``sampling`` entry, when present, holds
#: the controls the model samples with unless told otherwise (:func:`sampling_defaults`)
CARD_FILE = "card.json"
#: the controls a card's ``sampling`` may set (the fields of SamplingControls but the seed)
SAMPLING_DEFAULT_KEYS = ("temperature", "top_k", "top_p", "threshold", "max_notes_per_step",
                         "max_sustain_steps")
#: where the shipped checkpoints are: package data of :mod:`tunesmith.pretrained` (a plain
#: folder here, so resolving a name imports nothing from the layer above)
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"


# ----------------------------------------------------------------------------- helpers


def library_versions() -> dict[str, str]:
    """Versions of the libraries that matter to reproduce a run."""
    import pytorch_lightning
    import symusic

    return {
        "tunesmith": tunesmith.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "symusic": symusic.__version__,
        "python": platform.python_version(),
    }


def jsonable(value: Any) -> Any:
    """``value`` with numpy/torch scalars, tuples and paths made JSON-friendly."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy scalar
    if hasattr(value, "tolist"):
        return value.tolist()  # numpy array
    return value  # NaN and inf are written as NaN/Infinity, which json reads back


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(path, "expected a JSON object")
    return data


# ----------------------------------------------------------------------------- checks


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def check_tensor(path: Path, what: str, tensor: torch.Tensor, reference: torch.Tensor) -> None:
    """Refuse ``tensor`` (``what``, e.g. "weight head.bias", read from ``path``) unless it
    has ``reference``'s dtype and shape and, where ``reference`` is finite, finite values."""
    if tensor.dtype != reference.dtype:
        raise CheckpointError(path, f"{what} is {_dtype(tensor)}, expected {_dtype(reference)}")
    if tuple(tensor.shape) != tuple(reference.shape):
        raise CheckpointError(path, f"{what} has shape {tuple(tensor.shape)}, "
                              f"expected {tuple(reference.shape)}")
    finite = tensor.is_floating_point() and bool(torch.isfinite(tensor).all())
    if tensor.is_floating_point() and not finite and bool(torch.isfinite(reference).all()):
        raise CheckpointError(path, f"{what} holds NaN or infinite values")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def check_like(value: Any, reference: Any, path: Path, where: str = "") -> None:
    """Refuse JSON ``value`` unless it is shaped like ``reference`` (a fresh state of the
    same kind): the same keys, list lengths and kinds of leaves; integers where the
    reference has integers (not negative where it is not); no NaN, and infinity only
    where the reference is infinite."""
    at = f" at {where}" if where else ""
    if isinstance(reference, dict):
        if not isinstance(value, dict):
            raise CheckpointError(path, f"expected an object{at}, found {_kind(value)}")
        missing = [str(k) for k in reference if str(k) not in value and k not in value]
        extra = [k for k in value if k not in reference and k not in map(str, reference)]
        if missing:
            raise CheckpointError(path, f"missing key(s) {', '.join(missing[:5])}{at}")
        if extra:
            raise CheckpointError(path, f"unexpected key(s) {', '.join(map(str, extra[:5]))}{at}")
        for key, ref in reference.items():
            sub = value[key] if key in value else value[str(key)]
            check_like(sub, ref, path, f"{where}.{key}" if where else str(key))
    elif isinstance(reference, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(reference):
            raise CheckpointError(path, f"expected a list of {len(reference)}{at}, "
                                  f"found {_kind(value)}")
        for i, (sub, ref) in enumerate(zip(value, reference, strict=True)):
            check_like(sub, ref, path, f"{where}[{i}]")
    elif isinstance(reference, bool):
        if not isinstance(value, bool):
            raise CheckpointError(path, f"expected a boolean{at}, found {_kind(value)}")
    elif isinstance(reference, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointError(path, f"expected an integer{at}, found {_kind(value)}")
        if value < 0 <= reference:  # counts stay counts
            raise CheckpointError(path, f"negative value {value}{at}")
    elif isinstance(reference, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(path, f"expected a number{at}, found {_kind(value)}")
        if math.isnan(value) or (math.isinf(value) and not math.isinf(reference)):
            raise CheckpointError(path, f"{value} is not allowed{at}")
    elif isinstance(reference, str):
        if not isinstance(value, str):
            raise CheckpointError(path, f"expected a string{at}, found {_kind(value)}")
    elif reference is None:
        if not (value is None or isinstance(value, (bool, int, float))):
            raise CheckpointError(path, f"expected null or a number{at}, found {_kind(value)}")
        if isinstance(value, float) and math.isnan(value):
            raise CheckpointError(path, f"NaN is not allowed{at}")


def require_fields(data: dict, fields: dict[str, tuple], path: Path) -> None:
    """Refuse ``data`` unless each field is present with one of its types (an ``int``
    field also refuses booleans and negative values; a ``float`` one NaN)."""
    for name, types in fields.items():
        if name not in data:
            raise CheckpointError(path, f"missing field {name!r}")
        value = data[name]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if ok and int in types and isinstance(value, int) and value < 0:
            raise CheckpointError(path, f"field {name!r} is negative ({value})")
        if ok and isinstance(value, float) and math.isnan(value):
            ok = False
        if not ok:
            wanted = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(path, f"field {name!r} must be {wanted}, found {_kind(value)}")


def memory_bytes() -> int:
    """This machine's physical memory (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""


def model_size_problem(build: Callable[[], torch.nn.Module]) -> str | None:
    """Why the model ``build()`` makes would not fit in memory, or None.

    The model is built on PyTorch's meta device first (shapes only, nothing allocated),
    so a config asking for terabytes is refused in milliseconds.
    """
    try:
        with torch.device("meta"):
            probe = build()
    except TunesmithError:
        raise
    except (RuntimeError, TypeError, ValueError, OverflowError) as exc:
        if "overflow" in str(exc).lower():
            return "the config asks for sizes beyond what PyTorch can index (overflow)"
        return None  # a model that cannot be built on the meta device: the real build decides
    tensors = itertools.chain(probe.parameters(), probe.buffers())
    n_bytes = sum(t.numel() * t.element_size() for t in tensors)
    available = memory_bytes()
    if available and n_bytes > available:
        n_params = sum(p.numel() for p in probe.parameters())
        return (f"the config asks for {n_params:.3g} parameters ({_size(n_bytes)} of weights); "
                f"this machine has {_size(available)} of memory")
    return None


def build_model(build: Callable[[], torch.nn.Module], path: Path):
    """``build()``, refused with a :class:`CheckpointError` naming ``path`` (the config it
    came from) when the model would not fit in memory or cannot be allocated."""
    problem = model_size_problem(build)
    if problem:
        raise CheckpointError(path, problem)
    try:
        return build()
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, MemoryError) or "allocate" in str(exc):
            raise CheckpointError(path, "not enough memory to build the model "
                                  f"({first_line(exc)})") from exc
        raise


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (PyTorch's run on with C++ frames)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _state_dict_for_saving(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with tied (shared-storage) tensors stored once, all contiguous on CPU."""
    state = module.state_dict()
    seen: dict[tuple, str] = {}
    out = {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tensor.device.type)
        if tensor.numel() and key in seen:
            continue  # alias of an earlier tensor (tied weights): restored by load_state_dict
        seen[key] = name
        out[name] = tensor.detach().to("cpu").contiguous().clone()
    return out


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None):
    tmp = path.with_name(path.name + ".tmp")
    save_file(_state_dict_for_saving(module), str(tmp), metadata=metadata)
    tmp.replace(path)


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into ``module``, checking names, shapes, dtypes and
    values first (see :func:`check_tensor`)."""
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, "corrupt or unreadable safetensors file "
                              f"({first_line(exc)})") from exc
    expected = module.state_dict()
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(
            path, f"weights {', '.join(unexpected[:5])} do not belong to this model "
            f"({len(unexpected)} unexpected tensor(s))"
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                path, f"weight {name} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(expected[name].shape)}"
            )
        check_tensor(path, f"weight {name}", tensor, expected[name])
    # a name may be absent only when it aliases a stored tensor (tied weights)
    stored_ptrs = {expected[name].data_ptr() for name in tensors}
    missing = sorted(
        name for name in set(expected) - set(tensors)
        if expected[name].data_ptr() not in stored_ptrs or expected[name].numel() == 0
    )
    if missing:
        raise CheckpointError(
            path, f"missing weights {', '.join(missing[:5])} ({len(missing)} missing tensor(s))"
        )
    module.load_state_dict(tensors, strict=False)


# ----------------------------------------------------------------------------- model checkpoints


def save_checkpoint(
    directory: str | Path,
    model,
    *,
    model_name: str,
    data_info: DataInfo | None = None,
    corpus: Any = None,
    split: Any = None,
    training: dict | None = None,
) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/config.json``; return the folder.

    ``model`` is a :class:`~tunesmith.models.base.GenerativeModel`; ``data_info`` is the
    prepared data's :class:`DataInfo` (representation, its config and sizes), read back
    by :func:`checkpoint_data_info`; ``corpus``/``split`` say what the model was trained
    on; ``training`` holds epochs, steps, best validation loss, wall time and the
    training options. The model's output mask (what never occurs in its training data,
    :class:`OutputMask`) is stored beside the data info, read back by
    :func:`checkpoint_output_mask`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if data_info is not None and not isinstance(data_info, DataInfo):
        raise TypeError(f"data_info must be a DataInfo, got {type(data_info).__name__}")
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "family": type(model).family or model_name,
        "model_config": model.config.to_dict(),
        "n_parameters": model.n_parameters(),
        "representation": data_info.representation if data_info else type(model).representation,
        "repr_config": data_info.repr_config if data_info else None,
        "data_info": data_info.to_dict() if data_info else None,
        "output_mask": mask.to_dict() if (mask := getattr(model, "output_mask", None)) else None,
        "corpus": corpus,
        "split": split,
        "training": training or {},
        "versions": library_versions(),
    }
    save_weights(model, directory / WEIGHTS_FILE, metadata={"format": FORMAT_NAME})
    write_json(directory / CONFIG_FILE, config)
    return directory


def pretrained_names() -> list[str]:
    """Names of the checkpoints shipped in the package, sorted."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir()
                  if (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file())


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The folder of a checkpoint: ``pretrained:NAME`` becomes the shipped model's folder,
    any other path is returned as it is. An unknown name is one :class:`ConfigError`
    listing the shipped models."""
    text = str(checkpoint)
    if not text.startswith(PRETRAINED_PREFIX):
        return Path(checkpoint)
    name = text[len(PRETRAINED_PREFIX):]
    names = pretrained_names()
    if name not in names:
        raise ConfigError(f"unknown pretrained model {name!r}; available: "
                          f"{', '.join(names) or '(none shipped)'}")
    return PRETRAINED_DIR / name


def sampling_defaults(directory: str | Path) -> dict:
    """The sampling controls a checkpoint (a folder or ``pretrained:NAME``) is drawn with
    unless the caller sets them: its card's ``sampling.controls`` (keys of
    :data:`SAMPLING_DEFAULT_KEYS`), or ``{}`` when it has no card or the card names none
    (then :class:`~tunesmith.models.sampling.SamplingControls`' own defaults hold). A card
    naming an unknown control is a one-line :class:`CheckpointError`."""
    card_path = resolve_checkpoint(directory) / CARD_FILE
    if not card_path.is_file():
        return {}
    sampling = read_json(card_path).get("sampling") or {}
    controls = sampling.get("controls") if isinstance(sampling, dict) else None
    if not isinstance(controls, dict):
        return {}
    unknown = sorted(set(controls) - set(SAMPLING_DEFAULT_KEYS))
    if unknown:
        raise CheckpointError(card_path, f"sampling.controls names unknown control(s) "
                              f"{', '.join(unknown)}; expected {', '.join(SAMPLING_DEFAULT_KEYS)}")
    return dict(controls)


def read_checkpoint_config(directory: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder (or ``pretrained:NAME``),
    checked for the fields we need."""
    directory = resolve_checkpoint(directory)
    if not directory.exists():
        raise CheckpointError(directory, "no such checkpoint folder")
    if not directory.is_dir():
        raise CheckpointError(directory, "a checkpoint is a folder (with model.safetensors "
                              "and config.json), not a file")
    config_path = directory / CONFIG_FILE
    meta = read_json(config_path)
    require_fields(meta, {"model_name": (str,), "model_config": (dict,)}, config_path)
    return meta


def checkpoint_data_info(meta: dict, path: str | Path = CONFIG_FILE) -> DataInfo | None:
    """The DataInfo of a checkpoint's parsed ``config.json`` (None when it records none).

    Checkpoints written before DataInfo hold a plain dict, converted by
    :meth:`DataInfo.from_legacy_dict`. Raises :class:`CheckpointError` naming ``path``.
    """
    stored = meta.get("data_info")
    if not stored:  # None, or {} from checkpoints saved without data
        return None
    try:
        return DataInfo.read(stored)
    except ConfigError as exc:
        raise CheckpointError(path, str(exc)) from exc


def checkpoint_output_mask(meta: dict, path: str | Path = CONFIG_FILE) -> OutputMask | None:
    """The output mask of a checkpoint's parsed ``config.json``; None for checkpoints
    written before masks (their models may emit everything). Raises
    :class:`CheckpointError` naming ``path`` for a damaged one."""
    stored = meta.get("output_mask")
    if stored is None:
        return None
    try:
        mask = OutputMask.from_dict(stored)
    except ConfigError as exc:
        raise CheckpointError(path, str(exc)) from exc
    info = checkpoint_data_info(meta, path)
    if info is not None:
        outputs = get_representation(info.representation).outputs(info)
        if (mask.representation, mask.size) != (info.representation, outputs):
            raise CheckpointError(path, f"the output mask is for {mask.size} "
                                  f"{mask.representation} outputs, the data has {outputs} "
                                  f"{info.representation} outputs")
    return mask


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a model from a checkpoint folder (or ``pretrained:NAME``, a shipped one):
    returns ``(model, meta)`` in eval mode.

    ``meta`` is the parsed ``config.json``. Raises :class:`CheckpointError` naming the
    file and the reason for a missing folder or file, invalid JSON, an unknown model,
    an invalid config, corrupt weights or weights of the wrong shapes.
    """
    directory = resolve_checkpoint(directory)
    meta = read_checkpoint_config(directory)
    config_path = directory / CONFIG_FILE
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(weights_path, "no such file")
    try:
        cls = registry.get_family(meta["model_name"])
        config = cls.config_class.from_saved(meta["model_config"])
        model = build_model(lambda: cls(config), config_path)
    except CheckpointError:
        raise
    except TunesmithError as exc:
        raise CheckpointError(config_path, str(exc)) from exc
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(config_path, f"invalid model config ({first_line(exc)})") from exc
    checkpoint_data_info(meta, config_path)  # a damaged data info fails here, not later
    mask = checkpoint_output_mask(meta, config_path)
    load_weights(model, weights_path)
    model.to(device)
    try:
        model.set_output_mask(mask)
    except ConfigError as exc:
        raise CheckpointError(config_path, str(exc)) from exc
    model.eval()
    return model, meta


def checkpoint_model_options(checkpoint: str | Path) -> tuple[str, dict]:
    """``(model name, model config)`` a checkpoint (a run folder or pretrained:NAME) was
    saved with: what a fine-tuning run builds when given no model of its own."""
    directory = resolve_checkpoint(checkpoint)
    meta = read_checkpoint_config(directory)
    try:
        config = registry.get_family(meta["model_name"]).config_class.from_saved(
            meta["model_config"])
    except TunesmithError as exc:
        raise CheckpointError(directory / CONFIG_FILE, str(exc)) from exc
    return meta["model_name"], config.to_dict()


def load_initial_weights(model: GenerativeModel, checkpoint: str | Path) -> None:
    """Start ``model`` from the weights of ``checkpoint`` (fine-tuning). The checkpoint
    must hold the same family with the same config (data-derived sizes included), else a
    :class:`CheckpointError` names the options that differ."""
    directory = resolve_checkpoint(checkpoint)
    source, meta = load_checkpoint(directory)
    where = directory / CONFIG_FILE
    if type(source) is not type(model):
        raise CheckpointError(where, f"holds a {meta['model_name']!r} model; this run trains "
                              f"{getattr(model, 'family', type(model).__name__)!r}")
    mine, saved = model.config.to_dict(), source.config.to_dict()
    differ = [f"{k} {saved.get(k)!r} (this run: {v!r})" for k, v in mine.items()
              if saved.get(k) != v]
    if differ:
        raise CheckpointError(where, "its model differs from the one this run builds: "
                              + "; ".join(differ))
    model.load_state_dict(source.state_dict())


# ----------------------------------------------------------------------------- optimiser states


def save_optimizer_states(optimizers: list[torch.optim.Optimizer], directory: Path) -> None:
    """Optimiser states as ``optimizer.safetensors`` (tensors) + ``optimizer.json`` (the rest).

    ``Optimizer.state_dict()`` is ``{"state": {param_index: {name: tensor|scalar}},
    "param_groups": [...]}``; tensors go to safetensors under ``"{i}.{param}.{name}"``,
    everything else to JSON.
    """
    tensors: dict[str, torch.Tensor] = {}
    structure = []
    for i, optimizer in enumerate(optimizers):
        state_dict = optimizer.state_dict()
        scalars: dict[str, dict] = {}
        tensor_names: dict[str, list[str]] = {}
        for param_id, param_state in state_dict["state"].items():
            for name, value in param_state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{i}.{param_id}.{name}"] = value.detach().cpu().contiguous().clone()
                    tensor_names.setdefault(str(param_id), []).append(name)
                else:
                    scalars.setdefault(str(param_id), {})[name] = value
        structure.append({
            "class": type(optimizer).__name__,
            "param_groups": state_dict["param_groups"],
            "scalars": scalars,
            "tensors": tensor_names,
        })
    save_file(tensors, str(directory / "optimizer.safetensors"))
    write_json(directory / "optimizer.json", {"optimizers": structure})


def load_optimizer_states(optimizers: list[torch.optim.Optimizer], directory: Path) -> None:
    """Restore what :func:`save_optimizer_states` wrote into freshly built optimisers.

    Refuses (one :class:`CheckpointError`) a JSON part not shaped like the optimisers'
    own, a missing or unexpected tensor, and a state tensor that is not finite or whose
    shape and dtype differ from its parameter's (scalars such as Adam's ``step`` aside).
    """
    json_path = directory / "optimizer.json"
    tensor_path = directory / "optimizer.safetensors"
    data = read_json(json_path)
    require_fields(data, {"optimizers": (list,)}, json_path)
    structure = data["optimizers"]
    if len(structure) != len(optimizers):
        raise CheckpointError(
            json_path, f"holds {len(structure)} optimiser state(s), the model has {len(optimizers)}"
        )
    try:
        tensors = load_file(str(tensor_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(tensor_path, f"corrupt or unreadable ({first_line(exc)})") from exc
    expected_keys: set[str] = set()
    states = []
    for i, (optimizer, saved) in enumerate(zip(optimizers, structure, strict=True)):
        fresh = optimizer.state_dict()
        reference = {"class": type(optimizer).__name__, "param_groups": fresh["param_groups"]}
        if not isinstance(saved, dict):
            raise CheckpointError(json_path, f"optimiser {i} must be an object")
        require_fields(saved, {"class": (str,), "param_groups": (list,), "scalars": (dict,),
                               "tensors": (dict,)}, json_path)
        if saved["class"] != reference["class"]:
            raise CheckpointError(
                json_path, f"optimiser {i} was {saved['class']}, now {reference['class']}"
            )
        check_like(saved["param_groups"], reference["param_groups"], json_path,
                   f"optimizers[{i}].param_groups")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        state: dict[int, dict] = {}
        for param_id, names in saved["tensors"].items():
            param = _param_of(params, param_id, json_path, i)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise CheckpointError(json_path, f"optimiser {i}: tensors of {param_id} must be "
                                      "a list of names")
            for name in names:
                key = f"{i}.{param_id}.{name}"
                expected_keys.add(key)
                if key not in tensors:
                    raise CheckpointError(tensor_path, f"missing tensor {key}")
                tensor = tensors[key]
                if tensor.ndim == 0:  # a step count
                    check_tensor(tensor_path, f"tensor {key}", tensor, tensor.new_zeros(()))
                else:
                    check_tensor(tensor_path, f"tensor {key}", tensor, param.detach())
                state.setdefault(int(param_id), {})[name] = tensor
        for param_id, values in saved["scalars"].items():
            _param_of(params, param_id, json_path, i)
            if not isinstance(values, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values.values()):
                raise CheckpointError(json_path, f"optimiser {i}: scalars of {param_id} must be "
                                      "finite numbers")
            state.setdefault(int(param_id), {}).update(values)
        states.append({"state": state, "param_groups": saved["param_groups"]})
    unexpected = sorted(set(tensors) - expected_keys)
    if unexpected:
        raise CheckpointError(tensor_path, f"unexpected tensor(s) {', '.join(unexpected[:5])}")
    for i, (optimizer, state_dict) in enumerate(zip(optimizers, states, strict=True)):
        try:
            optimizer.load_state_dict(state_dict)
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise CheckpointError(json_path, f"optimiser {i} state does not fit "
                                  f"({first_line(exc)})") from exc


def _param_of(params: list, param_id: str, path: Path, i: int):
    if not param_id.isdigit() or int(param_id) >= len(params):
        raise CheckpointError(path, f"optimiser {i} has no parameter {param_id!r}")
    return params[int(param_id)]
