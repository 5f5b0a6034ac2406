"""Tutorial 13: running a ticket sparsely: does a pruned network get faster, and when?

Goal: a winning ticket with 3.6% of its weights needs only 3.6% of the multiply-adds, but the paper trains and
evaluates it with dense arrays and a mask (Frankle & Carbin 2019, Section 2): the forward pass computes W ⊙ m,
a full-size matrix of mostly zeros, so pruning alone makes nothing faster. Store only the kept weights instead,
as compressed sparse row (CSR) matrices (minilottery/lab/sparse.py: `SparseModel.from_model`), check that the
sparse network predicts exactly what the masked dense one does, then time the two at the paper's pruning levels
and find where the sparse one starts to win, and why there and not at once: the column index every stored
weight carries, the memory each product reads, the batch and block size, and the convolutions that stay dense.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/13_running_a_ticket_sparsely.py            # about 3 minutes on a shared 2-core CPU
    python tutorials/13_running_a_ticket_sparsely.py --class    # about a minute
    python tutorials/13_running_a_ticket_sparsely.py --quick    # about 15 s (1,000 test images, 3 repeats)
The default trains LeNet-300-100 for 3,000 iterations, times 11 pruning levels on the 10,000 test images
(median of 11 passes each) and Conv-2 on 200 images; --class trains 1,000 iterations and times 9 levels
(median of 5); --quick trains 200 iterations on a small subset and times 6 levels on 1,000 images.
Every time is the median of several passes, measured on your machine as it is loaded at that moment: the script
prints what it measured and draws it, and asserts only that the sparse and dense networks give the same answers,
never a speed. One BLAS thread (the default, `--threads 1`) makes the comparison fair: SciPy's CSR product uses
one thread too. `minilottery bench` measures the same comparison as a benchmark.

Prints: each pruning level's per-layer percent of weights kept and test accuracy; a 4 x 6 CSR matrix taken apart
and multiplied by hand; the ticket as a SparseModel and the check that its predictions on the test set equal the
masked dense network's; then per level, the ms per pass over the test set dense and sparse, the speed-up, the
bytes of the weights in each format, and the crossover (the % of weights below which the sparse network wins);
the cost per stored weight that explains where the crossover lies; the time per image against the batch size
and against the block size; and Conv-2, whose convolutions stay dense.
Draws: figures/13_running_a_ticket_sparsely/speed_vs_weights.png (ms per pass and speed-up vs % weights left).
Draws: figures/13_running_a_ticket_sparsely/time_vs_batch.png (µs per image vs batch size, dense and sparse).
"""

import copy
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import to_device, to_numpy
from minilottery.data import load_mnist
from minilottery.lab.sparse import DEFAULT_BLOCK_SIZE, SparseModel, dense_to_csr
from minilottery.lab.tutorial import Timer, by_size, heading, parse_args, save_figure
from minilottery.layers import Sequential
from minilottery.models import build_model, layer_output_shapes, weight_names
from minilottery.prune import default_rates, full_masks, magnitude_prune, one_shot_rates, sparsity
from minilottery.training import TrainConfig, evaluate, train

args = parse_args(__doc__, "13_running_a_ticket_sparsely.py")
data = load_mnist()
if args.quick:
    data = data.subset(2000, 500, 1000)
repeats = by_size(args, 3, 5, 11)  # timed passes per measurement: the median is what counts
print(f"device {args.device}, {args.threads} BLAS thread(s); every time below is the median of {repeats} passes")


def median_ms(function, *inputs) -> float:
    """Median wall time of ``function(*inputs)`` in ms over ``repeats`` calls, after one untimed warm-up call."""
    function(*inputs)  # warm-up: first-touch allocations, BLAS's threads, CuPy's kernel compilation
    times = []
    for _ in range(repeats):
        with Timer() as t:  # synchronises the device before and after reading the clock
            function(*inputs)
        times.append(t.seconds)
    return 1e3 * statistics.median(times)


