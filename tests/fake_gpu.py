"""A pretend GPU for hand-off tests on a CPU: tensors that say they live on the ``meta`` device and compute on the CPU.

Inside ``fake_gpu()`` a ``.to("meta")`` (or ``device=`` a meta device, e.g. ``next(model.parameters()).device``) gives a
:class:`OnDevice` tensor holding real values; ``.cpu()`` brings them back. An operation that mixes an ``OnDevice``
tensor with a CPU tensor (other than a 0-d one, as CUDA allows) raises the error CUDA raises, and so does turning an
``OnDevice`` tensor into a NumPy array (what matplotlib does with a tensor): a notebook that passes here hands its
data to a GPU model, and its results back, correctly.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

META = torch.device("meta")


class OnDevice(torch.Tensor):
    """A tensor "on the GPU": device ``meta`` to the outside, ``inner`` (a CPU tensor) holds its values."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        out = torch.Tensor._make_wrapper_subclass(
            cls,
            inner.shape,
            strides=inner.stride(),
            dtype=inner.dtype,
            device=META,
            requires_grad=inner.requires_grad,
            storage_offset=inner.storage_offset(),
        )
        out.inner = inner
        return out

    def __repr__(self):
        return f"OnDevice({self.inner!r})"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first."
        )

    def numpy(self, *args, **kwargs):
        return self.__array__()

    def tolist(self):
        return self.inner.tolist()  # CUDA tensors allow it (a copy to the host)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        with _Mode():
            return func(*args, **(kwargs or {}))


class HandOffError(RuntimeError):
    pass


def _is_meta(device) -> bool:
    return device is not None and torch.device(device).type == "meta"


class _Mode(TorchDispatchMode):
    """Runs every operation on the CPU, keeping track of what is "on the GPU"."""

    ALLOWED_MIX = {"aten.copy_", "aten._to_copy", "aten.copy", "aten._copy_from", "aten._copy_from_and_resize"}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = str(func.overloadpacket)
        flat = [a for a in _leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        on_device = any(isinstance(a, OnDevice) for a in flat)
        host = [a for a in flat if not isinstance(a, OnDevice) and a.dim() > 0]
        if on_device and host and name not in self.ALLOWED_MIX:
            raise HandOffError(
                f"Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
                f"({name}: a CPU tensor of shape {tuple(host[0].shape)} met a tensor on the GPU)"
            )
        to_device = _is_meta(kwargs.get("device"))
        if "device" in kwargs and to_device:
            kwargs["device"] = torch.device("cpu")
        unwrapped_args, unwrapped_kwargs = tree_map(_unwrap, (args, kwargs))
        out = func(*unwrapped_args, **unwrapped_kwargs)
        if name in ("aten._to_copy",):
            wrap = to_device or ("device" not in kwargs and on_device)
        elif name in ("aten.copy_",):
            wrap = isinstance(args[0], OnDevice)
            if wrap:
                return args[0]  # copied in place into the inner tensor
        else:
            wrap = on_device or to_device
        if name == "aten._local_scalar_dense" or not wrap:
            return out
        return tree_map(
            lambda t: OnDevice(t) if isinstance(t, torch.Tensor) and not isinstance(t, OnDevice) else t, out
        )


def _leaves(tree):
    out = []
    tree_map(lambda x: out.append(x), tree)
    return out


def _unwrap(x):
    return x.inner if isinstance(x, OnDevice) else x


@contextmanager
def fake_gpu():
    """Inside: ``.to("meta")`` and ``device="meta"`` make OnDevice tensors (see the module docstring)."""
    # tensors made from Python data do not pass through dispatch modes: make them on the CPU, then "send" them
    tensor, as_tensor, new_tensor = torch.tensor, torch.as_tensor, torch.Tensor.new_tensor

    def made(factory):
        def make(data, *args, device=None, **kwargs):
            if _is_meta(device):
                return OnDevice(factory(data, *args, **kwargs))
            return factory(data, *args, device=device, **kwargs)

        return make

    def made_like(self, data, *args, device=None, **kwargs):
        if _is_meta(device) or (device is None and isinstance(self, OnDevice)):
            return OnDevice(new_tensor(_unwrap(self), data, *args, **kwargs))
        return new_tensor(self, data, *args, device=device, **kwargs)

    torch.tensor, torch.as_tensor, torch.Tensor.new_tensor = made(tensor), made(as_tensor), made_like
    try:
        with _Mode():
            yield
    finally:
        torch.tensor, torch.as_tensor, torch.Tensor.new_tensor = tensor, as_tensor, new_tensor


def to_fake_gpu(model: nn.Module) -> nn.Module:
    """Move ``model``'s parameters and buffers "to the GPU" (in place); returns the model."""
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and not isinstance(p, OnDevice):
                module._parameters[name] = nn.Parameter(OnDevice(p.detach().clone()), requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None and not isinstance(b, OnDevice):
                module._buffers[name] = OnDevice(b.clone())
    return model


def from_fake_gpu(model: nn.Module) -> nn.Module:
    """Bring ``model``'s parameters and buffers back to plain CPU tensors (in place); returns the model."""
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if isinstance(p, OnDevice):
                module._parameters[name] = nn.Parameter(p.inner.detach().clone(), requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if isinstance(b, OnDevice):
                module._buffers[name] = b.inner.clone()
    return model


@contextmanager
def _suspended():
    from torch.utils._python_dispatch import _get_current_dispatch_mode, _pop_mode_temporarily

    if isinstance(_get_current_dispatch_mode(), _Mode):
        with _pop_mode_temporarily():
            yield
    else:
        yield


def install() -> None:
    """For a whole notebook kernel: "auto" means the pretend GPU; ``fit`` trains on the CPU (at full speed) and
    leaves the model on the pretend GPU, as it leaves a model on a real one. Everything after is checked."""
    import vitkit.train as train

    real_fit = train.fit

    def fit(model, data, *args, device="auto", **kwargs):
        to_gpu = str(device) in ("auto", "meta")
        with _suspended():
            from_fake_gpu(model)
            history = real_fit(model, data, *args, device="cpu" if to_gpu else device, **kwargs)
        if to_gpu:
            to_fake_gpu(model)
        return history

    fit.__doc__ = real_fit.__doc__
    train.fit = fit
    train.resolve_device = lambda device="auto": META if str(device) in ("auto", "meta") else torch.device(device)
    global _INSTALLED
    _INSTALLED = fake_gpu()  # kept: a collected generator would leave its with-block
    _INSTALLED.__enter__()  # for the rest of the kernel's life


_INSTALLED = None
