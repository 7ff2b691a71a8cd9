"""The suite's plumbing, shared by the model, the benchmarks and the studies: atomic file writes
(``atomic_io``), the user-error boundary of every command line (``errors``), the description of the
machine a run ran on (``machine``) and the report toolkit (``report_kit``).

It imports nothing of the project's other packages (``kernels``, ``alexnet``, ``bench``): only the
standard library, torch (``machine``, and Triton's version when it is installed) and matplotlib
(``report_kit``'s figures, loaded when a figure is made).
"""