# %%
heading("1. tickets to run: a briefly trained LeNet-300-100, pruned in one shot to the paper's levels")
model = build_model("lenet_300_100", seed=0)
training = TrainConfig(iterations=by_size(args, 200, 1000, 3000), eval_every=100, seed=0)
with Timer() as t:
    train(model, data, training, device=args.device, progress=False)
print(f"trained {training.iterations:,} iterations in {t.seconds:.0f} s")
weights = {name: to_numpy(model.parameters()[name]) for name in weight_names(model)}  # host copies, for pruning
rates = default_rates("lenet_300_100", model)  # per round: hidden layers 20%, the output layer 10%
sizes = {name: w.size for name, w in weights.items()}
# % of the weights IMP at the paper's rates leaves after 3, 7, 12, 15 and 20 rounds, and, at the larger sizes,
# a few levels between them, to place the crossover more precisely
targets = by_size(args, [51.3, 21.1, 7.0, 3.6, 1.2], [51.3, 35.0, 21.1, 14.0, 10.0, 7.0, 3.6, 1.2],
                  [51.3, 35.0, 21.1, 14.0, 10.0, 7.0, 5.0, 3.6, 2.4, 1.2])
networks = {}  # % of weights remaining -> the masked dense network, in evaluation mode
for target in [None, *targets]:  # None: the dense network, every mask all ones
    level_rates = {} if target is None else one_shot_rates(rates, sizes, target_percent=target)
    masks = magnitude_prune(weights, full_masks(weights), level_rates)  # each layer shaped as IMP would leave it
    pruned = copy.deepcopy(model)
    pruned.set_masks(masks)  # the forward pass now uses W * mask
    report = sparsity(masks)
    networks[report["percent"]] = pruned.eval()
    _, accuracy = evaluate(pruned, data.x_test, data.y_test)
    layers = "  ".join(f"{name} {layer['percent']:5.1f}%" for name, layer in report["layers"].items())
    print(f"{report['percent']:5.1f}% of the weights ({report['remaining']:7,})  [{layers}]  "
          f"test accuracy {100 * accuracy:.2f}%")
percents = list(networks)  # from dense (100%) to the sparsest
print("One-shot pruning without retraining loses accuracy at the sparsest levels; IMP's tickets (tutorial 7) keep")
print("it down to a few percent. For speed that does not matter: the time depends on how many weights each layer")
print("keeps (the same here as in IMP's rounds) and a little on where they are, not on how the mask was found.")

# %%
heading("2. a CSR matrix: the kept weights, each with its column, row after row")
W = np.arange(1, 25, dtype=np.float32).reshape(4, 6)  # a small (out=4, in=6) weight
mask = np.array([[1, 0, 0, 1, 0, 0],
                 [0, 0, 0, 0, 0, 0],
                 [0, 1, 1, 0, 0, 1],
                 [1, 0, 0, 0, 0, 0]], dtype=bool)  # 6 of 24 kept; row 1 is pruned away entirely
csr = dense_to_csr(W, mask)
print("W * mask =\n", W * mask)
print("data    (the kept weights, row by row):       ", csr.data)
print("indices (the column of each kept weight):     ", csr.indices)
print("indptr  (row i is data[indptr[i]:indptr[i+1]]):", csr.indptr)
assert np.array_equal(csr.data, W[mask])  # W[mask] reads in row-major order, as CSR stores
assert np.array_equal(csr.indices, np.nonzero(mask)[1])
assert np.array_equal(csr.indptr, np.concatenate([[0], np.cumsum(mask.sum(axis=1))]))
X = np.random.default_rng(0).random((6, 3), dtype=np.float32)  # (in, N): 3 examples, feature-major
Y = np.zeros((4, 3), dtype=np.float32)  # (out, N)
for i in range(4):  # the CSR product: for each stored weight, one row of X times it, into row i of Y
    for k in range(csr.indptr[i], csr.indptr[i + 1]):
        Y[i] += csr.data[k] * X[csr.indices[k]]  # N multiply-adds on contiguous numbers
