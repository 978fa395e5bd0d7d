"""The factories and fuzz specs gradfuzz ships for dezero's own Functions.

`shipped(module)` gives, for `dezero.core`, `dezero.core_simple`, `dezero.functions` and
`dezero.functions_conv`, ({class name: factory}, {class name: fuzz spec}) in the
forms a target module lists in FUZZ_FACTORIES and FUZZ_SPEC. A Function that
dezero only builds inside another's backward (GetItemGrad, Conv2DGradW,
Pooling2DGrad, Pooling2DWithIndexes) is built by a `build` spec that draws its
constructor's arguments and its input shapes together.
"""

import numpy as np
from hypothesis import strategies as st

from strategies.params import (
    axes,
    broadcast_targets,
    index_expressions,
    kernels,
    reshape_targets,
    sum_targets,
)

MODULES = ("dezero.core", "dezero.core_simple", "dezero.functions", "dezero.functions_conv")

_side = st.integers(1, 3)
_images = st.tuples(_side, _side, st.integers(1, 5), st.integers(1, 5))  # N, C, H, W


def shipped(module):
    """({name: factory}, {name: fuzz spec}) for a dezero module, else two empty dicts."""
    if getattr(module, "__name__", None) not in MODULES:
        return {}, {}
    factories, specs = {}, {}
    for name, (factory, spec) in _KNOWN.items():
        if isinstance(getattr(module, name, None), type) and vars(module)[name].__module__ == (
            module.__name__
        ):
            if factory is not None:
                factories[name] = _bound(module, name, factory)
            if spec is not None:
                specs[name] = _bound_spec(module, spec)
    return factories, specs


def _bound(module, name, factory):
    cls = getattr(module, name)
    return lambda draw, shapes: factory(cls, draw, shapes)


def _bound_spec(module, spec):
    if "build" not in spec:
        return spec
    build = spec["build"]
    return {**spec, "build": lambda draw: build(module, draw)}


def _matmul_shapes(draw):
    n, k, m = draw(_side), draw(_side), draw(_side)
    return (n, k), (k, m)


def _linear_shapes(draw):
    n, k, m = draw(_side), draw(_side), draw(_side)
    return (n, k), (k, m), (m,)


def _same_shapes(draw):
    shape = draw(st.lists(_side, min_size=1, max_size=3).map(tuple))
    return shape, shape


def _labels(draw):
    n, classes = draw(_side), draw(st.integers(1, 4))
    return (n, classes), (n,)


def _conv_shapes(draw, transposed=False):
    n, c, h, w = draw(_images)
    oc, kh, kw = draw(_side), draw(st.integers(1, min(h, 3))), draw(st.integers(1, min(w, 3)))
    weight = (c, oc, kh, kw) if transposed else (oc, c, kh, kw)
    return (n, c, h, w), weight, (oc,)


def _batch_shapes(draw):
    """(N, C) or (N, C, H, W) with N >= 2, kept small: a second derivative of a batch
    statistic costs a first-order backward per oracle evaluation."""
    small = st.integers(1, 2)
    x = draw(
        st.one_of(st.tuples(st.integers(2, 4), _side), st.tuples(st.just(2), small, small, small))
    )
    return x, (x[1],), (x[1],)


def _kernel(draw, shapes, pair=True):
    h, w = shapes[0][2:]
    kernel, stride, pad = draw(kernels(h, w))
    square = kernel[0] == kernel[1] and stride[0] == stride[1] and pad[0] == pad[1]
    if not pair and square and draw(st.booleans()):
        return kernel[0], stride[0], pad[0]
    return kernel, stride, pad


