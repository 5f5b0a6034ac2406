"""Tutorial 3: from one layer to a network: ReLU, softmax cross-entropy, Sequential, Glorot initialisation, Adam.

Goal: derive and gradient-check every piece that tutorial 5's training loop uses and tutorial 2 did not build:
the ReLU and its kink at 0; softmax cross-entropy and its gradient (softmax(z) - onehot(y)) / N; `Sequential`,
which chains layers and names their parameters ("1.W"); Glorot initialisation, which keeps the signal's size
from layer to layer; and Adam, written as a few NumPy lines and checked against minilottery's optimizers,
pruning mask included. Then a tiny network trains on synthetic data with our loop and with the library's.
LeNet-300-100, as the paper builds it (Frankle & Carbin 2019, Figure 2), is exactly the `Sequential` we write
by hand. No data set is needed.

Run (from the repository root, after `pip install -e .`):
    python tutorials/03_activations_loss_and_adam.py           # about 5 s on a 2-core laptop CPU
    python tutorials/03_activations_loss_and_adam.py --class   # about 2 s (a shallower stack, fewer steps)
    python tutorials/03_activations_loss_and_adam.py --quick   # about 2 s

Prints: ReLU's gradient beside its central difference (0.5 at the kink), the softmax cross-entropy derivation
with its gradient check, LeNet-300-100's parameter names and shapes built by hand and by `build_model`, the
Glorot standard deviations and how the signal's size changes layer by layer, Adam's first steps and its
agreement with `ReferenceAdam` and `Adam`, and the loss of a tiny network falling as it trains.
Draws: figures/03_activations_loss_and_adam/init_by_depth.png (activation and gradient size, layer by layer,
    for four initialisations)
Draws: figures/03_activations_loss_and_adam/tiny_training.png (training loss of our loop and the library's)
"""

import copy
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.backend import get_array_module, to_device, to_numpy
from minilottery.gradcheck import away_from_zero, check_layer, check_loss, check_model, numerical_vjp, rel_error
from minilottery.lab.tutorial import by_size, heading, parse_args, save_figure
from minilottery.layers import Dense, Flatten, ReLU, Sequential
from minilottery.layers.init import fans
from minilottery.loss import softmax_cross_entropy
from minilottery.models import build_model
from minilottery.optim import Adam, ReferenceAdam, make_optimizer
from minilottery.training import train_step

args = parse_args(__doc__, "03_activations_loss_and_adam.py")
np.set_printoptions(precision=4, suppress=True, linewidth=120)
rng = np.random.default_rng(0)

