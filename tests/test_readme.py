"""The README's generated parts are what the quick start produced, and its example requests still work.

`python -m tools.readme_figures` runs the quick start (minutes), sends each champion its request from
examples/requests/, and stores the command, commit, summary, run metrics and answers in
examples/quickstart_results.json. Training that ledger is too slow for the suite, so the checks are:

- the README's blocks are exactly what the stored results and the request files render to (an edited figure,
  answer, request or caption that was not regenerated fails here);
- every stored request, sent to this session's own champions (trained on a smaller ledger), is still
  accepted and answered with the same columns and the same number of rows as the stored answer; the values
  themselves belong to the 20,000-row champions, and re-running the script is what refreshes them;
- examples/requests.sh sends those same files, and its answers have the same shape.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO, invoke
from tools import readme_figures

STORED = json.loads(readme_figures.RESULTS.read_text())
MODEL_TYPES = [model_type for model_type, _ in readme_figures.EXAMPLES]


def test_the_readme_blocks_are_what_the_stored_quickstart_results_render_to():
    in_readme = readme_figures.readme_blocks(readme_figures.README.read_text())
    rendered = readme_figures.render_blocks(STORED)
    assert set(in_readme) == set(rendered), "README.md lacks a figures block (or has one too many)"
    for name, text in rendered.items():
        assert in_readme[name] == text, (f"README.md's '{name}' block differs from what {readme_figures.RESULTS.name} "
                                         f"renders to: run python -m tools.readme_figures (--render if only the "
                                         f"README changed)")


def test_the_stored_results_describe_four_champions_and_their_answers():
    assert set(STORED["models"]) == set(MODEL_TYPES) == set(STORED["answers"])
    for model_type, answer in STORED["answers"].items():
        assert STORED["models"][model_type]["alias"] == readme_figures.CHAMPION
        assert answer["status"] == 200 and json.loads(answer["response"])["predictions"], model_type
        assert (REPO / answer["request"]).is_file()
    assert f"-p {STORED['answers']['category']['port']}" in STORED["summary"]  # the summary's own port


def shape(response_text: str) -> tuple:
    """(rows, the columns of every row) of a served answer."""
    predictions = json.loads(response_text)["predictions"]
    return len(predictions), [sorted(row) for row in predictions]


@pytest.mark.slow
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_stored_request_is_still_answered_with_the_same_columns_and_rows(champion_servers, model_type):
    answer = STORED["answers"][model_type]
    body = json.loads((REPO / answer["request"]).read_text())
    response = invoke(champion_servers[model_type], body)
    assert response.status_code == 200, response.text[:2000]
    assert shape(response.text) == shape(answer["response"])


@pytest.mark.slow
def test_examples_requests_sh_sends_the_same_requests(champion_servers):
    ports = " ".join(champion_servers[m].rsplit(":", 1)[1] for m in MODEL_TYPES)
    result = subprocess.run(["bash", str(REPO / "examples" / "requests.sh")], env={"PATH": "/usr/bin:/bin",
                            "HOST": "127.0.0.1", "PORTS": ports}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for model_type in MODEL_TYPES:
        header = next(i for i, line in enumerate(lines) if line.startswith(f"# {model_type}: "))
        assert lines[header].split()[2].endswith(f"examples/requests/{model_type}.json")
        assert shape(lines[header + 1]) == shape(STORED["answers"][model_type]["response"])
