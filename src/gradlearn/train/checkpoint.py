"""Checkpoints: safetensors files that resume training exactly, written so a crash never breaks one.

One checkpoint is one safetensors file (no pickle: loading it runs no code):

- the model's weights and buffers under their ``model.state_dict()`` names (``0.weight``,
  ``features.3.bias``), so the file loads as plain weights anywhere safetensors is read
  (``gl.load_weights``, ``safetensors.numpy.load_file``; drop the ``optimizer/`` keys for torch);
- the optimizer's arrays (Adam's moments...) under ``optimizer/<path>``, and any other array
  state (a callback's best weights) under ``<owner>/<path>``;
- in the safetensors metadata (str -> str): ``format``, ``state`` (JSON: the optimizer's and
  the schedule's non-array state, epoch, step, history, every random generator's
  ``bit_generator.state``... with ``{"__tensor__": name}`` where an array was) and ``sha256``,
  a SHA-256 digest over the metadata, the tensor table (names, dtypes, shapes) and every
  tensor's bytes.

Writing (:func:`save_checkpoint`): the bytes go to a temporary file in the same directory,
which is flushed and fsync'ed, then ``os.replace``'d over the final name (atomic on POSIX and
Windows) and the directory fsync'ed: a crash at any moment leaves the previous file whole
and at worst a stray ``.*.tmp`` file.

Reading (:func:`read_checkpoint`) parses the file itself with strict checks (header length,
UTF-8 JSON without duplicate keys, known dtypes, shapes consistent with byte ranges, ranges
contiguous and covering the data exactly) and verifies the digest, so a truncated,
bit-flipped or foreign file raises :class:`CheckpointError` naming the file and the fault.
:func:`load_checkpoint` then checks keys, shapes and dtypes against the model (and the
optimizer's and schedule's classes and array shapes, and the generators' states on scratch
generators) before it copies anything; if a later stage still fails, what was already copied
is rolled back, so on any error the model and optimizer are left as they were.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile

import numpy as np

from .. import backend

FORMAT = "gradlearn.checkpoint/1"
MAX_HEADER_BYTES = 100_000_000

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {d.newbyteorder("<") if d.itemsize > 1 else d: code for code, d in _DTYPES.items()}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, corrupted, or not for this model."""


# JSON trees with arrays split out ---------------------------------------------------------


def _is_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.generic)


def _to_numpy(value):
    if type(value) is not np.ndarray and hasattr(value, "get"):  # a CuPy array
        value = value.get()
    return np.asarray(value, order="C")  # (not ascontiguousarray, which makes a 0-d array 1-d)


def split_tree(obj, prefix: str, tensors: dict):
    """``obj`` as a JSON-serialisable tree; every array moves into ``tensors[prefix/path]``."""
    if _is_array(obj):
        arr = _to_numpy(obj)
        try:
            _code(arr.dtype)
        except (KeyError, TypeError):
            raise TypeError(f"checkpoint: cannot store array '{prefix}' of dtype {arr.dtype}") from None
        tensors[prefix] = arr
        return {"__tensor__": prefix}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") and k.endswith("__") for k in obj):
            return {k: split_tree(v, f"{prefix}/{k}", tensors) for k, v in obj.items()}
        items = []
        for i, (k, v) in enumerate(obj.items()):
            if not (k is None or isinstance(k, (bool, int, float, str))):
                raise TypeError(f"checkpoint: cannot store a dict key of type {type(k).__name__} at '{prefix}'")
            items.append([k, split_tree(v, f"{prefix}/{i}", tensors)])
        return {"__items__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [split_tree(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split_tree(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at '{prefix}' (only arrays and JSON values)")