assert np.allclose(Y, (W * mask) @ X) and np.allclose(Y, csr @ X)
print("The loop over stored weights gives (W * mask) @ X, and so does SciPy's csr @ X (the same loop, in C).")
print("Per stored weight the kernel reads its value and its column index, then a row of X: a dense product does")
print("one fused multiply-add per weight on data it keeps in registers and cache, with no index at all.")
csr_bytes = csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes
print(f"memory: dense W {W.nbytes} bytes (4 per entry); CSR {csr_bytes} bytes: 4 bytes of value and 4 of column")
print(f"per kept weight ({csr.nnz} x 8), and 4 per row boundary ({len(csr.indptr)} x 4).")
print("So CSR saves memory only below about 50% of the weights kept (float32 values, int32 indices).")

# %%
heading("3. the ticket as a SparseModel: the same predictions as the masked dense network")
ticket_percent = min(percents, key=lambda p: abs(p - 7.0))  # the 7% level: a typical winning ticket's size
ticket = networks[ticket_percent]
sparse = SparseModel.from_model(ticket)  # a snapshot: every Dense layer's W * mask as CSR
print(sparse)
kept = {name: int(np.count_nonzero(to_numpy(mask))) for name, mask in ticket.masks().items()}
assert sparse.nnz() == kept, (sparse.nnz(), kept)  # exactly one stored entry per mask 1
x_test = to_device(data.x_test, args.device)  # (n, 1, 28, 28)
n = len(data.x_test)
dense_logits = to_numpy(ticket.forward(x_test))  # (n, 10)
sparse_logits = to_numpy(sparse.forward(x_test))  # (n, 10)
same = np.array_equal(dense_logits.argmax(axis=1), sparse_logits.argmax(axis=1))
print(f"{n:,} test images: the same predicted class for every one: {same}")
print(f"largest logit difference: {np.abs(dense_logits - sparse_logits).max():.2g} (the same sums in another order)")
assert same
print(f"test accuracy from the sparse network: {100 * np.mean(sparse_logits.argmax(axis=1) == data.y_test):.2f}%")
print("The weights sit in sparse.to_csr_dict(); the Flatten, the ReLUs and (in Conv-2) the convolutions run as")
print("before. The activations are kept (features, N), so that each stored weight scales a contiguous row.")

# %%
heading("4. does it get faster? the masked dense network against the sparse one")
print(f"each network predicts {n:,} test images")
dense_bytes = sum(w.nbytes for w in weights.values())  # W is stored whole, whatever the mask
total_weights = sum(sizes.values())
rows = []  # per level: (percent, dense ms, sparse ms, CSR bytes, stored weights)
print(f"{'weights':>8}  {'dense ms':>9}  {'sparse ms':>9}  {'speed-up':>8}  {'dense MB':>8}  {'CSR MB':>7}")
for percent, network in networks.items():
    sparse = SparseModel.from_model(network)
    assert np.array_equal(to_numpy(network.forward(x_test)).argmax(axis=1),
                          to_numpy(sparse.predict(x_test))), f"{percent:.1f}%: the predictions differ"
    dense_ms = median_ms(network.forward, x_test)
    sparse_ms = median_ms(sparse.forward, x_test)
    stored = sparse.to_csr_dict().values()
    nbytes = sum(int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) for m in stored)
    rows.append((percent, dense_ms, sparse_ms, nbytes, sum(sparse.nnz().values())))
    print(f"{percent:7.1f}%  {dense_ms:9.1f}  {sparse_ms:9.1f}  {dense_ms / sparse_ms:7.2f}x  "
          f"{dense_bytes / 1e6:8.2f}  {nbytes / 1e6:7.2f}")
speedups = [dense_ms / sparse_ms for _, dense_ms, sparse_ms, _, _ in rows]
print("The predictions were equal at every level (asserted). The dense network does the same work at every level")
print("(W * mask is as large at 1% as at 50%; at 100% a mask of ones is not even multiplied, a small part of the")
print("time): its times differ by little more than the machine's noise. The sparse time falls with the number of")
print("stored weights.")