# %%
heading("1. ReLU: forward, backward, and the kink at 0")
print("y = max(x, 0), element by element. Its derivative is 1 where x > 0 and 0 where x < 0, so backward passes")
print("the upstream gradient through where the input was positive and blocks it elsewhere: dx = dout * (x > 0).")
print("At x = 0 there is a kink: the slope is 0 on the left and 1 on the right. Any value in [0, 1] is a valid")
print("'subgradient'; minilottery (like PyTorch) takes 0.")
relu = ReLU()
x = to_device(np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]]), args.device)  # (N, features) = (1, 5): one input has x = 0
dout = to_device(np.ones((1, 5)), args.device)  # dL/dy = 1 everywhere, so dx shows the derivative itself
y = relu.forward(x)
dx = relu.backward(dout)
numeric = numerical_vjp(lambda: relu.forward(x), x, dout)
print("x                          ", to_numpy(x)[0])
print("y = relu(x)                ", to_numpy(y)[0] + 0.0)  # + 0.0 prints -0.0 (from -2 * False) as 0.0
print("dx = backward(1)           ", to_numpy(dx)[0])
print("central difference (h=1e-6)", to_numpy(numeric)[0])
print("At x = 0 the central difference is (relu(h) - relu(-h)) / 2h = (h - 0) / 2h = 0.5: the average of the two")
print("slopes, which matches neither side. That is why gradient checks keep inputs away from kinks")
print("(`minilottery.gradcheck.away_from_zero`); random Gaussian inputs hit exactly 0 with probability 0.")
assert to_numpy(dx)[0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
assert abs(float(numeric[0, 2]) - 0.5) < 1e-9
assert np.all(to_numpy(dout) == 1.0), "backward must never write into the caller's dout"
x_random = away_from_zero(to_device(rng.standard_normal((4, 6)), args.device))
relu_errors = check_layer(ReLU(), x_random)
print("check_layer(ReLU()) away from 0:", {k: f"{v:.1e}" for k, v in relu_errors.items()})
assert relu_errors["x"] < 1e-8


# %%
heading("2. softmax cross-entropy: the loss and its gradient, (softmax(z) - onehot(y)) / N")
print("The network's last layer gives K scores per example, the logits z (N, K). Softmax turns them into")
print("probabilities, and the loss is the mean negative log-probability of the true class y:")
print("  p[n, k] = exp(z[n, k]) / sum_j exp(z[n, j])")
print("  L = (1/N) sum_n L_n,   L_n = -log p[n, y_n] = -z[n, y_n] + log sum_j exp(z[n, j])")
print("Differentiate L_n with respect to z[n, k], term by term:")
print("  d(-z[n, y_n]) / dz[n, k]               = -1 if k == y_n else 0   = -onehot(y)[n, k]")
print("  d(log sum_j exp(z[n, j])) / dz[n, k]   = exp(z[n, k]) / sum_j exp(z[n, j]) = p[n, k]")
print("so dL_n/dz[n, k] = p[n, k] - onehot(y)[n, k]. Row n's logits appear only in L_n, and L is the mean over")
print("N rows, hence   dL/dz = (softmax(z) - onehot(y)) / N.")
print("Each row of the gradient sums to 1 - 1 = 0: raising every logit of a row by the same amount changes nothing.")


def our_softmax_cross_entropy(z, labels):
    """Mean cross-entropy of softmax(z) (N, K) against integer labels (N,), and its gradient dL/dz (N, K)."""
    xp = get_array_module(z)
    n = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)  # softmax(z) = softmax(z - c) for any c per row: now exp <= 1
    log_sum = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # (N, 1): log sum_j exp(shifted[n, j])
    rows = xp.arange(n)
    loss = (log_sum[:, 0] - shifted[rows, labels]).mean()  # L_n = -shifted[n, y_n] + log sum_j exp(shifted[n, j])
    p = xp.exp(shifted - log_sum)  # (N, K) softmax
    onehot = xp.zeros_like(z)
    onehot[rows, labels] = 1.0
    return loss, (p - onehot) / n


n_examples, n_classes = 4, 5
z = to_device(3.0 * rng.standard_normal((n_examples, n_classes)), args.device)  # float64, for differences
labels = to_device(rng.integers(0, n_classes, n_examples), args.device)
loss, dz = our_softmax_cross_entropy(z, labels)
library_loss, library_dz = softmax_cross_entropy(z, labels)
print(f"logits z {tuple(z.shape)}, labels {to_numpy(labels)}: our loss {float(loss):.10f}, "
      f"minilottery.loss.softmax_cross_entropy {float(library_loss):.10f}")
print("our dz:\n", to_numpy(dz))
print("largest |our dz - library dz|:", f"{float(np.abs(to_numpy(dz - library_dz)).max()):.1e}")
np.testing.assert_allclose(to_numpy(dz), to_numpy(library_dz), rtol=0, atol=1e-15)
assert abs(float(loss) - float(library_loss)) < 1e-12
assert np.allclose(to_numpy(dz).sum(axis=1), 0.0)
numeric_dz = numerical_vjp(lambda: our_softmax_cross_entropy(z, labels)[0], z, 1.0)  # a scalar f: dout = 1
loss_error = rel_error(dz, numeric_dz)
print(f"central differences agree: relative error {loss_error:.1e};  "
      f"minilottery.gradcheck.check_loss on the library's loss: {check_loss(z, labels):.1e}")
