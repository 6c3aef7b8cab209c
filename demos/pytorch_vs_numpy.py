"""PyTorch tensors and NumPy arrays: how close are they?

Very close under the hood: both are a block of memory plus a shape, strides
and a dtype. On the CPU, `torch.from_numpy(a)` and `t.numpy()` do not copy
anything; they give you a second view of the same memory.

What you will see:

1. change the tensor made by `torch.from_numpy`, and the NumPy array changes;
2. change the array returned by `.numpy()`, and the tensor changes;
3. `torch.tensor(a)` makes a copy, so it does not follow the array;
4. the same maths gives the same answers in both (note the different
   default float types: NumPy float64, PyTorch float32);
5. a GPU tensor lives in GPU memory, so memory sharing with NumPy is a CPU
   thing: moving to the GPU copies, `.cpu()` copies back, and `.numpy()` on
   a GPU tensor is refused. Part 5 runs on DEVICE; on a CPU it shows that
   `.to("cpu")` is then a no-op that returns the very same tensor.
"""

import os

import numpy as np
import torch

DEVICE = os.environ.get("ASKTA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

SEED = 0  # askta: param(label="Random seed", min=0, max=99)
N_VALUES = 5  # askta: param(label="Values per tensor", min=2, max=20)

torch.manual_seed(SEED)
print(f"device: {DEVICE}")
print("(parts 1-4 are about CPU memory, which NumPy and PyTorch can share)")

# --- 1. torch.from_numpy shares memory --------------------------------------
a = np.arange(N_VALUES, dtype=np.float32)
t = torch.from_numpy(a)
print()
print("1. t = torch.from_numpy(a)")
print(f"   before: a = {a}   t = {t.tolist()}")
t[0] = 100.0                          # write through the tensor...
print(f"   after t[0] = 100:   a = {a}   (the array changed too)")
print(f"   same memory: {np.shares_memory(a, t.numpy())}   "
      f"(a's address {a.ctypes.data:#x}, t's address {t.data_ptr():#x})")

# --- 2. .numpy() shares memory the other way --------------------------------
u = torch.zeros(N_VALUES)
b = u.numpy()
b[1] = -7.0                           # ...or write through the array
print()
print("2. b = u.numpy()")
print(f"   after b[1] = -7:    u = {u.tolist()}   (the tensor changed too)")

# --- 3. torch.tensor copies -------------------------------------------------
c = np.ones(N_VALUES, dtype=np.float32)
copied = torch.tensor(c)
c[2] = 42.0
print()
print("3. copied = torch.tensor(c)")
print(f"   after c[2] = 42:    copied = {copied.tolist()}   (a separate copy; it did not change)")

# --- 4. Same maths, different default dtypes --------------------------------
rng = np.random.default_rng(SEED)
m = rng.standard_normal((3, 4))                  # NumPy's default: float64
tm = torch.from_numpy(m)                         # keeps float64
print()
print("4. the same operations")
print(f"   {'operation':<22}{'NumPy':>12}{'PyTorch':>12}")
print(f"   {'sum':<22}{m.sum():>12.6f}{tm.sum().item():>12.6f}")
print(f"   {'mean of row 0':<22}{m[0].mean():>12.6f}{tm[0].mean().item():>12.6f}")
print(f"   {'(m @ m.T)[0, 1]':<22}{(m @ m.T)[0, 1]:>12.6f}{(tm @ tm.T)[0, 1].item():>12.6f}")
print(f"   default float type: np.zeros(1).dtype = {np.zeros(1).dtype}, torch.zeros(1).dtype = {torch.zeros(1).dtype}")

# --- 5. Devices: only CPU memory can be shared ------------------------------
print()
print(f"5. moving to DEVICE = {DEVICE}")
host = torch.from_numpy(np.arange(N_VALUES, dtype=np.float32))
on_device = host.to(DEVICE)
if on_device.device.type == "cpu":
    print(f"   host.to('cpu') is host itself: {on_device is host} (nothing to copy, memory still shared)")
    print("   On a GPU, .to('cuda') would copy into GPU memory and .cpu() would copy back.")
else:
    on_device[0] = -1.0
    print(f"   after on_device[0] = -1:  host = {host.tolist()}   (unchanged: .to() made a copy)")
    back = on_device.cpu()
    back[1] = -2.0
    print(f"   after back = on_device.cpu(); back[1] = -2:  on_device = {on_device.tolist()}   (unchanged: another copy)")
    try:
        on_device.numpy()
    except TypeError as err:
        print(f"   on_device.numpy() is refused: {str(err).splitlines()[0]}")
    print("   so the habit is on_device.cpu().numpy(), which copies once.")

print()
print("Conclusion: on the CPU, from_numpy() and .numpy() are free views of the same memory "
      "(change one, the other changes); torch.tensor() and device moves copy.")
