"The step that benchmarks/run.py times does the FLOPs that advnorm.flops.step_flops counts, whatever lever it runs with."
import sys
from pathlib import Path
import pytest, torch
from torch.utils.flop_counter import FlopCounterMode
from advnorm.experiments import get_preset
from advnorm.flops import step_flops

sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'benchmarks'))
from run import make_step, random_batch   # noqa: E402

pytestmark = pytest.mark.slow   # each runs a full training step (G+S and D updates) under the FLOP counter

@pytest.mark.parametrize('settings', [{}, {'sync': True}, {'channels_last': True}, {'fused': True}, {'amp': 'bf16'}],
                         ids=['plain', 'sync', 'channels_last', 'fused', 'bf16'])
def test_benchmark_step_does_the_counted_flops(settings):
    p = get_preset('smoke', patch=16)
    step, _ = make_step(p, torch.device('cpu'), **settings)
    x, y, z = random_batch(p, p.batch_size, torch.device('cpu'))
    with FlopCounterMode(display=False) as fc: step(x, y, z)
    assert fc.get_total_flops() == step_flops(p, 7, p.batch_size)['total']
