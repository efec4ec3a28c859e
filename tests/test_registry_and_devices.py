import pytest
import torch

from conceptlab.engine.errors import BackendError, UsageError
from conceptlab.engine.models.backend import Backend
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.models.plugins import backend_names, load_backend, resolve_model


def test_builtin_backends_come_through_entry_points():
    assert {"tiny", "kandinsky-2.1", "kandinsky-2.2"} <= set(backend_names())
    for name in ("tiny", "kandinsky-2.1", "kandinsky-2.2"):
        assert isinstance(load_backend(name), Backend)


def test_resolve_model_rules(tmp_path):
    assert resolve_model("kandinsky-2.2")[1] == "kandinsky-community/kandinsky-2-2-prior"
    backend, model = resolve_model("kandinsky-community/kandinsky-2-1-prior")
    assert backend.name == "kandinsky-2.1"
    backend, model = resolve_model(str(tmp_path), backend="kandinsky-2.2")
    assert (backend.name, model) == ("kandinsky-2.2", str(tmp_path))
    with pytest.raises(UsageError, match="--backend"):
        resolve_model(str(tmp_path))
    with pytest.raises(UsageError, match="Unknown backend"):
        resolve_model("x", backend="nope")


def test_missing_weights_give_one_line_naming_model_and_offline_option(tmp_path):
    backend = load_backend("kandinsky-2.1")
    with pytest.raises(BackendError) as raised:
        backend.load_prior(backend.default_model, torch.device("cpu"), torch.float32)
    message = str(raised.value)
    assert "kandinsky-community/kandinsky-2-1-prior" in message and "--model tiny" in message
    assert "\n" not in message
    with pytest.raises(BackendError, match=str(tmp_path)):
        backend.load_prior(str(tmp_path), torch.device("cpu"), torch.float32)


def test_devices_and_dtypes():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(UsageError):
            resolve_device(bad)
    with pytest.raises(UsageError):
        resolve_dtype("float8", torch.device("cpu"))
