"""The seccomp filter every sandbox runs under, compiled to BPF for `bwrap --seccomp FD`.

Default allow, then deny what a demo never needs and an attacker wants: sockets other
than AF_UNIX, ptrace, mounts, namespaces, bpf, io_uring, keyrings, perf, module and kexec
calls. Denials return EPERM (not a kill), so the demo sees a readable Python error.
"""

from __future__ import annotations

import errno
import os
import socket
from functools import lru_cache

import pyseccomp as sc

# Calls refused outright. io_uring is here because its operations bypass this filter.
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "syslog", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "iopl", "ioperm",
    "uselib", "fanotify_init",
)

# clone flags that create namespaces; --disable-userns already stops new user namespaces,
# this is a second lock on the same door.
CLONE_NS_FLAGS = (
    0x10000000,  # CLONE_NEWUSER
    0x00020000,  # CLONE_NEWNS
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x08000000,  # CLONE_NEWIPC
    0x04000000,  # CLONE_NEWUTS
    0x02000000,  # CLONE_NEWCGROUP
)

# personality() bits that weaken ASLR or make data executable.
PERSONALITY_BITS = (0x0040000, 0x0400000)  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC


def build_filter() -> sc.SyscallFilter:
    """The filter as a libseccomp object (native architecture; other ABIs are killed)."""
    f = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(eperm, name)
        except (OSError, ValueError):  # a call this kernel/libseccomp does not know
            continue
    # Only AF_UNIX sockets: no inet, inet6, packet, netlink, vsock, bluetooth...
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    for flag in CLONE_NS_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory a filter cannot read; ENOSYS makes glibc use clone.
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for bit in PERSONALITY_BITS:
        f.add_rule(eperm, "personality", sc.Arg(0, sc.MASKED_EQ, bit, bit))
    return f


@lru_cache(maxsize=1)
def filter_bpf() -> bytes:
    """The compiled BPF program (cached: it never changes within a process)."""
    fd = os.memfd_create("askta-seccomp")
    with os.fdopen(fd, "w+b") as buf:
        build_filter().export_bpf(buf)
        buf.seek(0)
        return buf.read()
