"""Executed notebooks made portable before they are kept: no paths of this machine, no progress-bar
redraws, and none of the lines TensorFlow's C++ runtime prints while it starts (they carry
timestamps and process ids, and some come before any log-level setting applies), and no stream
split by timing."""
from __future__ import annotations

import re
from pathlib import Path

# "I0000 00:00:1795630838.000778   12063 port.cc:153] ..." and absl's note before it.
TF_STARTUP_LINE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w.]+:\d+\]|"
                             r"WARNING: All log messages before absl::InitializeLog\(\)|"
                             r"To enable the following instructions:|"
                             r"Cause: could not parse the source code|"
                             r"To silence this warning, decorate the function)")
PROGRESS_BAR = re.compile(r"\r|\d+%\|")  # tqdm redraws: carriage returns, "37%|####  |"


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def strip_tf_startup_lines(notebook: dict) -> dict:
    """Drop TensorFlow's C++ start-up lines and progress-bar redraws from every stderr stream
    output (and the outputs left empty); other stderr text, such as a real warning, stays."""
    for cell in notebook.get("cells", []):
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = _text(output["text"]).splitlines(keepends=True)
                lines = [line for line in lines if line.strip() and not TF_STARTUP_LINE.match(line)
                         and not PROGRESS_BAR.search(line)]
                if not lines:
                    continue
                output["text"] = "".join(lines)
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return notebook


def merge_streams(notebook: dict) -> dict:
    """Join back-to-back stream outputs of the same name in a cell, as notebook front-ends show
    them: how the kernel split a print into messages depends on timing (a busy machine sends its
    final newline apart), and the kept notebook and report must not."""
    for cell in notebook.get("cells", []):
        merged = []
        for output in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (output.get("output_type") == "stream" and last is not None
                    and last.get("output_type") == "stream" and last.get("name") == output.get("name")):
                last["text"] = _text(last["text"]) + _text(output["text"])
                continue
            merged.append(output)
        if "outputs" in cell:
            cell["outputs"] = merged
    return notebook


INJECTED_CELL_ID = "injected-parameters"


def portable(notebook: dict) -> dict:
    """Papermill's note of where it read and wrote the notebook, made relative (the repository's
    ``notebooks/`` and the notebook's own name), the cell papermill injects named by its tag
    instead of a random id (so the same records render the same report, byte for byte), the
    start-up lines dropped and what is left of each stream in one piece."""
    papermill = notebook.get("metadata", {}).get("papermill", {})
    if papermill.get("input_path"):
        papermill["input_path"] = f"notebooks/{Path(papermill['input_path']).name}"
    if papermill.get("output_path"):
        papermill["output_path"] = Path(papermill["output_path"]).name
    for cell in notebook.get("cells", []):
        if INJECTED_CELL_ID in cell.get("metadata", {}).get("tags", []) and "id" in cell:
            cell["id"] = INJECTED_CELL_ID
    return merge_streams(strip_tf_startup_lines(notebook))


def main(paths) -> None:
    """``python -m vae_lib.pipeline.nbclean NOTEBOOK...``: make executed notebooks portable, in place."""
    import json

    for path in map(Path, paths):
        notebook = portable(json.loads(path.read_text()))
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
