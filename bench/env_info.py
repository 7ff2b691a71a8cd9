"""What a benchmark ran on: software versions and CPU (``infra.machine``), and GPU state from NVML
(nvidia-ml-py).

Everything is best-effort: no NVML library, no GPU or a query the GPU does not support leaves the
field out (or ``None``) instead of failing the benchmark. Nothing here assumes a CUDA device exists.
"""
from __future__ import annotations

import torch

from infra.machine import cpu_info, memory_allocator, software_versions  # noqa: F401  (re-exported for the harness)

# NVML throttle-reason bits (nvmlClocksThrottleReason*) by name, for a readable list
_THROTTLE_BITS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}


def _nvml():
    """The initialised pynvml module, or None when NVML cannot be used here."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def _nvml_handle(device: torch.device):
    if device.type != "cuda":
        return None, None
    nvml = _nvml()
    if nvml is None:
        return None, None
    try:
        # NVML numbers GPUs physically; match torch's device by PCI bus id (robust to CUDA_VISIBLE_DEVICES)
        props = torch.cuda.get_device_properties(device)
        bus_id = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        return nvml, nvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())
    except Exception:
        try:
            return nvml, nvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:
            return None, None


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def gpu_static_info(device: torch.device) -> dict:
    """GPU name, memory, driver; empty for a CPU device."""
    if device.type != "cuda":
        return {}
    props = torch.cuda.get_device_properties(device)
    info = {
        "gpu_name": props.name,
        "gpu_memory_bytes": props.total_memory,
        "gpu_sm_count": props.multi_processor_count,
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_count": torch.cuda.device_count(),
    }
    nvml, handle = _nvml_handle(device)
    if nvml is not None:
        driver = _try(nvml.nvmlSystemGetDriverVersion)
        info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
        info["max_sm_clock_mhz"] = _try(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_SM)
        info["max_mem_clock_mhz"] = _try(nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_MEM)
        limit = _try(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        info["power_limit_w"] = limit / 1000 if limit is not None else None
    return info


def gpu_state(device: torch.device) -> dict:
    """Clocks, power, temperature and throttle reasons right now (NVML); empty when unavailable."""
    nvml, handle = _nvml_handle(device)
    if nvml is None:
        return {}
    power = _try(nvml.nvmlDeviceGetPowerUsage, handle)
    reasons = _try(nvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
    return {
        "sm_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM),
        "mem_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM),
        "power_w": power / 1000 if power is not None else None,
        "temperature_c": _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
        "throttle_reasons": None if reasons is None
        else [name for name, bit in _THROTTLE_BITS.items() if reasons & bit],
    }


def energy_mj(device: torch.device) -> int | None:
    """Total energy counter in millijoules since driver load, or None if the GPU does not report it."""
    nvml, handle = _nvml_handle(device)
    if nvml is None:
        return None
    return _try(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)


def run_description(device: torch.device, command: str) -> dict:
    """Session-level facts every report prints: versions, GPU (or CPU), command line."""
    info = {"command": command, "device": str(device), "cpu_only": device.type != "cuda"}
    info.update(software_versions())
    info.update(gpu_static_info(device))
    if device.type != "cuda":
        info["gpu_name"] = None
        info["cpu_threads"] = torch.get_num_threads()
        info["cpu_model"] = cpu_info()["cpu_model"]
        from kernels.backends.cpp import cpu_isa

        info["cpu_isa"] = cpu_isa()  # the level the cpp kernels are built for (AVX512_BF16 adds bf16 stores)
        info["aten_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cpu_allocator"] = memory_allocator()
        for peer in ("openvino", "onnxruntime"):
            try:
                info[peer] = __import__(peer).__version__
            except Exception:  # absent or broken: its rows say so
                info[peer] = None
    return info
