"""The backends, by name. Each module provides the interface described in ``kernels.ops``; adding a
backend is one line here plus its module (see CONTRIBUTING.md). The order is the order of every
table and plot: the reference first, ours last."""

BACKEND_MODULES = {
    "eager": "kernels.backends.eager",  # the reference every test and benchmark compares with
    "torchscript": "kernels.backends.torchscript",
    "compile": "kernels.backends.compile",
    "cpp": "kernels.backends.cpp",
    "triton": "kernels.backends.triton",
}
BACKENDS: tuple[str, ...] = tuple(BACKEND_MODULES)
