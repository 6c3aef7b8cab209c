"""Is there something smarter than "just initialise randomly"?

Random is fine; the *scale* of the random numbers is what matters. The demo
pushes one batch of random inputs through DEPTH layers of Linear + ReLU
(no training at all) and records the standard deviation of the activations
after every layer, for three ways of drawing the initial weights:

* naive:        weights ~ N(0, 1), ignoring how many inputs each unit adds up;
* default:      PyTorch's nn.Linear default (uniform, std = 1/sqrt(3 * fan_in));
* Kaiming:      weights ~ N(0, 2 / fan_in), from `nn.init.kaiming_normal_`,
                chosen so that the signal keeps its size through a ReLU.

What you will see: with the naive scale the activations grow about
sqrt(fan_in / 2) times per layer until they overflow float32; with the
default they shrink towards zero over 50 layers; with Kaiming they stay
close to 1 all the way down. The figure plots the three curves on a log scale.
"""

import math
import os

import matplotlib.pyplot as plt
import torch
from torch import nn

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
DEPTH = 50  # askta: param(label="Depth (layers)", min=2, max=100)
# fan_in of every layer
WIDTH = 128  # askta: param(label="Width (fan_in)", min=16, max=512, step=16)
BATCH_SIZE = 128
LAYERS_TO_PRINT = [1, 2, 5, 10, 20, 30, 40, 50]

torch.manual_seed(SEED)
print(f"device: {DEVICE}")


def naive(weight):
    nn.init.normal_(weight, mean=0.0, std=1.0)


def pytorch_default(weight):
    pass                                          # keep what nn.Linear drew


def kaiming(weight):
    nn.init.kaiming_normal_(weight, nonlinearity="relu")


SCHEMES = {"naive N(0, 1)": naive, "nn.Linear default": pytorch_default, "Kaiming N(0, 2/fan_in)": kaiming}


def activation_stds(init_weights):
    """Std of the activations after each of DEPTH Linear + ReLU layers."""
    torch.manual_seed(SEED)                       # same starting draws for every scheme
    x = torch.randn(BATCH_SIZE, WIDTH).to(DEVICE)
    stds = []
    with torch.no_grad():
        for _ in range(DEPTH):
            # No bias, so only the weight scale affects the signal.
            layer = nn.Linear(WIDTH, WIDTH, bias=False)
            init_weights(layer.weight)
            x = torch.relu(layer.to(DEVICE)(x))
            stds.append(x.std().item())
    return stds


results = {name: activation_stds(init) for name, init in SCHEMES.items()}


def show(value):
    """Print overflowed values (inf, or nan from inf - inf) as a word."""
    return f"{value:>24.3g}" if math.isfinite(value) else f"{'overflow':>24}"


print()
print(f"std of the activations after each layer (input std = 1, width {WIDTH}, ReLU after every layer)")
print(f"{'layer':>5}" + "".join(f"{name:>24}" for name in results))
for layer in [n for n in LAYERS_TO_PRINT if n <= DEPTH] + ([DEPTH] if DEPTH not in LAYERS_TO_PRINT else []):
    print(f"{layer:>5}" + "".join(show(stds[layer - 1]) for stds in results.values()))

fig, ax = plt.subplots(figsize=(6, 4))
for name, stds in results.items():
    ax.plot(range(1, DEPTH + 1), stds, label=name)     # inf/nan points are simply not drawn
ax.set_yscale("log")
ax.set_xlabel("layer")
ax.set_ylabel("std of activations (log scale)")
ax.set_title(f"Activation scale through {DEPTH} Linear + ReLU layers")
ax.legend()
fig.tight_layout()
plt.show()

kaiming_stds = results["Kaiming N(0, 2/fan_in)"]
print()
print(f"Conclusion: only the Kaiming scale keeps the signal usable after {DEPTH} layers "
      f"(std between {min(kaiming_stds):.2f} and {max(kaiming_stds):.2f}); the naive scale overflows and "
      f"the default fades to {results['nn.Linear default'][-1]:.0e}.")
