"""Resource limits checked before any work: torch threads against the machine's CPUs and
participants against its memory. An absurd value is refused in one line naming the option,
the limit and why, instead of a segfault, ``libgomp: Out of memory`` or minutes of setup."""

from __future__ import annotations

import os

from ssddl.exceptions import ConfigurationError

#: More torch threads than this many per CPU only oversubscribe the machine; far beyond it,
#: each thread's stack and OpenMP arena run the process out of memory (exit 139).
THREADS_PER_CPU = 4

#: The least a participant costs in the simulation whatever the model: its keys, its
#: pairwise seeds and the Python objects that hold them. Refuses the absurd at once, before
#: the data or the model is loaded.
MIN_BYTES_PER_PARTICIPANT = 256 * 1024

#: Bytes per model parameter a simulated participant holds: its float32 weights and the
#: uint64 ring word of its masked share, with room for the update (measured: 1.7 GB resident
#: for 1,000 participants with the 85,002-parameter default model, keys included).
BYTES_PER_PARAMETER = 16


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_bytes() -> int | None:
    """The machine's physical memory, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_threads(threads: int) -> None:
    """Refuse more torch threads than :data:`THREADS_PER_CPU` per CPU."""
    cpus = cpu_count()
    limit = THREADS_PER_CPU * cpus
    if threads > limit:
        raise ConfigurationError(
            f"threads={threads} is more than {THREADS_PER_CPU}x the {cpus} CPU(s) this machine "
            f"has: each is an OS thread that only oversubscribes the CPUs, and thousands run "
            f"out of memory; use at most {limit} (1 per CPU is fastest)"
        )


def _size(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_participants(participants: int, *, parameters: int = 0, sample_bytes: int = 0) -> None:
    """Refuse ``participants`` whose estimated memory exceeds the machine's: each holds
    :data:`BYTES_PER_PARAMETER` per model parameter plus its keys
    (:data:`MIN_BYTES_PER_PARTICIPANT`); ``sample_bytes`` is the training data, held once."""
    memory = memory_bytes()
    if memory is None:
        return
    each = MIN_BYTES_PER_PARTICIPANT + BYTES_PER_PARAMETER * parameters
    need = participants * each + sample_bytes
    if need > memory:
        fits = max(1, (memory - sample_bytes) // each)
        per = (
            f"{each / 2**20:,.2f} MiB per participant with a {parameters:,}-parameter model"
            if parameters
            else f"at least {each / 2**20:,.2f} MiB per participant, whatever the model"
        )
        raise ConfigurationError(
            f"participants={participants} needs {'about' if parameters else 'at least'} "
            f"{_size(need)} of memory ({per}) but this machine has {_size(memory)}; use at "
            f"most {fits:,}{'' if parameters else ' (fewer with a larger model)'}"
        )