def crossover(levels: list[float], gains: list[float]) -> float | None:
    """The % of weights below which the sparse network wins at every measured level, or None if it never wins.

    ``levels``: % of weights remaining, from dense to sparsest; ``gains``: the speed-up of sparse over dense at each.
    Walks from the sparsest level towards the dense one while the speed-up is >= 1, then interpolates (log-log)
    between the last winning level and the next, losing, one; 100.0 when it wins everywhere. Noisy timings can
    make a level near the crossover flip: the walk ignores a win above a loss.
    """
    if gains[-1] < 1.0:
        return None
    i = len(gains) - 1
    while i > 0 and gains[i - 1] >= 1.0:
        i -= 1
    if i == 0:
        return levels[0]
    (p0, s0), (p1, s1) = (levels[i - 1], gains[i - 1]), (levels[i], gains[i])
    f = np.log(s0) / (np.log(s0) - np.log(s1))  # where log(speed-up) = 0, from level i - 1 (0) to level i (1)
    return float(np.exp(np.log(p0) + f * (np.log(p1) - np.log(p0))))


where = crossover(percents, speedups)
if where is None:
    print("On this machine the sparse network was slower at every level measured.")
elif where >= 100.0:
    print("On this machine the sparse network was faster at every level measured.")
else:
    print(f"Crossover: below about {where:.0f}% of the weights the sparse network is faster here.")
    print(f"At {percents[-1]:.1f}% it is {speedups[-1]:.1f}x faster; at 100% it is {1 / speedups[0]:.1f}x slower.")
memory_crossover = 100.0 * 4 / 8  # 4 bytes a dense entry, 8 a stored one (value and column index)
print(f"Memory: the weights' CSR form is smaller than the dense one below ~{memory_crossover:.0f}% and larger above.")
mask_bytes = sum(to_numpy(mask).nbytes for mask in ticket.masks().values())  # kept in W's dtype (set_mask)
print(f"At {percents[-1]:.1f}% it takes {rows[-1][3] / 1e3:.0f} kB against {dense_bytes / 1e3:.0f} kB dense; and the "
      f"masked dense network")
print(f"keeps its masks as well, in W's dtype: {mask_bytes / 1e3:.0f} kB more.")

# %%
heading("5. why there: the cost of one stored weight")
# ns per weight per image, dense: every level computes all the weights, so the median over the levels
per_dense = statistics.median(1e6 * dense_ms / (total_weights * n) for _, dense_ms, _, _, _ in rows)
per_stored = [1e6 * sparse_ms / (stored * n) for _, _, sparse_ms, _, stored in rows]  # ns per stored weight
print(f"dense: {per_dense:.3f} ns per weight per image, at every level (it computes them all)")
for (percent, *_), cost in zip(rows, per_stored):
    print(f"sparse at {percent:5.1f}%: {cost:5.3f} ns per stored weight per image")
ratio = statistics.median(per_stored) / per_dense
print(f"A stored weight costs ~{ratio:.0f}x a dense one (median over the levels), so sparse wins once fewer than")
print(f"~1/{ratio:.0f} = {100 / ratio:.0f}% of the weights are kept: that is the crossover, seen from the cost side.")
print("Why a stored weight costs more: BLAS streams W and x through SIMD registers in cache-sized tiles, doing a")
print("multiply-add per weight with nothing else to read; the CSR kernel reads a column index per weight, then")
print("jumps to that row of the activations (an indirect load), and cannot reuse a register tile across weights.")
print("The cost per stored weight is not constant: it grows as fewer weights are stored, because the work that")
print("does not shrink with them (bias, ReLU, the two transposes, Python's calls per block) is shared by fewer.")

# %%
heading("6. when: the batch size, and the block size")
print(f"the ticket at {ticket_percent:.1f}% of the weights")
sparse = SparseModel.from_model(ticket)
batches = [1, 10, 100, 1000, n] if n > 1000 else [1, 10, 100, n]
base = by_size(args, 100, 500, 1000)  # images per timed pass at the small batch sizes


