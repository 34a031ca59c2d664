"""What a logged model carries: its input example is made up, never a row of the customer's training ledger."""

import json

import mlflow
import pytest

pytestmark = pytest.mark.slow  # reads the session's four champions


@pytest.mark.parametrize("model_type", ["category", "amount", "anomaly", "cashflow"])
def test_the_input_example_holds_no_row_of_the_training_ledger(model_type, champions, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champions["uri"])
    folder = mlflow.artifacts.download_artifacts(champions["trained"][model_type]["model_uri"], dst_path=str(tmp_path))
    examples = {name: (tmp_path / name).read_text() for name in ("input_example.json", "serving_input_example.json")
                if (tmp_path / name).exists()}
    assert "input_example.json" in examples, f"no input example in {folder}"
    ledger = champions["past"]
    descriptions = set(ledger["Description"]) - {""}
    for name, text in examples.items():
        written = json.dumps(json.loads(text))
        leaked = [d for d in descriptions if json.dumps(d)[1:-1] in written]
        assert not leaked, f"{name} carries training descriptions: {leaked[:3]}"
        assert "EXAMPLE" in written
