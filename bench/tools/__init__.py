"""Kernel-development tools: the sm_90 compile report (``kernel_resources``), the launch-shape sweep
(``tune_tiling``) and the GPU script."""