assert loss_error < 1e-7 and check_loss(z, labels) < 1e-7

print("\nWhy subtract the row maximum: exp(1000) overflows to inf, and inf / inf is nan.")
big = to_device(np.array([[1000.0, 0.0, -1000.0]]), args.device)
with np.errstate(over="ignore", invalid="ignore"):
    naive = to_numpy(np.exp(to_numpy(big)) / np.exp(to_numpy(big)).sum(axis=1, keepdims=True))
print("naive softmax([1000, 0, -1000]) =", naive[0], "  shifted: loss for label 1 =",
      f"{float(our_softmax_cross_entropy(big, to_device(np.array([1]), args.device))[0]):.1f}")
assert np.isnan(naive).any()
uniform = float(our_softmax_cross_entropy(to_device(np.zeros((3, 10)), args.device),
                                          to_device(np.array([0, 4, 9]), args.device))[0])
print(f"Equal logits give every class p = 1/K, so the loss is log K: {uniform:.4f} = log 10 = {math.log(10):.4f}.")
print("A freshly initialised 10-class network starts near this value (tutorial 5's first loss is about 2.3).")
assert abs(uniform - math.log(10)) < 1e-12

# %%
heading("3. Sequential: layers in order, parameters by name")
print("A network is a list of layers. forward runs them first to last; backward runs their backward passes last")
print("to first, each turning dL/d(its output) into dL/d(its input) and filling its own grads: the chain rule.")
print("This is LeNet-300-100 (Frankle & Carbin 2019, Figure 2: fully connected 300, 100, 10) written by hand:")
draw = np.random.default_rng(0)  # the weights are drawn from one seeded generator, layer by layer
by_hand = Sequential(
    Flatten(),  # (N, 1, 28, 28) -> (N, 784)
    Dense(784, 300, rng=draw), ReLU(),
    Dense(300, 100, rng=draw), ReLU(),
    Dense(100, 10, rng=draw),  # the output layer: 10 logits, no ReLU (softmax cross-entropy follows)
).to(args.device)
print(by_hand)
print("Parameters are named '<layer index>.<key>': Flatten (0) and the ReLUs (2, 4) have none, so the names skip them.")
print("The optimizer's state, the pruning masks and saved tickets are all keyed by these names.")
model = build_model("lenet_300_100", seed=0).to(args.device)  # what tutorial 5 trains
for (name, ours), (their_name, theirs) in zip(by_hand.parameters().items(), model.parameters().items()):
    print(f"  {name:4s} {str(tuple(ours.shape)):11s}  build_model: {their_name:4s} {str(tuple(theirs.shape)):11s}  "
          f"same values: {bool(np.array_equal(to_numpy(ours), to_numpy(theirs)))}")
    assert name == their_name and np.array_equal(to_numpy(ours), to_numpy(theirs))
assert repr(by_hand) == repr(model) and list(by_hand.parameters()) == list(model.parameters())
print("build_model('lenet_300_100', seed=0) is exactly this Sequential: same layers, names, shapes and θ0.")

images = to_device(rng.standard_normal((8, 1, 28, 28)).astype(np.float32), args.device)  # synthetic: no MNIST
digits = to_device(rng.integers(0, 10, 8), args.device)
logits = model.forward(images)
start_loss, dlogits = softmax_cross_entropy(logits, digits)
dimages = model.backward(dlogits)
print(f"forward: images {tuple(images.shape)} -> logits {tuple(logits.shape)}, loss {float(start_loss):.3f} "
      "(a uniform guess scores log 10 = 2.303);")
print(f"backward: dlogits {tuple(dlogits.shape)} -> dimages {tuple(dimages.shape)}")
print("gradients() has the same names and shapes as parameters():",
      {name: tuple(g.shape) for name, g in model.gradients().items()})
assert {n: g.shape for n, g in model.gradients().items()} == {n: p.shape for n, p in model.parameters().items()}