def per_image_us(forward, batch: int) -> float:
    """µs per image of ``forward`` over min(n, max(batch, base)) test images, ``batch`` at a time."""
    images = min(n, max(batch, base))
    chunks = [x_test[i:i + batch] for i in range(0, images, batch)]
    return 1e3 * median_ms(lambda: [forward(chunk) for chunk in chunks]) / images  # ms -> µs: 1e3


batch_times = {"dense (W * mask)": [], "sparse (CSR)": []}
for batch in batches:
    dense_us, sparse_us = per_image_us(ticket.forward, batch), per_image_us(sparse.forward, batch)
    batch_times["dense (W * mask)"].append(dense_us)
    batch_times["sparse (CSR)"].append(sparse_us)
    print(f"batch {batch:6,}: dense {dense_us:8.2f} µs per image, sparse {sparse_us:8.2f} µs  "
          f"(speed-up {dense_us / sparse_us:.2f}x)")
print("Small batches pay a fixed cost per call (one Python call per layer, and for the masked dense network")
print("W * mask, recomputed at every forward pass: Dense.forward calls masked_param), spread over few images.")
print("Large batches turn each dense product into a large matrix product, where BLAS is at its best.")
for block in [16, 128, DEFAULT_BLOCK_SIZE, 2048, None]:  # None: the whole input in one product
    blocked = SparseModel.from_model(ticket, block_size=block)
    print(f"block_size {str(block):>5}: {median_ms(blocked.forward, x_test):7.1f} ms for {n:,} images")
print("SparseModel cuts the batch into blocks: a (784, block) slice of the activations that stays in the CPU's")
print("cache while every stored weight reads its row. Tiny blocks pay Python's overhead per block, huge ones")
print("leave the cache. (On a GPU the default is the whole batch in one product.)")

# %%
heading("7. the convolutions stay dense: Conv-2 with its dense layers at 6.9%")
conv = build_model("conv2", seed=0)  # untrained: the weights' values do not change the time
conv_weights = {name: to_numpy(conv.parameters()[name]) for name in weight_names(conv)}
conv_rates = one_shot_rates(default_rates("conv2", conv), {k: w.size for k, w in conv_weights.items()}, rounds=12)
conv.set_masks(magnitude_prune(conv_weights, full_masks(conv_weights), conv_rates))  # 12 rounds' worth: conv
conv.to(args.device).eval()  # layers keep 0.9^12 = 28%, the dense ones 0.8^12 = 6.9%, the output 28%
shapes = layer_output_shapes(conv.layers, (1, 28, 28))  # per layer: (C, H, W) or (F,), for one image
macs = {}  # weight name -> multiply-adds per image in the dense (masked) forward pass
for (index, layer), shape in zip(conv.named_layers(), shapes):
    if "W" in layer.params:  # a kernel entry is used at every output pixel; a dense weight once
        macs[f"{index}.W"] = layer.params["W"].size * (shape[1] * shape[2] if len(shape) == 3 else 1)
conv_share = sum(v for name, v in macs.items() if conv_weights[name].ndim == 4) / sum(macs.values())
print(f"per image: {sum(macs.values()) / 1e6:.1f} M multiply-adds, {100 * conv_share:.0f}% of them in the convolutions")
conv_sparse = SparseModel.from_model(conv)
print(conv_sparse)
m = by_size(args, 20, 100, 200)  # Conv-2 images per pass: one costs ~100x a LeNet-300-100 forward pass
x_conv = x_test[:m]
assert np.array_equal(to_numpy(conv.forward(x_conv)).argmax(axis=1), to_numpy(conv_sparse.predict(x_conv)))
features = Sequential(*conv.layers[:6])  # the convolutions, pools and Flatten alone (the same layer objects)
conv_dense_ms, conv_sparse_ms = median_ms(conv.forward, x_conv), median_ms(conv_sparse.forward, x_conv)
features_ms = median_ms(features.forward, x_conv)
print(f"{m} images (the predictions are equal): dense {conv_dense_ms:.0f} ms; with sparse dense layers "
      f"{conv_sparse_ms:.0f} ms")
