"""Freed CPU tensors go back to the system (``modeling.return_freed_memory``): without it glibc serves a training
step's activations from its heap once it has raised its mapping threshold, and keeps them there after they are freed,
so the next phase's peak stacks on top of them."""

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CHILD = """
import ctypes, sys
sys.path.insert(0, {src!r})
import torch
from medrlvr.modeling import return_freed_memory
if {apply}:
    assert return_freed_memory()
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
big = torch.ones(16 * 2**20 // 4); del big  # by default glibc raises its mapping threshold past 16 MB here
parts = [torch.ones(2**20 // 4 * 3) for _ in range(100)]  # 100 tensors of 3 MB, like a step's activations
print(libc.mallinfo2().hblks)  # how many allocations are mapped on their own (returned to the system when freed)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_tensors_are_mapped_on_their_own_and_so_returned_when_freed():
    def mapped(apply: bool) -> int:
        code = CHILD.format(src=str(SRC), apply=apply)
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)

    assert mapped(False) < 50  # glibc's default after one large free: 3 MB blocks come from the heap
    assert mapped(True) >= 100
