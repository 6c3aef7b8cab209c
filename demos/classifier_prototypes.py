"""Does a trained classifier just compare images with the class averages?

Chapter 4 first classifies 3s and 7s by comparing each image with the
average 3 and the average 7 ("prototypes"). This demo puts that idea next to
a trained linear layer, on synthetic 2-D data where the two classes are long,
thin, diagonal clouds (think of each point as an image squeezed down to two
numbers).

What you will see:

* the nearest-prototype rule is itself a linear layer (weights = class means),
* but the trained linear layer finds a different, much better boundary:
  around two thirds correct for the prototypes against nearly all correct for
  the trained layer on the same test points,
* the figure shows the clouds, the two class means and both boundaries.

A trained network still ends by picking the class whose weight vector best
matches the input, but those learned vectors need not be the class averages.
"""

import math
import os

import matplotlib.pyplot as plt
import torch
from torch import nn

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
N_PER_CLASS = 300      # training points per class (the test set has as many)
# distance between the two class centres, along x
CLASS_GAP = 2.0  # askta: param(label="Gap between the classes", min=0.5, max=5.0, step=0.1)
LONG_STD = 3.0         # spread of each cloud along the diagonal
SHORT_STD = 0.3        # spread across the diagonal
LEARNING_RATE = 0.1  # askta: param(label="Learning rate", min=0.001, max=1.0, step=0.001)
MOMENTUM = 0.9         # heavy-ball momentum: gets there in far fewer steps
# full-batch gradient steps
EPOCHS = 100  # askta: param(label="Gradient steps", min=10, max=300, step=10)

torch.manual_seed(SEED)
print(f"device: {DEVICE}")

ALONG = torch.tensor([1.0, 1.0]) / math.sqrt(2)     # the direction of the long, noisy axis
ACROSS = torch.tensor([1.0, -1.0]) / math.sqrt(2)


def make_points(n_per_class):
    """Two diagonal clouds centred at (-GAP/2, 0) (class 0) and (+GAP/2, 0) (class 1)."""
    xs, labels = [], []
    for label, centre_x in [(0, -CLASS_GAP / 2), (1, CLASS_GAP / 2)]:
        noise = (LONG_STD * torch.randn(n_per_class, 1) * ALONG
                 + SHORT_STD * torch.randn(n_per_class, 1) * ACROSS)
        xs.append(torch.tensor([centre_x, 0.0]) + noise)
        labels.append(torch.full((n_per_class,), label))
    # Made on the CPU, then moved, so every device sees the same points.
    return torch.cat(xs).to(DEVICE), torch.cat(labels).to(DEVICE)


x_train, y_train = make_points(N_PER_CLASS)
x_test, y_test = make_points(N_PER_CLASS)


def accuracy(logits, labels):
    return (logits.argmax(dim=1) == labels).float().mean().item()


# --- 1. The prototype classifier -------------------------------------------
# Nearest mean:  argmin_c |x - m_c|^2  =  argmax_c (x . m_c - |m_c|^2 / 2),
# so it is a linear layer whose weight rows are the class means.
prototypes = torch.stack([x_train[y_train == c].mean(dim=0) for c in (0, 1)])
proto_layer = nn.Linear(2, 2).to(DEVICE)
with torch.no_grad():
    proto_layer.weight.copy_(prototypes)
    proto_layer.bias.copy_(-(prototypes ** 2).sum(dim=1) / 2)
    distances = torch.cdist(x_test, prototypes)
    same = torch.equal(proto_layer(x_test).argmax(1), distances.argmin(1))
print(f"nearest-mean rule and the linear layer built from the means agree on every test point: {same}")

# --- 2. A linear layer trained with cross-entropy ---------------------------
trained = nn.Linear(2, 2).to(DEVICE)
loss_fn = nn.CrossEntropyLoss()
velocity = [torch.zeros_like(p) for p in trained.parameters()]
for epoch in range(EPOCHS):
    trained.zero_grad()
    loss = loss_fn(trained(x_train), y_train)
    loss.backward()
    # SGD with momentum, written out (torch.optim.SGD(momentum=0.9) does the same).
    with torch.no_grad():
        for p, v in zip(trained.parameters(), velocity):
            v.mul_(MOMENTUM).add_(p.grad)
            p -= LEARNING_RATE * v
print(f"trained layer: final training loss {loss.item():.4f} after {EPOCHS} full-batch steps")

with torch.no_grad():
    rows = [("class-mean prototypes", proto_layer), ("trained linear layer", trained)]
    print()
    print(f"{'classifier':<24}{'train acc':>10}{'test acc':>10}")
    results = {}
    for name, layer in rows:
        train_acc, test_acc = accuracy(layer(x_train), y_train), accuracy(layer(x_test), y_test)
        results[name] = test_acc
        print(f"{name:<24}{train_acc:>10.1%}{test_acc:>10.1%}")


def boundary_direction(layer):
    """The vector the layer compares inputs with: weight row of class 1 minus class 0."""
    w = layer.weight.detach().cpu()
    return w[1] - w[0]


def angle_degrees(u, v):
    return math.degrees(math.acos((u @ v / (u.norm() * v.norm())).clamp(-1, 1).item()))


d_proto, d_trained = boundary_direction(proto_layer), boundary_direction(trained)
print()
print(f"prototype direction (mean_1 - mean_0): ({d_proto[0]:+.2f}, {d_proto[1]:+.2f})")
print(f"trained direction   (w_1 - w_0):       ({d_trained[0]:+.2f}, {d_trained[1]:+.2f})")
print(f"angle between them: {angle_degrees(d_proto, d_trained):.0f} degrees "
      f"(the noisy diagonal is at 45; the trained layer looks across it)")

# --- Figure: points, prototypes and both decision boundaries --------------
xt, yt = x_test.cpu(), y_test.cpu()
fig, ax = plt.subplots(figsize=(6, 4))
for c, color in [(0, "tab:blue"), (1, "tab:orange")]:
    ax.scatter(xt[yt == c, 0], xt[yt == c, 1], s=6, alpha=0.4, color=color, label=f"class {c}")
protos = prototypes.cpu()
ax.scatter(protos[:, 0], protos[:, 1], marker="X", s=120, color="black", label="class means (prototypes)")
grid = torch.linspace(-9, 9, 2)
for name, layer, style in [("prototype boundary", proto_layer, "--"),
                           ("trained boundary", trained, "-")]:
    w = boundary_direction(layer)
    b = (layer.bias[1] - layer.bias[0]).item()
    # The boundary is where w . x + b = 0, i.e. x2 = -(w1 * x1 + b) / w2.
    ax.plot(grid, -(w[0] * grid + b) / w[1], style, color="black", lw=1.2, label=name)
ax.set_xlim(-9, 9)
ax.set_ylim(-7, 7)
ax.set_xlabel("feature 1")
ax.set_ylabel("feature 2")
ax.set_title("Class means vs a trained linear layer")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

print()
print(f"Conclusion: comparing with class averages gets {results['class-mean prototypes']:.0%} right, "
      f"the trained layer {results['trained linear layer']:.0%}: training finds better 'prototypes' than the averages.")