saved = model.state_dict()  # name -> a host (NumPy) copy: it does not change when the model trains on
model.parameters()["5.b"][...] += 1.0  # parameters() gives the live arrays: this changes the model itself
print("after changing 5.b in place, the state_dict copy still holds the old values:",
      bool(np.all(saved["5.b"] == 0.0)))
assert np.all(saved["5.b"] == 0.0)
model.load_state_dict(saved)  # and back
assert np.all(to_numpy(model.parameters()["5.b"]) == 0.0)

small_mask = rng.random((10, 100)) < 0.8  # keep 80% of the output layer's weights (1 = keep, 0 = pruned)
model.set_masks({"5.W": small_mask})  # a mask is attached by the name of the parameter it prunes
model.forward(images)
model.backward(dlogits)
print("set_masks({'5.W': mask}): masks() now holds", list(model.masks()),
      f"and 5.W's gradient is exactly 0 at its {int((~small_mask).sum())} pruned entries:",
      bool(np.all(to_numpy(model.gradients()["5.W"])[~small_mask] == 0.0)))
assert np.all(to_numpy(model.gradients()["5.W"])[~small_mask] == 0.0)
model.set_masks({"5.W": None})  # None removes the mask

tiny = Sequential(Flatten(), Dense(12, 6, rng=draw), ReLU(), Dense(6, 3, rng=draw)).astype(np.float64)
tiny.to(args.device)
network_errors = check_model(tiny, to_device(rng.standard_normal((5, 3, 2, 2)), args.device),
                             to_device(rng.integers(0, 3, 5), args.device))
print("check_model (loss included, every parameter, through the whole chain):",
      {k: f"{v:.1e}" for k, v in network_errors.items()})
assert max(network_errors.values()) < 1e-6

# %%
heading("4. Glorot initialisation: keeping the signal's size from layer to layer")
print("One output of a Dense layer is y = sum_i W[o, i] x[i] over fan_in inputs. With W and x independent and")
print("W zero-mean:   Var(y) = fan_in * Var(W) * E[x^2].   Backward, dx[i] = sum_o W[o, i] dy[o] over fan_out")
print("outputs:       Var(dx) = fan_out * Var(W) * Var(dy).")
print("Keeping the forward signal's size needs Var(W) = 1/fan_in; keeping the gradient's needs 1/fan_out.")
print("Glorot & Bengio (2010) take the compromise Var(W) = 2 / (fan_in + fan_out); the paper draws every weight")
print("from N(0, 2 / (fan_in + fan_out)) ('Gaussian Glorot', Figure 2), as `glorot_normal` does. Biases start at 0.")
for name, w in model.parameters().items():
    if name.endswith(".W"):
        fan_in, fan_out = fans(tuple(w.shape))
        std = math.sqrt(2.0 / (fan_in + fan_out))
        measured = float(to_numpy(w).std())
        print(f"  {name}: fan_in {fan_in:3d}, fan_out {fan_out:3d}: std sqrt(2/{fan_in + fan_out}) = {std:.4f}; "
              f"measured over its {w.size:,} weights: {measured:.4f}")
        assert abs(measured - std) < 0.08 * std  # 5.W has only 1,000 draws: a few % of sampling noise

width, depth = by_size(args, 128, 256, 512), by_size(args, 10, 15, 20)
print(f"\nA deep stack: {depth} layers Dense({width}, {width}), each followed by a ReLU, on 512 unit-variance inputs.")
print("A ReLU zeroes the negative half of a zero-mean input, so it halves E[x^2]: with fan_in = fan_out = n and")
print("Glorot's Var(W) = 1/n, each layer multiplies the signal's size sqrt(E[h^2]) by sqrt(1/2) = 0.71. Without the")
print("ReLU (a linear stack) Glorot keeps it exactly: that is the case Glorot & Bengio derived it for. Scale the")
print("weights by a, and the factor per layer becomes a * 0.71: small errors compound geometrically with depth.")
inits = {"0.5 × Glorot, ReLU (too small)": (0.5, True), "Glorot, ReLU": (1.0, True),
         "2 × Glorot, ReLU (too large)": (2.0, True), "Glorot, no activation": (1.0, False)}