def join_tree(obj, tensors: dict, copy: bool = True):
    """The inverse of :func:`split_tree`: references replaced by (copies of) the arrays."""
    if isinstance(obj, list):
        return [join_tree(v, tensors, copy) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            name = obj["__tensor__"]
            if name not in tensors:
                raise KeyError(name)
            return tensors[name].copy() if copy else tensors[name]
        if set(obj) == {"__tuple__"}:
            return tuple(join_tree(v, tensors, copy) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {k if not isinstance(k, list) else tuple(k): join_tree(v, tensors, copy) for k, v in obj["__items__"]}
        return {k: join_tree(v, tensors, copy) for k, v in obj.items()}
    return obj


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode("utf-8")


def _digest(metadata: dict, tensors: dict) -> str:
    h = hashlib.sha256()
    table = [[name, _code(arr.dtype), list(arr.shape)] for name, arr in sorted(tensors.items())]
    h.update(_canonical({"metadata": {k: v for k, v in metadata.items() if k != "sha256"}, "tensors": table}))
    for name in sorted(tensors):
        h.update(np.ascontiguousarray(tensors[name]).reshape(-1).view(np.uint8))
    return h.hexdigest()


def _code(dtype) -> str:
    d = np.dtype(dtype)
    d = d.newbyteorder("<") if d.itemsize > 1 else d
    return _CODES[d]


# generators -------------------------------------------------------------------------------


def module_generators(model) -> dict:
    """Every ``numpy.random.Generator`` attribute of the model's modules, keyed ``path.attr``."""
    found = {}
    for mod_name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"{mod_name}.{attr}" if mod_name else attr] = value
    return found


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    return obj


def generator_state(generator: np.random.Generator):
    """The generator's ``bit_generator.state`` as plain JSON values (arrays as lists)."""
    return _plain(generator.bit_generator.state)


def check_generator_state(generator: np.random.Generator, state, what: str):
    """Try ``state`` on a scratch bit generator of the same kind; return the state to set."""
    try:
        state = join_tree(state, {})
        scratch = type(generator.bit_generator)()
        scratch.state = state
    except Exception as exc:
        raise ValueError(f"the saved state of generator '{what}' does not fit a {type(generator.bit_generator).__name__}: {exc}") from None
    return state


# writing ----------------------------------------------------------------------------------


def atomic_write(path, data) -> None:
    """Write ``data`` to ``path`` through a fsync'ed temporary file and ``os.replace``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def encode(tensors: dict, state: dict) -> bytes:
    """The safetensors bytes of ``tensors`` with ``state`` (JSON) and its digest in the metadata."""
    from safetensors.numpy import save

    metadata = {"format": FORMAT, "state": json.dumps(state, allow_nan=True, separators=(",", ":"))}
    metadata["sha256"] = _digest(metadata, tensors)
    return save({k: np.asarray(v, order="C") for k, v in tensors.items()}, metadata=metadata)


def checkpoint_bytes(model, optimizer=None, schedule=None, extra=None) -> bytes:
    """The bytes :func:`save_checkpoint` would write (to stage a checkpoint in memory)."""
    return encode(*_collect(model, optimizer, schedule, extra))


def save_checkpoint(path, model, optimizer=None, schedule=None, extra=None) -> str:
    """Write ``model`` (and the optimizer's and schedule's state, the generators, ``extra``) to ``path``.

    ``extra`` is any tree of JSON values and arrays (the Trainer puts epoch, step, history,
    its shuffling generator and callbacks' states there). Returns ``path``.
    """
    tensors, state = _collect(model, optimizer, schedule, extra)
    atomic_write(path, encode(tensors, state))
    return os.fspath(path)


def save_weights(path, model) -> str:
    """Write only the model's ``state_dict`` (with the digest) to a safetensors file."""
    tensors = {k: _to_numpy(v) for k, v in model.state_dict().items()}
    state = {"model": {k: {"__tensor__": k} for k in tensors}}
    atomic_write(path, encode(tensors, state))
    return os.fspath(path)


def _collect(model, optimizer, schedule, extra):
    tensors = {k: _to_numpy(v) for k, v in model.state_dict().items()}
    for k in tensors:
        if "/" in k:
            raise ValueError(f"save_checkpoint: state_dict key {k!r} contains '/', which checkpoints reserve")
    state = {"model": {k: {"__tensor__": k} for k in tensors}}
    if optimizer is not None:
        state["optimizer"] = {"class": type(optimizer).__name__, "state": split_tree(optimizer.state_dict(), "optimizer", tensors)}
    if schedule is not None:
        state["schedule"] = {"class": type(schedule).__name__, "state": split_tree(schedule.state_dict(), "schedule", tensors)}
    state["generators"] = {name: generator_state(g) for name, g in module_generators(model).items()}
    state["default_generator"] = generator_state(backend.default_generator())
    if extra is not None:
        state["extra"] = split_tree(extra, "extra", tensors)
    return tensors, state


# reading ----------------------------------------------------------------------------------


class CheckpointFile:
    """A parsed, verified checkpoint: ``path``, ``tensors`` (read-only arrays), ``state`` (the JSON tree)."""

    def __init__(self, path, tensors, metadata, state):
        self.path = path
        self.tensors = tensors
        self.metadata = metadata
        self.state = state

    @property
    def extra(self):
        return join_tree(self.state.get("extra"), self.tensors)

    def __repr__(self):
        return f"CheckpointFile({self.path!r}, {len(self.tensors)} tensors)"


def _fail(path, message):
    return CheckpointError(f"checkpoint {os.fspath(path)!r}: {message}")


def parse_safetensors(path):
    """(tensors, metadata) of a safetensors file, every structural rule checked; CheckpointError otherwise."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(blob) < 8:
        raise _fail(path, f"is not a safetensors file: {len(blob)} bytes, less than the 8-byte header length (truncated?)")
    header_len = int.from_bytes(blob[:8], "little")
    if header_len > MAX_HEADER_BYTES or header_len > len(blob) - 8:
        raise _fail(
            path,
            f"is not a safetensors file or is truncated: its header claims {header_len} bytes, "
            f"the file holds {len(blob) - 8} after the length",
        )
    try:
        header = json.loads(blob[8 : 8 + header_len].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(path, f"is not a safetensors file or its header is corrupted (the header is not valid JSON: {exc})") from None
    if not isinstance(header, dict):
        raise _fail(path, "has a corrupted header: expected a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _fail(path, "has corrupted metadata: expected a map of strings to strings")
    data = memoryview(blob)[8 + header_len :]
    ranges, tensors = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _fail(path, f"has a corrupted entry for tensor {name!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPES:
            raise _fail(path, f"tensor {name!r} has an unknown or unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise _fail(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise _fail(path, f"tensor {name!r} has invalid data offsets {offsets!r}")
        begin, end = offsets
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize
        if not 0 <= begin <= end or end - begin != nbytes:
            raise _fail(path, f"tensor {name!r} of shape {tuple(shape)} {dtype} needs {nbytes} bytes, its offsets give {end - begin}")
        ranges.append((begin, end, name))
        tensors[name] = (dtype, tuple(shape), begin, end)
    position = 0
    for begin, end, name in sorted(ranges):
        if begin != position:
            raise _fail(path, f"tensor {name!r} starts at byte {begin}, expected {position} (overlapping or gapped data)")
        position = end
    if position != len(data):
        what = "is truncated" if position > len(data) else "has trailing bytes"
        raise _fail(path, f"{what}: the tensors need {position} data bytes, the file holds {len(data)}")
    arrays = {}
    for name, (dtype, shape, begin, end) in tensors.items():
        arr = np.frombuffer(data, dtype=_DTYPES[dtype], count=math.prod(shape), offset=begin).reshape(shape)
        arrays[name] = arr
    return arrays, metadata


def read_checkpoint(path, require_digest: bool = True) -> CheckpointFile:
    """Parse and verify a checkpoint (structure and SHA-256); CheckpointError on any fault."""
    path = os.fspath(path)
    tensors, metadata = parse_safetensors(path)
    if "sha256" not in metadata:
        if require_digest:
            raise _fail(path, "has no gradlearn metadata (no 'sha256' digest): it is not a gradlearn checkpoint; use gl.load_weights for plain weight files")
        return CheckpointFile(path, tensors, metadata, {"model": {k: {"__tensor__": k} for k in tensors}})
    if metadata.get("format") != FORMAT:
        raise _fail(path, f"has an unknown format {metadata.get('format')!r}, expected {FORMAT!r}")
    if _digest(metadata, tensors) != metadata["sha256"]:
        raise _fail(path, "is corrupted: its SHA-256 digest does not match its contents (bit flip, or edited after saving)")
    try:
        state = json.loads(metadata["state"], object_pairs_hook=_no_duplicates)
    except (KeyError, ValueError) as exc:
        raise _fail(path, f"has unreadable state metadata ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise _fail(path, "has no model section in its state metadata")
    return CheckpointFile(path, tensors, metadata, state)


# loading into objects ---------------------------------------------------------------------


def _stage_model(ckpt: CheckpointFile, model):
    path = ckpt.path
    current = model.state_dict()
    try:
        stored = {k: join_tree(v, ckpt.tensors, copy=False) for k, v in ckpt.state["model"].items()}
    except (KeyError, TypeError) as exc:
        raise _fail(path, f"refers to a missing tensor {exc}") from None
    missing = [k for k in current if k not in stored]
    unexpected = [k for k in stored if k not in current]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise _fail(path, f"does not match the model ({type(model).__name__}): " + "; ".join(parts))
    for key, value in stored.items():
        want = current[key]
        if not _is_array(value):
            raise _fail(path, f"'{key}' is not an array")
        if tuple(value.shape) != tuple(want.shape):
            raise _fail(path, f"'{key}' has shape {tuple(value.shape)}, the model expects {tuple(want.shape)}")
        if (value.dtype.kind == "f") != (want.dtype.kind == "f"):
            raise _fail(path, f"'{key}' has dtype {value.dtype}, the model expects {want.dtype}")
    return stored, current


def _compare_arrays(path, what, stored, current, where=""):
    """Array shapes in ``stored`` must match ``current`` wherever both hold an array."""
    if _is_array(current) or _is_array(stored):
        if not (_is_array(current) and _is_array(stored)):
            raise _fail(path, f"the {what} state at '{where or '/'}' is {'an array' if _is_array(stored) else 'not an array'} in the file but not in the {what}")
        if tuple(current.shape) != tuple(stored.shape):
            raise _fail(path, f"the {what} state '{where}' has shape {tuple(stored.shape)}, the {what} expects {tuple(current.shape)}")
        return
    if isinstance(current, dict) and isinstance(stored, dict):
        for k in current:
            if k in stored:
                _compare_arrays(path, what, stored[k], current[k], f"{where}/{k}")
    elif isinstance(current, (list, tuple)) and isinstance(stored, (list, tuple)) and len(current) == len(stored):
        for i, (s, c) in enumerate(zip(stored, current)):
            _compare_arrays(path, what, s, c, f"{where}/{i}")


def _stage_component(ckpt, obj, section):
    path = ckpt.path
    entry = ckpt.state.get(section)
    if entry is None:
        raise _fail(path, f"holds no {section} state, but a {section} was given to load it into")
    if entry.get("class") != type(obj).__name__:
        raise _fail(path, f"was saved with a {entry.get('class')} {section}, this {section} is a {type(obj).__name__}")
    try:
        stored = join_tree(entry["state"], ckpt.tensors)
    except (KeyError, TypeError) as exc:
        raise _fail(path, f"refers to a missing {section} tensor {exc}") from None
    current = obj.state_dict()
    _compare_arrays(path, section, stored, current)
    return stored, current


def _stage_generators(ckpt, model):
    path = ckpt.path
    generators = module_generators(model)
    saved = ckpt.state.get("generators", {})
    if set(saved) != set(generators):
        raise _fail(
            path,
            f"saved random generators {sorted(saved)} but the model has {sorted(generators)} "
            "(a module with a generator, such as Dropout, was added or removed)",
        )
    staged = []
    try:
        for name, g in generators.items():
            staged.append((g, check_generator_state(g, saved[name], name)))
        if "default_generator" in ckpt.state:
            g = backend.default_generator()
            staged.append((g, check_generator_state(g, ckpt.state["default_generator"], "default")))
    except ValueError as exc:
        raise _fail(path, str(exc)) from None
    return staged


def load_checkpoint(path, model, optimizer=None, schedule=None, restore_generators: bool = True, _more_stages=None):
    """Load ``path`` into ``model`` (and ``optimizer``, ``schedule``); return the :class:`CheckpointFile`.

    Everything is validated first: the file (structure, SHA-256), the model's keys, shapes
    and dtypes, the optimizer's and schedule's classes and array shapes, the generators'
    states. Any fault raises :class:`CheckpointError` (a ValueError) naming the file and
    the fault, with the model, optimizer and schedule untouched. The random generators
    (the model's modules' and the backend's default) are restored too unless
    ``restore_generators`` is False.
    """
    ckpt = path if isinstance(path, CheckpointFile) else read_checkpoint(path)
    weights, model_backup = _stage_model(ckpt, model)
    optimizer_stage = _stage_component(ckpt, optimizer, "optimizer") if optimizer is not None else None
    schedule_stage = _stage_component(ckpt, schedule, "schedule") if schedule is not None else None
    generator_stage = _stage_generators(ckpt, model) if restore_generators else []
    extra_apply = _more_stages(ckpt) if _more_stages is not None else None
    applied = []
    try:
        model.load_state_dict(weights)
        applied.append(lambda: model.load_state_dict(model_backup))
        if optimizer_stage is not None:
            optimizer.load_state_dict(optimizer_stage[0])
            applied.append(lambda: optimizer.load_state_dict(optimizer_stage[1]))
        if schedule_stage is not None:
            schedule.load_state_dict(schedule_stage[0])
            applied.append(lambda: schedule.load_state_dict(schedule_stage[1]))
        if extra_apply is not None:
            extra_apply()
    except Exception as exc:
        for undo in reversed(applied):
            try:
                undo()
            except Exception:
                pass
        raise _fail(ckpt.path, f"could not be loaded ({type(exc).__name__}: {exc}); nothing was changed") from exc
    for generator, state in generator_stage:
        generator.bit_generator.state = state
    return ckpt


def load_weights(path, model):
    """Load the weights of any safetensors file (a gradlearn checkpoint or plain weights) into ``model``.

    The digest is verified when the file has one; extra keys such as ``optimizer/...`` are
    ignored; missing keys or wrong shapes raise :class:`CheckpointError`, model untouched.
    """
    ckpt = read_checkpoint(path, require_digest=False)
    model_keys = model.state_dict().keys()
    if "sha256" not in ckpt.metadata:
        ckpt.state = {"model": {k: {"__tensor__": k} for k in ckpt.tensors if "/" not in k or k in model_keys}}
    weights, _ = _stage_model(ckpt, model)
    model.load_state_dict(weights)
    return ckpt
