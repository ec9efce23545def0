"""Classic BPF: the opcodes the agent's socket filters use, an assembler with labels, attach.

Classic BPF, not eBPF: it needs no BPF capability, no verifier-version games and no compiler,
and the kernel runs it on every packet (or netlink message) before anything is queued to the
socket, so what the filter refuses costs the agent nothing. ``assemble`` turns named jump
targets into the relative offsets the kernel wants (at most 255 forward).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

SO_ATTACH_FILTER = 26
MAX_INSNS = 4096

# classic BPF opcodes (linux/filter.h)
LD_W_ABS = 0x20
LD_H_ABS = 0x28
LD_B_ABS = 0x30
LD_H_IND = 0x48
LDX_B_MSH = 0xB1
JEQ_K = 0x15
JSET_K = 0x45
JGE_K = 0x35
JGT_X = 0x2D
ALU_RSH_K = 0x74
ALU_LSH_K = 0x64
ALU_ADD_X = 0x0C
RET_K = 0x06
ST_MEM = 0x02
LDX_MEM = 0x61
SKF_AD = 0xFFFFF000
SKF_AD_PROTOCOL = SKF_AD + 0
SKF_AD_PKTTYPE = SKF_AD + 4


@dataclass(frozen=True, slots=True)
class Insn:
    """One classic BPF instruction; ``jt``/``jf`` may name labels, resolved by ``assemble``."""

    code: int
    k: int = 0
    jt: int | str = 0
    jf: int | str = 0
    label: str | None = None


def assemble(program: Sequence[Insn]) -> bytes:
    """The ``struct sock_filter`` array for ``program``, with label jumps made relative."""
    where = {insn.label: i for i, insn in enumerate(program) if insn.label}
    out = bytearray()
    for i, insn in enumerate(program):

        def rel(target: int | str, i: int = i) -> int:
            if isinstance(target, str):
                offset = where[target] - i - 1
                if not 0 <= offset <= 255:
                    raise ValueError(f"jump to {target} out of range")
                return offset
            return target

        out += struct.pack("HBBI", insn.code, rel(insn.jt), rel(insn.jf), insn.k & 0xFFFFFFFF)
    return bytes(out)


def attach(sock: socket.socket, program: bytes) -> None:
    """Attach (or atomically replace) ``program`` on ``sock``; raises OSError if refused."""
    if not program or len(program) // 8 > MAX_INSNS:
        raise ValueError(f"a classic BPF program has 1 to {MAX_INSNS} instructions")
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it
