"""kt's malloc thresholds: a large block freed and allocated again is reused, not page-faulted in again."""

import os
import subprocess
import sys

import pytest

# Allocates and fills a 64 MiB block twice (freeing the first) and prints the page faults of the second.
PROBE = """
import resource, sys
from kt.core.malloc import reuse_freed_memory
print(reuse_freed_memory() if sys.argv[1] == "kt" else False)
block = bytearray(64 << 20); del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = bytearray(64 << 20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = (64 << 20) // 4096


def second_allocation_faults(mode: str, **env: str) -> tuple[bool, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "KT_SYSTEM"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**environ, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_block_is_reused():
    applied, faults = second_allocation_faults("kt")
    assert applied and faults < PAGES // 100  # the freed pages are reused
    applied, faults = second_allocation_faults("plain")
    assert not applied and faults > PAGES // 2  # glibc's defaults: a fresh mmap, every page faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_user_settings_are_left_alone():
    assert second_allocation_faults("kt", KT_SYSTEM_MALLOC="1") == (False, pytest.approx(PAGES, rel=0.1))
    assert not second_allocation_faults("kt", MALLOC_TRIM_THRESHOLD_="1000")[0]