def _deconv(draw, shapes):
    """Stride and pad of a Deconv2d whose output, s (h - 1) + k - 2 p, is at least 1."""
    (_, _, h, w), (_, _, kh, kw) = shapes[0], shapes[1]
    stride = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    pads = []
    for size, k, s in ((h, kh, stride[0]), (w, kw, stride[1])):
        pads.append(draw(st.integers(0, max(0, min(1, (s * (size - 1) + k - 1) // 2)))))
    return stride, tuple(pads)


def _get_item_grad(module, draw):
    in_shape = draw(st.lists(_side, min_size=1, max_size=3).map(tuple))
    slices = draw(index_expressions(in_shape))
    gy_shape = np.zeros(in_shape)[slices].shape
    return module.GetItemGrad(slices, in_shape), (gy_shape,)


def _pooled(module, draw):
    """A Pooling that has run forward once, as Pooling2DGrad and its inverse need."""
    shape = draw(_images)
    kernel, stride, pad = draw(kernels(shape[2], shape[3]))
    pooling = module.Pooling(kernel, stride, pad)
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    x = x[..., ::-1] * np.where(np.arange(shape[3]) % 2, 1, -1)  # argmaxes all over the window
    pooling(module.as_variable(x))
    return pooling, shape


def _pooling_grad(module, draw):
    pooling, _ = _pooled(module, draw)
    return module.Pooling2DGrad(pooling), (pooling.indexes.shape,)


def _pooling_with_indexes(module, draw):
    pooling, shape = _pooled(module, draw)
    return module.Pooling2DWithIndexes(pooling), (shape,)


def _conv_grad_w(module, draw):
    (x, w, _) = _conv_shapes(draw)
    stride = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    pad = draw(st.tuples(st.integers(0, 1), st.integers(0, 1)))
    conv = module.Conv2d(stride, pad)
    out = conv(module.as_variable(np.ones(x)), module.as_variable(np.ones(w)), None)
    return module.Conv2DGradW(conv), (x, out.shape)


def _im2col(cls, draw, shapes):
    kernel, stride, pad = _kernel(draw, shapes, pair=False)
    return cls(kernel, stride, pad, draw(st.booleans()))


def _col2im_build(module, draw):
    shape = draw(_images)
    kernel, stride, pad = draw(kernels(shape[2], shape[3]))
    to_matrix = draw(st.booleans())
    col = module.im2col_array(np.zeros(shape), kernel, stride, pad, to_matrix)
    return module.Col2im(shape, kernel, stride, pad, to_matrix), (col.shape,)


_axis_factory = lambda cls, draw, shapes: cls(  # noqa: E731
    axis=draw(axes(shapes[0])), keepdims=draw(st.booleans())
)
_softmax_factory = lambda cls, draw, shapes: cls(  # noqa: E731
    axis=draw(axes(shapes[0], single=True, allow_none=False))
)

# name: (factory(cls, draw, shapes) or None, fuzz spec or None)
_KNOWN = {
    "Pow": (lambda cls, draw, shapes: cls(draw(st.sampled_from([2, 3, -1, 0.5, 1.5]))), None),
    "Reshape": (lambda cls, draw, shapes: cls(draw(reshape_targets(shapes[0]))), None),
    "Sum": (_axis_factory, None),
    "SumTo": (lambda cls, draw, shapes: cls(draw(sum_targets(shapes[0]))), None),
    "BroadcastTo": (lambda cls, draw, shapes: cls(draw(broadcast_targets(shapes[0]))), None),
    "MatMul": (None, {"shapes": _matmul_shapes}),
    "Linear": (None, {"shapes": _linear_shapes}),
    "Transpose": (
        lambda cls, draw, shapes: cls(
            draw(
                st.none()
                | st.permutations(range(len(shapes[0]))).flatmap(
                    lambda p: st.tuples(*[st.sampled_from([a, a - len(p)]) for a in p])
                )
            )
        ),
        None,
    ),
    "GetItem": (lambda cls, draw, shapes: cls(draw(index_expressions(shapes[0]))), {"min_ndim": 1}),
    "GetItemGrad": (None, {"build": _get_item_grad}),
    "Softmax": (_softmax_factory, {"min_ndim": 1}),
    "LogSoftmax": (_softmax_factory, {"min_ndim": 1}),
    "LeakyReLU": (
        lambda cls, draw, shapes: cls(draw(st.sampled_from([0.2, 0.0, -0.5, 2.0]))),
        None,
    ),
    "MeanSquaredError": (None, {"shapes": _same_shapes}),
    "SoftmaxCrossEntropy": (
        None,
        {"shapes": _labels, "integer": {1: lambda shapes: (0, shapes[0][1])}},
    ),
    "BatchNorm": (
        lambda cls, draw, shapes: cls(
            np.zeros(shapes[1]), np.ones(shapes[1]), draw(st.sampled_from([0.9, 0.0])), 2e-5
        ),
        {"shapes": _batch_shapes},
    ),
    "Max": (_axis_factory, None),
    "Min": (_axis_factory, None),
    "Clip": (
        lambda cls, draw, shapes: cls(
            *sorted(draw(st.lists(st.floats(-4, 4), min_size=2, max_size=2, unique=True)))
        ),
        None,
    ),
    "Conv2d": (
        lambda cls, draw, shapes: cls(*_kernel(draw, shapes)[1:]),
        {"shapes": _conv_shapes},
    ),
    "Deconv2d": (
        lambda cls, draw, shapes: cls(*_deconv(draw, shapes)),
        {"shapes": lambda draw: _conv_shapes(draw, transposed=True)},
    ),
    "Conv2DGradW": (None, {"build": _conv_grad_w}),
    "Pooling": (
        lambda cls, draw, shapes: cls(*_kernel(draw, shapes, pair=False)),
        {"shapes": lambda draw: (draw(_images),)},
    ),
    "AveragePooling": (
        lambda cls, draw, shapes: cls(*_kernel(draw, shapes, pair=False)),
        {"shapes": lambda draw: (draw(_images),)},
    ),
    "Pooling2DGrad": (None, {"build": _pooling_grad}),
    "Pooling2DWithIndexes": (None, {"build": _pooling_with_indexes}),
    "Im2col": (_im2col, {"shapes": lambda draw: (draw(_images),)}),
    "Col2im": (None, {"build": _col2im_build}),
}
