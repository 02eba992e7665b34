"""Task-batched inner loop: every task of a meta-batch adapted at once, proven equal to per-task l2l.

Each task gets its own copy of the GRURecommender's parameters, stacked on a leading task
dimension ([n, ...]); one batched forward and one backward per inner step adapt all n copies, since
the summed loss gives each task's slice exactly its own task's gradient. The update is
learn2learn's ``maml_update`` arithmetic (p <- p + (-lr * g), as ``MAML.adapt``). First-order only,
like the suite's ``MAML(..., first_order=True)``: gradients are taken without ``create_graph``, so
the adapted parameters are the meta-parameters plus constants and the query loss's gradient flows
back to the meta-parameters through the stacking (expand backward = sum over tasks).

How it is made fast (torch.profiler, one thread):
- Embedding: one lookup into a flat table of only the rows each task uses (keys
  ``task * vocab + item``, made unique once per meta-batch), gathered from the meta embedding, so
  no dense [tasks, items, E] table or gradient is ever built. A row a task does not use would
  never change in the per-task path either (its gradient is zero), so this is exact.
- Output layer: a dense per-task [tasks, V, H] weight would cost most (fresh large allocations
  page-fault on CPU). A first-order step changes it by a rank-B product, so it is kept as the meta
  weight plus factors (StackedParams).
- GRU (SegmentedGRU, one layer): tasks and rows sorted longest first, steps packed (StackedBatch),
  and the packed steps cut into segments (SideLayout) so that buffers and all-steps products
  scale with the true lengths (on real episodes most sequences are far shorter than the longest
  of a meta-batch, which reaches the 50-course cap in most batches); input projections once per
  (task, item) row; a hand-written backward whose weight gradients are one product per segment;
  where the weights are still the shared meta-weights (the first inner step, zero-shot scoring)
  one large matrix product for all tasks instead of n small ones; past a sequence's end the update
  gate is exactly 1 (no mask per step).
- Updates in place (``update_in_place``): no fresh per-task copies per inner step.
- The one-layer GRU itself runs on a compiled kernel (baselines/fused.py, baselines/fused_gru.cpp) where it
  builds: each task's whole sequence with its own W_hh hot in cache, a register-blocked small
  product per step and the gate work fused per row, instead of SegmentedGRU's one batched product
  per step that streams every task's weights from memory (2.1x per meta-iteration at the `full`
  grid's settings, one thread). SegmentedGRU stays as the fallback (SegmentedBatchedMAML) and the
  kernel's reference; both equal per-task learn2learn (tests/test_batched.py).
A repeat-aware model (baselines/model.py RepeatHead) has its head's tensors stacked per task like the
rest (params.py REPEAT_TENSORS) and updated by update_in_place; StackedParams.scores applies the head
to each side's base logits with the rows' own prefixes and lengths (StackedBatch carries them), and the
output weight's low-rank steps are still formed from the base logits' gradients (the loss reads the
mixture, autograd gives d loss / d logits through it), so the trick stays exact.
Multi-layer GRUs take the packed [n, M] path (batched_gru_layer) for every layer. (The first batched
engine, "batched-v1", which took that path for one layer too, is gone; its measured times stay in
results/reference/perf-full.json.)
The other algorithms of meta/algorithms.py have their own batched inner loops, chosen by the
wrapper's type: ANIL in meta/batched_anil.py, Meta-SGD in meta/batched_metasgd.py (both proven
equal to per-task learn2learn in tests/test_arms.py).
Dropout (meta-training, model in train mode) is applied to the last hidden state as in
``GRURecommender.forward``, with the module's p (and the GRU's inter-layer p between layers), but
masks are drawn for the whole stacked batch, so they are not the per-task path's masks bit for
bit: the same distribution, not the same draws (the same draws on the kernel and on SegmentedGRU). With p = 0 or at
evaluation (dropout off) the engines agree to float rounding (tests/test_batched.py). Works on
CUDA unchanged (devices follow the inputs); stacking reads the lengths on the host once per
meta-batch.

The package, one job per module:
- layout.py: stacking a meta-batch (StackedBatch, SideLayout, stack_tasks, unstack_scores);
- packed.py: the packed GRU path (MaskedGRURecurrence, batched_gru_layer: multi-layer GRUs);
- segmented.py: SegmentedGRU (the kernel's reference and fallback);
- params.py: StackedParams (its forward picks the GRU path: kernel, SegmentedGRU or packed),
  update_in_place, task_loss;
- engine.py: BatchedMAML and SegmentedBatchedMAML.
The compiled kernel itself is baselines/fused.py and baselines/fused_gru.cpp.
"""

# The public names, re-exported (`X as X`: an explicit re-export) so that callers import from meta.batched.
from meta.batched.engine import (
    EVAL_CHUNK as EVAL_CHUNK,
)
from meta.batched.engine import (
    BatchedMAML as BatchedMAML,
)
from meta.batched.engine import (
    SegmentedBatchedMAML as SegmentedBatchedMAML,
)
from meta.batched.layout import (
    SideLayout as SideLayout,
)
from meta.batched.layout import (
    StackedBatch as StackedBatch,
)
from meta.batched.layout import (
    pack_steps as pack_steps,
)
from meta.batched.layout import (
    row_tables as row_tables,
)
from meta.batched.layout import (
    side_layout as side_layout,
)
from meta.batched.layout import (
    stack_tasks as stack_tasks,
)
from meta.batched.layout import (
    step_blocks as step_blocks,
)
from meta.batched.layout import (
    unstack_scores as unstack_scores,
)
from meta.batched.packed import (
    MaskedGRURecurrence as MaskedGRURecurrence,
)
from meta.batched.packed import (
    batched_gru_layer as batched_gru_layer,
)
from meta.batched.params import (
    StackedParams as StackedParams,
)
from meta.batched.params import (
    task_loss as task_loss,
)
from meta.batched.params import (
    update_in_place as update_in_place,
)
from meta.batched.segmented import (
    SegmentedGRU as SegmentedGRU,
)
