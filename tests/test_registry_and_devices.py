import pytest
import torch

from conceptlab.engine.adaptive.oracle import ORACLE_GROUP, OracleFactory
from conceptlab.engine.errors import BackendError, UsageError
from conceptlab.engine.evaluation.baselines import BASELINE_GROUP, Baseline
from conceptlab.engine.evaluation.evaluators import EVALUATOR_GROUP, ClipLoader
from conceptlab.engine.models.backend import Backend
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.models.plugins import BACKEND_GROUP, backend_names, find, load_backend, names, resolve_model


def test_builtin_backends_come_through_entry_points():
    assert {"tiny", "kandinsky-2.1", "kandinsky-2.2"} <= set(backend_names())
    for name in ("tiny", "kandinsky-2.1", "kandinsky-2.2"):
        assert isinstance(load_backend(name), Backend)


@pytest.mark.parametrize(
    ("group", "protocol", "make"),
    [
        (BACKEND_GROUP, Backend, True),
        (BASELINE_GROUP, Baseline, True),
        (EVALUATOR_GROUP, ClipLoader, True),
        (ORACLE_GROUP, OracleFactory, False),  # the factory itself; calling it loads models
    ],
)
def test_every_builtin_plugin_offers_its_protocols_hooks(group, protocol, make):
    for name in names(group):
        plugin = find(group, name)
        assert isinstance(plugin() if make else plugin, protocol), (group, name)


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        (BACKEND_GROUP, "backend"),
        (BASELINE_GROUP, "baseline"),
        (EVALUATOR_GROUP, "evaluator"),
        (ORACLE_GROUP, "oracle"),
    ],
)
def test_unknown_plugin_reads_the_same_for_every_kind(group, kind):
    with pytest.raises(UsageError, match=f"^Unknown {kind} 'nope'; installed {kind}s: [a-z]"):
        find(group, "nope")


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