forward_std, backward_std = {}, {}  # label -> root mean square after 0, 1, ..., depth layers
stack_rng = np.random.default_rng(4)  # this section's own stream: the later sections' numbers do not depend on size
signal_in = to_device(stack_rng.standard_normal((512, width)), args.device)  # (N, width), unit variance
xp = get_array_module(signal_in)
for label, (scale, with_relu) in inits.items():
    layers = []
    draw = np.random.default_rng(1)  # the same Gaussian draws for every curve: only the scale differs
    for _ in range(depth):
        layer = Dense(width, width, rng=draw, dtype=np.float64)
        layer.params["W"] = scale * layer.params["W"]
        layers += [layer, ReLU()] if with_relu else [layer]
    stack = Sequential(*layers).to(args.device)
    h = signal_in
    forward_std[label] = [1.0]
    for layer in stack.layers:  # run the stack layer by layer to record the std after every Dense (+ ReLU)
        h = layer.forward(h)
        if with_relu == isinstance(layer, ReLU):
            forward_std[label].append(float(xp.sqrt((h**2).mean())))  # root mean square: sqrt(E[h^2])
    g = to_device(stack_rng.standard_normal(h.shape), args.device)  # a unit-variance gradient at the top
    backward_std[label] = [1.0]
    for layer in reversed(stack.layers):
        g = layer.backward(g)
        if isinstance(layer, Dense):
            backward_std[label].append(float(xp.sqrt((g**2).mean())))
    per_layer = (forward_std[label][-1] / forward_std[label][0]) ** (1 / depth)
    expected = scale * (math.sqrt(0.5) if with_relu else 1.0)
    print(f"  {label:33s}: size after layer {depth} = {forward_std[label][-1]:9.2e}  (forward),"
          f" {backward_std[label][-1]:9.2e} (backward); per layer × {per_layer:.3f} (predicted {expected:.3f})")
    assert abs(per_layer - expected) < 0.06 * expected  # a finite width's random matrices: a few % off
print("(Measured as the root mean square sqrt(E[h^2]), the quantity the variance argument tracks: a ReLU's output")
print("is not zero-mean, so its standard deviation is smaller, 0.58 rather than 0.71 after one layer.)")
print("He et al. (2015) correct the ReLU's factor with Var(W) = 2/fan_in (exercise 2).")
print("LeNet-300-100's layers narrow (784 -> 300 -> 100 -> 10), so Glorot's Var(W) is larger than 1/fan_in there:")
print("fan_in * Var(W) = 2 fan_in / (fan_in + fan_out) = 1.45, 1.50, 1.82, which nearly makes up for the two ReLUs:")
gains = [2 * fan_in / (fan_in + fan_out) for fan_in, fan_out in [(784, 300), (300, 100), (100, 10)]]
predicted = math.sqrt(gains[0] * 0.5 * gains[1] * 0.5 * gains[2])  # Dense, ReLU, Dense, ReLU, Dense
unit_images = np.random.default_rng(5).standard_normal((1000, 1, 28, 28)).astype(np.float32)  # the same at any size
unit_images = to_device(unit_images, args.device)
logits_rms = float(xp.sqrt((model.forward(unit_images) ** 2).mean()))
print(f"predicted size of the logits for unit-size inputs sqrt(1.45 * 0.5 * 1.50 * 0.5 * 1.82) = {predicted:.3f}; "
      f"measured on 1,000 random images: {logits_rms:.3f}.")
assert abs(logits_rms - predicted) < 0.1 * predicted
print("Backward, fan_out * Var(W) is below 1 in every layer, so the gradient shrinks toward the input; Adam's")
print("per-weight step size (section 5) does not depend on the gradient's scale, so the paper's Glorot trains well.")

