# syntax=docker/dockerfile:1
#
# askta in a container: the web server, the sandbox environment and bubblewrap.
# Every install step is a Makefile target that CI runs too (`make sandbox-env`,
# `make install`); docs/operations.md, section "Container", has the whole story.
#
# Build. The pinned torch wheel comes from the PyTorch index of TORCH_VARIANT:
#   docker build -t askta .                                          # cpu (default)
#   docker build -t askta:cu128 --build-arg TORCH_VARIANT=cu128 .    # CUDA 12.8 wheels
#
# Run. The demo sandbox is bubblewrap, which needs an unprivileged user namespace and
# a fresh /proc inside the container; Docker's defaults refuse both:
#   seccomp=unconfined     the default seccomp profile blocks clone/unshare(CLONE_NEWUSER)
#   apparmor=unconfined    the docker-default AppArmor profile denies the mounts bwrap makes
#   systempaths=unconfined the masked /proc paths forbid mounting a new procfs
#
#   docker run -d --name askta -p 8000:8000 \
#     --security-opt seccomp=unconfined \
#     --security-opt apparmor=unconfined \
#     --security-opt systempaths=unconfined \
#     -v askta-kb:/app/kb -v askta-data:/var/lib/askta \
#     askta
#
# The host must allow unprivileged user namespaces too: user.max_user_namespaces > 0,
# kernel.unprivileged_userns_clone=1 where that sysctl exists (Debian kernels), and
# kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10 and later. Without
# all of this the server still answers questions; demo runs are refused, and /readyz
# (checks.sandbox) and the log say why. compose.yaml sets the same options.

# --- build: both virtual environments, through the Makefile -------------------------
FROM python:3.11-slim-bookworm AS build

# cpu, or a CUDA build of PyTorch's wheel index (cu126, cu128, ...)
ARG TORCH_VARIANT=cpu

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# bubblewrap and python3-venv are what `make system-deps` would install (it skips them
# when present: the Debian /usr/bin/python3 makes the sandbox environment); make and
# git for the build. Versions come from the bookworm image, not pinned one by one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap python3-venv make git \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# The sandbox environment first: it depends on the Makefile alone, so a change to the
# source does not reinstall its torch. As root, the Makefile puts it in
# /opt/askta/sandbox-venv, world-readable for the uid that runs demos.
COPY Makefile ./
RUN make sandbox-env TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}

# The server's environment (.venv): torch from the same index first, then askta with
# the PostgreSQL driver instead of the test tools (EXTRAS=postgres).
COPY pyproject.toml README.md ./
COPY indexer/ indexer/
COPY server/ server/
RUN make install EXTRAS=postgres \
      TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}

# --- runtime --------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# bubblewrap runs the demos; libseccomp2 is what pyseccomp compiles their syscall
# filter with (ctypes); python3 is the Debian interpreter the sandbox environment was
# made from; tini, as PID 1, forwards signals and reaps what sandboxes leave.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap libseccomp2 python3 tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 askta \
 && useradd --uid 10001 --gid askta --no-log-init -l -m -d /home/askta \
      -s /usr/sbin/nologin askta

# Both environments at the paths they were built at (a virtualenv does not move).
COPY --from=build /opt/askta /opt/askta
COPY --from=build /app /app
WORKDIR /app
# Demo paths in entries are relative to the folder that holds kb/, so demos/ sits
# beside it. kb/ is written by the review tools (a TA's link, an instructor's save).
COPY demos/ demos/
COPY --chown=10001:10001 kb/ kb/
RUN install -d -o 10001 -g 10001 /var/lib/askta

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ASKTA_KB_DIR=/app/kb \
    ASKTA_DATA_DIR=/var/lib/askta \
    ASKTA_SANDBOX_PYTHON=/opt/askta/sandbox-venv/bin/python

# The knowledge base (seeded from the image the first time a named volume is mounted)
# and the data dir (index, SQLite database unless ASKTA_DATABASE_URL, secret key,
# demo cache).
VOLUME ["/app/kb", "/var/lib/askta"]

USER 10001:10001
EXPOSE 8000

# Liveness: /healthz answers once the model, index and database are up. Readiness,
# with the database and sandbox checked, is /readyz (compose.yaml probes that).
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["askta", "serve", "--host", "0.0.0.0", "--port", "8000"]