print(f"(speed-up {conv_dense_ms / conv_sparse_ms:.2f}x); the convolutions alone take {features_ms:.0f} ms.")
print(f"Amdahl's law: however fast the dense layers become, the convolutions' {features_ms:.0f} ms remain, so the")
print(f"speed-up stays near or below {conv_dense_ms / features_ms:.2f}x (three separate timings: noise can put the")
print(f"measured one a little above it). Counting multiply-adds gives 1 / {conv_share:.2f} = {1 / conv_share:.2f}x")
print("instead: time is not multiply-adds, and the masked dense layers also recompute W * mask (3.2 M entries).")
print("The convolutions are not made sparse on purpose: a kernel is small and reused at every pixel (tutorial 4:")
print("im2col makes it one large dense product), and a pruned kernel, 28% kept, is far above the crossover.")

# %%
heading("8. what this shows, and what it does not")
print("- Inference only. Training here still runs dense with masks, as the paper does: forward W * mask, backward")
print("  a full-size gradient times the mask. SparseModel is a snapshot for prediction; sparse training would")
print("  need a sparse backward pass and updates, which this library does not have.")
print("- One machine, one moment. The crossover depends on the BLAS library, the cache sizes, the SIMD width, the")
print("  number of threads and what else the machine runs; rerun the script (or `minilottery bench`) and trust")
print("  your own numbers, not a printed one. Nothing above asserted a speed.")
print("- Unstructured sparsity pays off only when it is extreme (below the crossover of section 4). Tickets at a")
print("  few percent of the weights can run faster sparse; at the paper's 20-50% levels a CSR layer is usually")
print("  slower. Removing whole neurons (structured pruning) leaves smaller matrices that stay dense, and so")
print("  saves time at any level.")

# %%
fig, (ax_time, ax_speed) = plt.subplots(1, 2, figsize=(11, 4))
dense_line = [r[1] for r in rows]
sparse_line = [r[2] for r in rows]
ax_time.plot(percents, dense_line, "o-", lw=2, label="dense, W * mask")
ax_time.plot(percents, sparse_line, "s--", lw=2, label="sparse, CSR")
ax_time.set_ylabel(f"ms per pass over {n:,} images (median of {repeats})")
ax_time.set_yscale("log")
ax_speed.plot(percents, speedups, "o-", lw=2, color="C2")
ax_speed.axhline(1.0, color="gray", lw=1)
ax_speed.set_ylabel("speed-up of sparse over dense (x)")
ax_speed.set_yscale("log")
shown = [t for t in [0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32] if min(speedups) / 2 <= t <= 2 * max(speedups)]
ax_speed.set_yticks(shown, [f"{t:g}" for t in shown])
for ax in (ax_time, ax_speed):
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks(percents, [f"{p:.1f}" if p < 10 else f"{p:.0f}" for p in percents], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("percent of weights remaining (log scale)")
    ax.grid(alpha=0.3)
    if where is not None and where < 100.0:
        ax.axvline(where, color="C3", ls=":", lw=2, label=f"crossover ≈ {where:.0f}%")
ax_time.legend()
ax_speed.legend()
fig.suptitle(f"LeNet-300-100 inference, {args.device}, {args.threads} BLAS thread(s): measured on this machine")
fig.tight_layout()
save_figure(fig, args, "speed_vs_weights",
            look_for="the dense line is flat (W * mask costs the same at any level), the sparse one falls with the "
                     "weights kept; they cross at the dotted line, and only below it does pruning save time")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for (label, values), marker in zip(batch_times.items(), ["o-", "s--"]):
    ax.plot(batches, values, marker, lw=2, label=label)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xticks(batches, [f"{b:,}" for b in batches])
ax.minorticks_off()
ax.set_xlabel("batch size (log scale)")
ax.set_ylabel("µs per image (median, log scale)")
ax.set_title(f"LeNet-300-100 at {ticket_percent:.1f}% of the weights")
ax.grid(alpha=0.3)
ax.legend()
save_figure(fig, args, "time_vs_batch",
            look_for="per-image time falls as the batch grows for both; the gap between the lines is the speed-up "
                     "at this level, which depends on the batch size")
