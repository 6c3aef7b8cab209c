"""Where an entry's demo may live: a `.py` file under the project's demos/ folder.

An entry's `demo` is shown on a public page and run in the sandbox, so the path must
never reach anything else: not the server's code, not a virtual environment, not a
symlink that leads out of demos/. `demo_path_problem` checks the text of the path (the
schema uses it); `resolve_demo` checks the file on disk too, every time a demo is read
(by `askta check`, the entry page, the runner and the admin's test button).
"""

from __future__ import annotations

from pathlib import Path

DEMO_DIR = "demos"
EXAMPLE = "demos/linear_layers_collapse.py"


class DemoPathError(ValueError):
    """A demo path that may not be shown or run; the message says why, for people."""


def demo_path_problem(rel: str) -> str | None:
    """What is wrong with the text of a demo path, or None: it must be relative, under
    demos/, end in .py, and have no empty, "." or ".." parts (nor backslashes)."""
    parts = rel.split("/")
    if (
        any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in rel)
        or rel.startswith("/")
        or "\\" in rel
        or len(parts) < 2
        or parts[0] != DEMO_DIR
        or any(part in ("", ".", "..") for part in parts)
        or not rel.endswith(".py")
        or parts[-1] == ".py"
    ):
        return (
            f"{rel!r} should be the path of a .py file under {DEMO_DIR}/, relative to the "
            f"project folder, like {EXAMPLE}"
        )
    return None


def resolve_demo(project_dir: Path, rel: str) -> Path:
    """The demo file `rel` names, resolved; DemoPathError when it may not be used.

    Checked on every call, not once at load: a file swapped for a symlink after the
    knowledge base was loaded is refused when it is read.
    """
    problem = demo_path_problem(rel)
    if problem is not None:
        raise DemoPathError(problem)
    try:
        root = (project_dir / DEMO_DIR).resolve()
        path = (project_dir / rel).resolve()
        exists, regular = path.exists(), path.is_file()
    except (OSError, ValueError) as e:  # a loop of links, a name the OS refuses
        raise DemoPathError(f"points to {rel}, which cannot be read ({type(e).__name__})") from None
    if not path.is_relative_to(root) or path.suffix != ".py":
        raise DemoPathError(
            f"points to {rel}, which leads outside {DEMO_DIR}/ (a symbolic link?): "
            f"demos must be .py files in {DEMO_DIR}/"
        )
    if not exists:
        raise DemoPathError(
            f"points to {rel}, which does not exist: "
            "create it or fix the path (relative to the project folder)"
        )
    if not regular:
        raise DemoPathError(f"points to {rel}, which is not a regular file")
    return path
