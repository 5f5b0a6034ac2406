"""Tutorial 5: training LeNet-300-100 on MNIST: the loop, the validation split, early stopping as the paper defines it.

Goal: train the paper's fully connected network (Figure 2: 784-300-100-10, Adam 1.2e-3, batch 60) with
minilottery's iteration-based loop, and read the two numbers the lottery ticket paper reports for every
network: the early-stopping iteration (the iteration of minimum validation loss, Section 2) and the test
accuracy at that iteration.

Run (from the repository root, after `pip install -e .`; MNIST is read from $MINILOTTERY_DATA, else downloaded):
    python tutorials/05_train_lenet.py            # about 40 s on a 2-core CPU (10,000 iterations)
    python tutorials/05_train_lenet.py --class    # about 10 s (20,000 training images, 3,000 iterations)
    python tutorials/05_train_lenet.py --quick    # a few seconds (small subset, 300 iterations)
Tutorial 3 built the pieces this one puts together: the softmax cross-entropy loss and its gradient, Adam,
`Sequential` and the Gaussian Glorot initialisation.

Prints: the data splits, the model summary, one line per evaluation, the early-stopping iteration and the test
accuracy there and at the end.
Draws: figures/05_train_lenet/learning_curve.png (validation loss and test accuracy vs iteration, early stop marked).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minilottery.data import load_mnist
from minilottery.lab.tutorial import by_size, heading, parse_args, save_figure
from minilottery.models import build_model, summary
from minilottery.training import TrainConfig, train

args = parse_args(__doc__, "05_train_lenet.py")

# %%
heading("1. the data: MNIST with a validation split")
data = load_mnist()  # 55,000 train / 5,000 validation (held out by a fixed seed) / 10,000 test
data = by_size(args, data.subset(2000, 500, 1000), data.subset(20_000, 2000, 5000), data)
print(data)
print("The validation set is carved out of the training images: it chooses the early-stopping iteration, so the")
print("test set is never used to make a decision and the test accuracy stays an honest estimate.")
print("pixels:", data.x_train.dtype, f"in [{data.x_train.min():.0f}, {data.x_train.max():.0f}];",
      "labels:", np.bincount(data.y_train, minlength=10))

# %%
heading("2. the model: LeNet-300-100 with Gaussian Glorot weights from a seed")
model = build_model("lenet_300_100", seed=0)  # θ0: the lottery ticket experiment resets to these values
print("A `Sequential` of Dense and ReLU layers, its weights drawn from Glorot's Gaussian (tutorial 3 built both):")
print(summary(model, (1, 28, 28)))

# %%
heading("3. the loop")
config = TrainConfig(iterations=by_size(args, 300, 3000, 10_000), batch_size=60, optimizer="adam", lr=1.2e-3,
                     eval_every=by_size(args, 50, 100, 100), seed=0)
print(config)
print("Each iteration: take the next 60 images of this epoch's shuffled order, forward, softmax cross-entropy,")
print("backward (the loss's gradient, (softmax(z) - onehot(y)) / N, derived in tutorial 3), Adam step.")
print("Every", config.eval_every, "iterations: loss and accuracy on validation and test.")
result = train(model, data, config, device=args.device, progress=True, desc="LeNet-300-100")
history = result.history
for i in range(0, len(history["iteration"]), max(1, len(history["iteration"]) // 10)):
    print(f"iteration {history['iteration'][i]:6d}: train loss {history['train_loss'][i]:.4f}  "
          f"val loss {history['val_loss'][i]:.4f}  test accuracy {100 * history['test_accuracy'][i]:.2f}%")

# %%
heading("4. early stopping, as the paper defines it")
print(f"minimum validation loss at iteration {result.early_stop_iteration}")
print(f"test accuracy there: {100 * result.test_accuracy_at_early_stop:.2f}%  "
      f"(at the last iteration: {100 * result.final_test_accuracy:.2f}%)")
print(f"trained in {result.seconds:.1f} s on {args.device}")
stopped_before_the_end = result.early_stop_iteration < config.iterations
if stopped_before_the_end:
    print("The validation loss fell, reached its minimum and rose again as the network began to overfit.")
else:
    print("The validation loss was still falling at the last evaluation: at this size early stopping is just the")
    print("end of training and says nothing about learning speed (run --class or the full size to see a minimum).")
print("The paper does not stop training there; it *reports* that iteration as a measure of learning speed")
print("(winning tickets reach it sooner) and the test accuracy there as the network's accuracy.")
best = int(np.argmin(history["val_loss"]))
assert result.early_stop_iteration == history["iteration"][best]
least = by_size(args, None, 0.95, 0.97)  # 20,000 training images (--class) reach less than all 55,000
if least is not None:
    assert stopped_before_the_end, "the validation loss should reach its minimum before the last iteration"
    assert result.test_accuracy_at_early_stop > least, f"LeNet-300-100 should pass {100 * least:.0f}% by now"

fig, ax_loss = plt.subplots(figsize=(7, 4))
ax_loss.plot(history["iteration"], history["val_loss"], "-", lw=2, color="tab:blue", label="validation loss")
ax_loss.set_xlabel("training iteration")
ax_loss.set_ylabel("validation loss", color="tab:blue")
ax_acc = ax_loss.twinx()
ax_acc.plot(history["iteration"], 100 * np.array(history["test_accuracy"]), "--", lw=2, color="tab:red",
            label="test accuracy")
ax_acc.set_ylabel("test accuracy (%)", color="tab:red")
ax_acc.set_ylim(max(80, 100 * min(history["test_accuracy"])), 100)
ax_loss.axvline(result.early_stop_iteration, color="k", ls=":", lw=1.5)
ax_loss.annotate(f"early stop\n(iteration {result.early_stop_iteration})", (result.early_stop_iteration,
                 max(history["val_loss"])), ha="center", va="top", fontsize=9)
ax_loss.set_title("LeNet-300-100 on MNIST (Adam 1.2e-3, batch 60)")
fig.tight_layout()
look_for = ("the blue validation loss falls fast, bottoms out at the dotted line (the early-stopping iteration)"
            " and creeps up again as the network overfits, while the red test accuracy levels off near its best")
if not stopped_before_the_end:
    look_for = ("both curves are still improving at the right edge: the dotted early stop is the last evaluation,"
                " so this size shows only the start of training")
save_figure(fig, args, "learning_curve", look_for=look_for)
