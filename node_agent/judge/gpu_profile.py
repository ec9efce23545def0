"""What a busy GPU process is: a training or inference framework, or a bare compute kernel.

Training jobs load a framework (torch, TensorFlow, JAX/XLA, cuDNN, NCCL) and hold gigabytes
of GPU memory that grow and shrink; a GPU miner runs its own kernels with a small working set
that never changes. The framework is read from the libraries the process maps
(/proc/PID/maps): that costs one bounded read per process, remembered by the caller.
"""

from __future__ import annotations

import re

from node_agent.judge import launchers

FRAMEWORK = re.compile(
    r"(libtorch_cuda|libtorch_cpu|libc10_cuda|libtensorflow|_pywrap_tensorflow|libxla|"
    r"xla_extension|libjax|libcudnn|libnccl|libonnxruntime|libtensorrt|libnvinfer|"
    r"libpaddle|libmxnet|libcaffe)[^/]*$"
)


def framework(maps_text: str) -> str | None:
    """The first ML framework library mapped (its file name), or None."""
    for mapping in launchers.parse_maps(maps_text):
        found = FRAMEWORK.search(mapping.path)
        if found is not None:
            return mapping.path.rsplit("/", 1)[-1]
    return None
