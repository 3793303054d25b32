"""Checkpoints that rebuild themselves, without pickle.

A checkpoint is a folder::

    model.safetensors   the model's weights (safetensors: tensors only, no code)
    config.json         model name and config, representation and its config, the data's
                        DataInfo (``data_info``), corpus and split, training metadata,
                        library versions

:func:`load_checkpoint` rebuilds the model from these two files alone through the
registry (nanoGPT keeps ``model_args`` beside the weights for the same reason). Nothing
here ever calls ``torch.load`` or unpickles anything.

The trainer's in-progress state (``last/`` of a run) adds optimiser and scheduler states,
flattened into ``optimizer.safetensors`` + ``optimizer.json``, see
:func:`save_optimizer_states` / :func:`load_optimizer_states`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tunesmith.errors import CheckpointError, ConfigError, TunesmithError
from tunesmith.representations.info import DataInfo

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_NAME = "tunesmith-checkpoint"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- helpers


def library_versions() -> dict[str, str]:
    """Versions of the libraries that matter to reproduce a run."""
    import pytorch_lightning
    import symusic

    import tunesmith

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
    """Load safetensors weights into ``module``, checking names and shapes first."""
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"corrupt or unreadable safetensors file ({exc})") from exc
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
    training options.
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
        "corpus": corpus,
        "split": split,
        "training": training or {},
        "versions": library_versions(),
    }
    save_weights(model, directory / WEIGHTS_FILE, metadata={"format": FORMAT_NAME})
    write_json(directory / CONFIG_FILE, config)
    return directory


def read_checkpoint_config(directory: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder, checked for the fields we need."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(directory, "no such checkpoint folder")
    if not directory.is_dir():
        raise CheckpointError(directory, "a checkpoint is a folder (with model.safetensors "
                              "and config.json), not a file")
    config_path = directory / CONFIG_FILE
    meta = read_json(config_path)
    for key in ("model_name", "model_config"):
        if key not in meta:
            raise CheckpointError(config_path, f"missing field {key!r}")
    if not isinstance(meta["model_config"], dict):
        raise CheckpointError(config_path, "field 'model_config' must be an object")
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


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a model from a checkpoint folder: returns ``(model, meta)`` in eval mode.

    ``meta`` is the parsed ``config.json``. Raises :class:`CheckpointError` naming the
    file and the reason for a missing folder or file, invalid JSON, an unknown model,
    an invalid config, corrupt weights or weights of the wrong shapes.
    """
    from tunesmith.models import registry

    directory = Path(directory)
    meta = read_checkpoint_config(directory)
    config_path = directory / CONFIG_FILE
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(weights_path, "no such file")
    try:
        cls = registry.get_family(meta["model_name"])
        config = cls.config_class.from_dict(meta["model_config"])
        model = cls(config)
    except TunesmithError as exc:
        raise CheckpointError(config_path, str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(config_path, f"invalid model config ({exc})") from exc
    checkpoint_data_info(meta, config_path)  # a damaged data info fails here, not later
    load_weights(model, weights_path)
    model.to(device)
    model.eval()
    return model, meta


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
    """Restore what :func:`save_optimizer_states` wrote into freshly built optimisers."""
    json_path = directory / "optimizer.json"
    tensor_path = directory / "optimizer.safetensors"
    structure = read_json(json_path).get("optimizers", [])
    if len(structure) != len(optimizers):
        raise CheckpointError(
            json_path, f"holds {len(structure)} optimiser state(s), the model has {len(optimizers)}"
        )
    try:
        tensors = load_file(str(tensor_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(tensor_path, f"corrupt or unreadable ({exc})") from exc
    for i, (optimizer, saved) in enumerate(zip(optimizers, structure, strict=True)):
        if saved.get("class") != type(optimizer).__name__:
            raise CheckpointError(
                json_path, f"optimiser {i} was {saved.get('class')}, now {type(optimizer).__name__}"
            )
        state: dict[int, dict] = {}
        for param_id, names in saved["tensors"].items():
            for name in names:
                key = f"{i}.{param_id}.{name}"
                if key not in tensors:
                    raise CheckpointError(tensor_path, f"missing tensor {key}")
                state.setdefault(int(param_id), {})[name] = tensors[key]
        for param_id, values in saved["scalars"].items():
            state.setdefault(int(param_id), {}).update(values)
        try:
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(json_path, f"optimiser {i} state does not fit ({exc})") from exc