fig, (ax_fwd, ax_bwd) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for label, (_, with_relu) in inits.items():
    style = "--" if not with_relu else "-"
    ax_fwd.semilogy(range(depth + 1), forward_std[label], style, marker="o", ms=3, label=label)
    ax_bwd.semilogy(range(depth + 1), backward_std[label], style, marker="o", ms=3, label=label)
ax_fwd.set_xlabel("layers passed (forward, from the input)")
ax_fwd.set_ylabel("root mean square, sqrt(E[h²])")
ax_fwd.set_title("activations")
ax_bwd.set_xlabel("layers passed (backward, from the loss)")
ax_bwd.set_title("gradients")
ax_fwd.legend(fontsize=8)
fig.suptitle(f"The signal's size through {depth} Dense({width}, {width}) layers: the weights' scale compounds")
save_figure(fig, args, "init_by_depth",
            look_for="the dashed line (Glorot, linear) stays flat; with ReLUs Glorot falls by 0.71 per layer, half "
                     "its scale falls by 0.35 per layer and twice its scale grows by 1.41: straight lines on a log "
                     "axis, their slopes the per-layer factors")

# %%
heading("5. Adam: m, v, bias correction, eps, and a mask")
print("Adam (Kingma & Ba 2015, Algorithm 1) keeps two running means per weight, starting at 0:")
print("  m = beta1 m + (1 - beta1) g        the gradient's mean (momentum), beta1 = 0.9")
print("  v = beta2 v + (1 - beta2) g^2      its mean square, beta2 = 0.999")
print("Unrolled, m_t = (1 - beta1) sum_i beta1^(t-i) g_i: if every g_i had mean G, E[m_t] = (1 - beta1^t) G, too small")
print("while t is small because m started at 0. Dividing by (1 - beta1^t) fixes that (the bias correction), and")
print("likewise v. The step is lr * m_hat / (sqrt(v_hat) + eps): about lr in size for a gradient of steady sign,")
print("whatever the gradient's scale, and eps keeps a weight whose v is 0 (a pruned weight) from dividing 0 by 0.")
print("The paper trains LeNet with Adam at lr 1.2e-3, and Conv-2/4/6 at 2e-4, 3e-4, 3e-4 (Figure 2).")


