"""The profiler breakdown (bench/perf/profile.py): HLO names map back to model operations."""

import subprocess
import sys

import pytest

from mnist_bench.backends.jax_shared.profiling import hlo_op_names

HLO = """\
%fused_computation.1 (param_0: f32[64,26,26,32], param_1: f32[64,24,24,64]) -> f32[32,3,3,64] {
  %convolution.1 = f32[32,3,3,64]{3,2,1,0} convolution(%param_0, %param_1), window={size=24x24}
}
%fused_computation.10 (param_0.2: f32[64,26,26,32], param_1.2: f32[3,3,32,64]) -> f32[64,24,24,64] {
  ROOT %convolution.2 = f32[64,24,24,64]{3,2,1,0} convolution(%param_0.2, %param_1.2), metadata={op_name="jit(step)/jvp(CNN)/conv2/conv_general_dilated"}
}
ENTRY %main.9 (x: f32[64,26,26,32], k: f32[3,3,32,64]) -> f32[64,24,24,64] {
  %ynn_fusion.10 = f32[64,24,24,64]{3,2,1,0} fusion(%x, %k), kind=kCustom, calls=%fused_computation.10
  %ynn_fusion.1 = f32[32,3,3,64]{3,2,1,0} fusion(%x, %ynn_fusion.10), kind=kCustom, calls=%fused_computation.1
  ROOT %add.3 = f32[64,24,24,64]{3,2,1,0} add(%ynn_fusion.10, %ynn_fusion.10), metadata={op_name="jit(step)/add"}
}
"""


def test_fusions_are_named_by_the_operation_in_their_body():
    names = hlo_op_names(HLO)
    assert names["ynn_fusion.10"] == "jit(step)/jvp(CNN)/conv2/conv_general_dilated"
    assert names["add.3"] == "jit(step)/add"


def test_fusions_without_metadata_are_named_by_their_output():
    assert hlo_op_names(HLO)["ynn_fusion.1"] == "(no metadata) output f32[32,3,3,64]{3,2,1,0}"


@pytest.mark.timeout(300)
def test_profile_prints_the_costliest_operations(shared_data_dir):
    proc = subprocess.run([sys.executable, "-m", "mnist_bench.bench.perf.profile", "--backend", "torch", "--mode", "eager",
                           "--steps", "2", "--top", "3", "--data-dir", str(shared_data_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("torch/eager:") and "ms per step" in lines[0]
    assert len(lines) == 4 and all("aten::" in line for line in lines[1:])
