"""The host allocator setting: large tensors freed by one step are reused, not faulted in again."""

from __future__ import annotations

import resource

import pytest
import torch

from implicit2.allocator import keep_freed_memory

PAGES_OF_64_MIB = 64 * 2**20 // resource.getpagesize()


def page_faults_of_a_64_mib_tensor() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensor = torch.ones(16 * 2**20)  # 64 MiB of float32, every page written
    del tensor
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_large_tensor_is_reused_without_new_page_faults() -> None:
    if not keep_freed_memory():
        pytest.skip("the C library is not glibc: the setting does not apply")
    page_faults_of_a_64_mib_tensor()  # the first one grows the heap
    assert page_faults_of_a_64_mib_tensor() < PAGES_OF_64_MIB // 20