def adam_step(model, state, lr=1.2e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One mask-aware Adam step on every parameter, in place (state: name -> {"m", "v", "t"}, filled on first use)."""
    masks = model.masks()
    for name, p in model.parameters().items():
        xp = get_array_module(p)
        g, mask = model.gradients()[name], masks.get(name)
        d = g if mask is None else g * mask  # a pruned weight's gradient counts as 0: its m and v stay exactly 0
        s = state.setdefault(name, {"m": xp.zeros_like(p), "v": xp.zeros_like(p), "t": 0})
        s["t"] += 1
        s["m"] = beta1 * s["m"] + (1 - beta1) * d
        s["v"] = beta2 * s["v"] + (1 - beta2) * d**2
        m_hat = s["m"] / (1 - beta1 ** s["t"])  # bias correction
        v_hat = s["v"] / (1 - beta2 ** s["t"])
        new_p = p - lr * m_hat / (xp.sqrt(v_hat) + eps)
        p[...] = new_p if mask is None else new_p * mask  # into the model's own array; pruned weights stay 0.0


draw = np.random.default_rng(2)
small = Sequential(Flatten(), Dense(12, 8, rng=draw), ReLU(), Dense(8, 3, rng=draw))
adam_mask = {"1.W": rng.random((8, 12)) < 0.5, "3.W": rng.random((3, 8)) < 0.8}  # 1 = keep
small.set_masks(adam_mask)
small.to(args.device)
copies = {"ours": copy.deepcopy(small), "ReferenceAdam": copy.deepcopy(small), "Adam": copy.deepcopy(small)}
our_state = {}
optimizers = {"ReferenceAdam": ReferenceAdam(copies["ReferenceAdam"], lr=1.2e-3),
              "Adam": Adam(copies["Adam"], lr=1.2e-3)}  # Adam: the fast one, what make_optimizer("adam") returns
adam_steps = by_size(args, 5, 20, 50)
batch = to_device(rng.standard_normal((16, 3, 2, 2)).astype(np.float32), args.device)  # float32, as in training
batch_labels = to_device(rng.integers(0, 3, 16), args.device)
before = to_numpy(small.parameters()["1.W"]).copy()
for step in range(1, adam_steps + 1):
    for name, net in copies.items():
        _, dlogits = softmax_cross_entropy(net.forward(batch), batch_labels)
        net.backward(dlogits)
        if name == "ours":
            adam_step(net, our_state)
        else:
            optimizers[name].step()
    if step == 1:
        first_step = np.abs(to_numpy(copies["ours"].parameters()["1.W"]) - before)[adam_mask["1.W"]]
        print("step 1: m_hat = g and v_hat = g^2, so each kept weight with a gradient moves by lr * |g| / (|g| + eps),")
        print(f"which is lr: the kept weights of 1.W moved by {first_step.min():.4e} to {first_step.max():.4e} "
              "(lr = 1.2e-3).")
        print("Without the bias correction this first step would be lr * (1 - beta1) / sqrt(1 - beta2) = 3.2 lr.")
        assert np.allclose(first_step[first_step > 0], 1.2e-3, rtol=1e-3)
ours, reference, fast = (copies[k].parameters() for k in ("ours", "ReferenceAdam", "Adam"))
for name in ours:
    assert np.array_equal(to_numpy(ours[name]), to_numpy(reference[name]))
largest = max(float(np.abs(to_numpy(ours[n]) - to_numpy(fast[n])).max()) for n in ours)
print(f"after {adam_steps} steps on float32 weights: our adam_step == ReferenceAdam bit for bit (the same equations")
print(f"in the same order); largest |ours - Adam| = {largest:.1e}.")
print("(Adam, the fast one, folds the bias corrections into two Python floats and writes into arrays made")
print("once, so it rounds differently in the last bits: see minilottery/optim/fast.py.)")
assert largest < 1e-6
for name, mask in adam_mask.items():
    pruned = ~mask
    for label, net in copies.items():
        assert np.all(to_numpy(net.parameters()[name])[pruned] == 0.0), (label, name)
    for key in ("m", "v"):
        assert np.all(to_numpy(our_state[name][key])[pruned] == 0.0)
        assert np.all(to_numpy(optimizers["ReferenceAdam"].state[name][key])[pruned] == 0.0)
        assert np.all(to_numpy(optimizers["Adam"].state[name][key])[pruned] == 0.0)
print(f"The {sum(int((~m).sum()) for m in adam_mask.values())} pruned weights are exactly 0.0 after every step "
      "in all three, and so are their m and v:")
print("this is what 'mask-aware' means (tutorial 6 shows what goes wrong without it).")
zero = np.zeros(1)  # m = v = 0 at a pruned weight
with np.errstate(invalid="ignore"):
    without_eps = zero / (np.sqrt(zero) + 0.0)
print(f"Their update is 0 / (sqrt(0) + eps) = {(zero / (np.sqrt(zero) + 1e-8))[0]}; "
      f"with eps = 0 it would be 0 / 0 = {without_eps[0]}.")
assert np.isnan(without_eps[0])

# %%
heading("6. all together: a small network learns, with our loop and with the library's")
print("Synthetic 'images': 4 classes, each a fixed random 8×8 pattern under three times its size in noise, scaled")
print("to unit size (as normalised pixels are). A LeNet in miniature,")
print("Flatten -> Dense(64, 32) -> ReLU -> Dense(32, 16) -> ReLU -> Dense(16, 4), trains with batch 60 and lr 1.2e-3.")
patterns = rng.standard_normal((4, 1, 8, 8))  # (class, C, H, W)
train_labels = rng.integers(0, 4, 600)
noisy = patterns[train_labels] + 3.0 * rng.standard_normal((600, 1, 8, 8))  # (600, 1, 8, 8)
train_images = (noisy / math.sqrt(1 + 3.0**2)).astype(np.float32)  # unit size: pattern and noise variances add
train_images, train_labels = to_device(train_images, args.device), to_device(train_labels, args.device)


def mini_lenet():
    draw = np.random.default_rng(0)
    return Sequential(Flatten(), Dense(64, 32, rng=draw), ReLU(), Dense(32, 16, rng=draw), ReLU(),
                      Dense(16, 4, rng=draw)).to(args.device)


iterations = by_size(args, 100, 300, 600)
nets = {"ours": mini_lenet(), "ReferenceAdam": mini_lenet(), "Adam": mini_lenet()}  # the same θ0 three times
library_optimizers = {"ReferenceAdam": ReferenceAdam(nets["ReferenceAdam"], lr=1.2e-3),
                      "Adam": make_optimizer("adam", nets["Adam"], lr=1.2e-3)}  # tutorial 5's optimizer
our_state = {}
losses = {name: [] for name in nets}
for it in range(iterations):
    start = 60 * it % 600  # ten batches of 60 cover the 600 images: one epoch every ten iterations
    xb, yb = train_images[start:start + 60], train_labels[start:start + 60]
    loss, dlogits = our_softmax_cross_entropy(nets["ours"].forward(xb), yb)  # forward, loss ...
    nets["ours"].backward(dlogits)  # ... backward ...
    adam_step(nets["ours"], our_state)  # ... update: tutorial 5's loop, by hand
    losses["ours"].append(float(loss))
    for name, optimizer in library_optimizers.items():  # the same, one call per iteration
        losses[name].append(float(train_step(nets[name], optimizer, xb, yb)))
for name, curve in losses.items():
    print(f"{name:13s}: training loss {curve[0]:.3f} at the first batch, {np.mean(curve[-10:]):.4f} over the "
          f"last 10 (iterations {iterations - 9}-{iterations})")
same = all(np.array_equal(to_numpy(a), to_numpy(b))
           for a, b in zip(nets["ours"].parameters().values(), nets["ReferenceAdam"].parameters().values()))
print(f"our loop and train_step with ReferenceAdam end with the same weights, bit for bit: {same}")
assert same
drift = max(float(np.abs(to_numpy(a) - to_numpy(b)).max())
            for a, b in zip(nets["ours"].parameters().values(), nets["Adam"].parameters().values()))
loss_gap = max(abs(a - b) for a, b in zip(losses["ours"], losses["Adam"]))
print(f"with the fast Adam the weights differ by up to {drift:.1e} after {iterations} iterations, and the losses by")
print(f"up to {loss_gap:.1e}: its last-bit rounding differences (section 5) feed the next gradients, so they")
print("persist, but they stay at float32's precision. Tutorial 5 runs this loop as `train`, for 10,000 iterations.")
assert abs(np.mean(losses["Adam"][-10:]) - np.mean(losses["ours"][-10:])) < 0.1 * np.mean(losses["ours"][-10:]) + 1e-3
assert np.mean(losses["ours"][-10:]) < 0.5 * losses["ours"][0]

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(losses["ours"], lw=3, alpha=0.6, label="our loop (section 2's loss, section 5's adam_step)")
ax.plot(losses["ReferenceAdam"], "--", lw=1.5, label="train_step with ReferenceAdam")
ax.plot(losses["Adam"], ":", lw=1.5, label="train_step with Adam (the fast one)")
ax.axhline(math.log(4), color="k", ls=":", lw=1, label="log 4: the loss of a uniform guess")
ax.set_xlabel("iteration (batch of 60)")
ax.set_ylabel("training loss (softmax cross-entropy)")
ax.set_title("A LeNet in miniature on synthetic data")
ax.legend(fontsize=8)
save_figure(fig, args, "tiny_training",
            look_for="the three curves lie on top of each other; they start a little above log 4 (the loss of a "
                     "uniform guess: random logits are not all equal, which costs a little more) and fall as Adam "
                     "trains, to near 0 once the network has learned the 600 training images")
