"""Offline comparison of two versions (register -P action=compare): the statistics on arrays with a known answer,
the verdict rules, and one end-to-end run on two category versions registered in a store of the test's own."""

import math
import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats

from entrypoints import register as register_entry_point
from pyfunc_models import comparison, config, jobs, registry
from pyfunc_models.category import CategoryTask
from pyfunc_models.comparison import KEEP, NOT_ENOUGH_DATA, PROMOTE, Difference, Side, decide
from pyfunc_models.generator import write_ledger
from pyfunc_models.model_types import MODEL_NAMES
from pyfunc_models.task import Sample
from tests.conftest import python_module

NAME = MODEL_NAMES["category"]


def mean_error(columns):
    return float(np.mean(columns["error"]))


# --- statistics --------------------------------------------------------------------------------------------------
def test_mcnemar_is_the_exact_binomial_test_on_the_rows_where_only_one_is_right():
    # 40 both right, 2 only A, 12 only B, 6 both wrong, and 5 rows without a truth yet (left out).
    a = np.array([1.0] * 40 + [1] * 2 + [0] * 12 + [0] * 6 + [np.nan] * 5)
    b = np.array([1.0] * 40 + [0] * 2 + [1] * 12 + [0] * 6 + [1] * 5)
    test = comparison.mcnemar_test(a, b)
    assert (test["rows"], test["only_a_right"], test["only_b_right"]) == (60, 2, 12)
    assert test["accuracy_a"] == pytest.approx(42 / 60) and test["accuracy_b"] == pytest.approx(52 / 60)
    assert test["p_value"] == pytest.approx(stats.binomtest(2, 14, 0.5).pvalue)
    assert comparison.mcnemar_test([np.nan], [1.0]) is None


def test_paired_bootstrap_sees_a_constant_gain_that_the_unpaired_one_blurs():
    """B errs exactly 1 less than A on every row, on rows whose errors spread widely: paired, every resample says
    -1; resampled apart, the rows' own spread makes the interval wide."""
    error_a = np.random.default_rng(1).exponential(20, 300)
    a, b = Sample({"error": error_a}, mean_error), Sample({"error": error_a - 1}, mean_error)
    paired = comparison.paired_difference(a, b)
    assert paired.value == pytest.approx(-1)
    assert paired.interval == pytest.approx((-1, -1))
    unpaired = comparison.unpaired_difference(a, b)
    low, high = unpaired.interval
    assert low < -1 < 0 < high
    with pytest.raises(ValueError, match="same units"):
        comparison.paired_difference(a, Sample({"error": error_a[:10]}, mean_error))


def test_rows_needed_is_the_paired_sample_size_formula():
    """n = ((z_0.975 + z_0.8) sd(d) / mean(d))^2, here read from the bootstrap's standard error."""
    d = np.random.default_rng(2).normal(0.1, 1.0, 400)
    closed_form = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * d.std(ddof=1) / d.mean()) ** 2
    difference = comparison.paired_difference(Sample({"error": np.zeros_like(d)}, mean_error),
                                              Sample({"error": d}, mean_error))
    needed = comparison.rows_needed(difference.value, difference.standard_error, len(d))
    assert needed == pytest.approx(closed_form, rel=0.1)
    assert comparison.rows_needed(0.0, 0.5, 100) is None


def test_mcnemar_rows_needed_is_the_discordant_pairs_formula():
    # p10 = 0.1, p01 = 0.2: psi = 0.3, delta = 0.1 -> (1.96 sqrt(0.3) + 0.8416 sqrt(0.29))^2 / 0.01 = 233.09
    assert comparison.mcnemar_rows_needed(10, 20, 100) == 234
    assert comparison.mcnemar_rows_needed(100, 200, 1000) == 234  # the shares decide, not the counts
    assert comparison.mcnemar_rows_needed(7, 7, 100) is None


@pytest.mark.parametrize("low, high, greater, tolerance, more_often_right, verdict", [
    (0.02, 0.08, True, 0.01, None, PROMOTE),  # B better, clear of 0
    (0.02, 0.08, True, 0.01, False, NOT_ENOUGH_DATA),  # ...but McNemar does not find it right more often
    (0.02, 0.08, True, 0.01, True, PROMOTE),
    (-0.08, -0.02, True, 0.01, None, KEEP),  # A better
    (-0.005, 0.004, True, 0.01, None, KEEP),  # no difference beyond the gate's tolerance
    (-0.03, 0.05, True, 0.01, None, NOT_ENOUGH_DATA),  # could be either
    (-9.0, -2.0, False, 1.0, None, PROMOTE),  # an error: lower is better
    (2.0, 9.0, False, 1.0, None, KEEP),
    (float("nan"), float("nan"), True, 0.01, None, NOT_ENOUGH_DATA),
])
def test_verdict_rules(low, high, greater, tolerance, more_often_right, verdict):
    assert decide(low, high, greater, tolerance, more_often_right) == verdict


def test_a_comparison_without_enough_rows_says_how_many_would_do():
    replicates = np.random.default_rng(3).normal(0.02, 0.03, 2000)  # a small gain, a wide interval
    found = comparison.Comparison(
        "amount", MODEL_NAMES["amount"], "mae", False, Side("3", "champion", "r3", None, 120),
        Side("5", "challenger", "r5", None, 120), Difference(10.0, 10.02, replicates), 0.01, "rows",
        "new.csv (2025-01-01 to 2025-01-31): 120 rows", paired=True)
    assert found.verdict == NOT_ENOUGH_DATA
    expected = 120 * ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * replicates.std(ddof=1) / 0.02) ** 2
    assert found.rows_needed == math.ceil(expected)
    last = found.report().splitlines()[-1]
    assert last.startswith("verdict: not enough data: on 120 rows, version 5 (challenger) looks worse")
    assert f"about {found.rows_needed:,} rows" in last
    assert found.as_dict()["rows_needed"] == found.rows_needed


def category_comparison(only_a_right: int, only_b_right: int, p_value: float) -> comparison.Comparison:
    """Version 5 clearly ahead of champion 3 on macro-F1, with McNemar's figures as given."""
    replicates = np.random.default_rng(4).normal(0.05, 0.01, 2000)
    test = {"rows": 200, "accuracy_a": 0.8, "accuracy_b": 0.81, "only_a_right": only_a_right,
            "only_b_right": only_b_right, "p_value": p_value}
    return comparison.Comparison(
        "category", NAME, "macro_f1", True, Side("3", "champion", "r3", None, 200), Side("5", "", "r5", None, 200),
        Difference(0.70, 0.75, replicates), 0.01, "rows", "held-out rows", paired=True, mcnemar=test)


def test_a_macro_f1_gain_without_more_rows_right_is_not_promoted():
    """Category promotion needs both: the key metric clear of 0 and McNemar finding B right more often."""
    assert category_comparison(2, 14, stats.binomtest(2, 16, 0.5).pvalue).verdict == PROMOTE
    ahead = category_comparison(4, 7, stats.binomtest(4, 11, 0.5).pvalue)
    assert ahead.verdict == NOT_ENOUGH_DATA and ahead.rows_needed == comparison.mcnemar_rows_needed(4, 7, 200)
    assert "is not shown right more often" in ahead.verdict_line()
    level = category_comparison(6, 6, 1.0)
    assert level.verdict == NOT_ENOUGH_DATA and level.rows_needed is None
    assert level.verdict_line().endswith("more rows would not show version 5 right more often")


@pytest.mark.parametrize("model_type", ["anomaly", "cashflow"])
def test_a_model_that_answers_whole_requests_cannot_be_split_by_variant(model_type):
    with pytest.raises(registry.RegistryError, match="cannot split a ledger scored by one variant"):
        comparison.compare(model_type, ("7",))


# --- end to end --------------------------------------------------------------------------------------------------
class FakeSplit(mlflow.pyfunc.PythonModel):
    """A stand-in for ab_split's model: every other row to the champion version, the rest to the challenger's,
    each answer saying which variant and version answered it (config.AB_VARIANT_COLUMN, AB_VERSION_COLUMN)."""

    def __init__(self, champion: str, challenger: str):
        self.versions = {config.CHAMPION: champion, config.CHALLENGER: challenger}

    def load_context(self, context):
        self.models = {variant: mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
                       for variant, version in self.versions.items()}

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        variant = np.where(np.arange(len(model_input)) % 2 == 0, config.CHAMPION, config.CHALLENGER)
        answers = []
        for name, version in self.versions.items():
            rows = model_input[variant == name]
            answer = self.models[name].predict(rows.reset_index(drop=True)).set_axis(rows.index)
            answers.append(answer.assign(**{config.AB_VARIANT_COLUMN: name, config.AB_VERSION_COLUMN: version}))
        return pd.concat(answers).sort_index()


def register_split(champion: str, challenger: str) -> str:
    with mlflow.start_run(run_name="fake_ab_split"):
        # Requirements named: inferring them loads the model in a subprocess, seconds this test does not need.
        info = mlflow.pyfunc.log_model(name="model", python_model=FakeSplit(champion, challenger),
                                       pip_requirements=["mlflow"])
    tags = {config.AB_SPLIT_TAG: "true", "ab_champion_version": champion, "ab_challenger_version": challenger}
    return str(mlflow.register_model(info.model_uri, NAME, tags=tags).version)


@pytest.mark.slow
def test_compare_champion_and_challenger_end_to_end(tmp_path, capsys):
    """A good category model (champion: the merchant lookup) and a majority-class one (challenger) trained on the
    same ledger, so on the same held-out rows: compare says keep, and promote with require_significance is refused;
    then, the weak one forced to champion, the good one's evidence says promote, and so does an A/B split of the two,
    per variant."""
    uri, client = os.environ["MLFLOW_TRACKING_URI"], MlflowClient()
    ledger = tmp_path / "ledger.csv"
    write_ledger(ledger, rows=800, seed=3)
    for only in (["merchant_lookup"], ["majority"]):  # the cheapest good model and a useless one
        # Without word knowledge: it would answer the useless model's merchants never seen (comparison is the subject)
        registry.register("category", jobs.train_model(CategoryTask(only=only, word_knowledge=0), str(ledger)).run_id)
    assert str(client.get_model_version_by_alias(NAME, config.CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(NAME, config.CHALLENGER).version) == "2"

    out = python_module("entrypoints.register", "--action", "compare", "--model-type", "category", uri=uri).stdout
    lines = out.strip().splitlines()
    assert lines[-1].startswith("verdict: keep: version 1 (champion) is better than version 2 (challenger)")
    assert any(line.startswith("macro_f1 (higher is better): v1 ") for line in lines)
    assert any("McNemar's exact test" in line for line in lines)
    run = client.search_runs([client.get_experiment_by_name(config.EXPERIMENT_NAME).experiment_id],
                             "tags.verdict = 'keep'")[0]
    tags, metrics = run.data.tags, run.data.metrics
    assert run.info.run_name == "compare_category" and run.info.run_id in out
    assert (tags["compared_version_a"], tags["compared_version_b"]) == ("1", "2")
    for side, version in (("a", "1"), ("b", "2")):
        registered = client.get_model_version(NAME, version)
        assert tags[f"compared_run_{side}"] == registered.run_id
        assert tags[f"compared_model_id_{side}"] == mlflow.models.get_model_info(registered.source).model_id
        assert run.info.run_id in registered.tags["last_compared"]
    assert metrics["a/macro_f1"] > metrics["b/macro_f1"] and metrics["difference/high"] < 0
    assert metrics["a/accuracy"] > metrics["b/accuracy"] and metrics["mcnemar_p_value"] < 0.05
    assert metrics["only_a_right"] > metrics["only_b_right"]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["category-comparison"]
    assert {f.path for f in client.list_artifacts(run.info.run_id, "comparison")} == {
        comparison.FIGURE_ARTIFACT, comparison.REPORT_ARTIFACT}
    assert "verdict: keep" in tags["mlflow.note.content"]
    linked = client.get_logged_model(tags["compared_model_id_a"]).metrics
    assert any(m.key == "a/macro_f1" and m.run_id == run.info.run_id for m in linked)

    # The entry point in process: the subprocess above was the CLI's test, this is the refusal's.
    with pytest.raises(SystemExit) as refused:
        register_entry_point.main(["--action", "promote", "--model-type", "category", "--version", "2",
                                   "--require-significance", "true"])
    stderr = capsys.readouterr().err
    assert refused.value.code == 2
    assert "error: version 2 not promoted" in stderr and "verdict: keep" in stderr
    assert str(client.get_model_version_by_alias(NAME, config.CHAMPION).version) == "1"

    registry.promote("category", "2", force=True)  # the weak one is champion now, and there is no challenger
    with pytest.raises(registry.RegistryError, match="nothing to compare: .* pass two versions"):
        comparison.compare("category")
    evidence = comparison.require_evidence("category", "1", str(ledger))  # on a ledger given: all its expenses
    assert evidence.verdict == PROMOTE and (evidence.a.version, evidence.b.version) == ("2", "1")
    assert evidence.evaluated_on.startswith("ledger.csv") and evidence.units > metrics["units/a"]
    assert evidence.report().splitlines()[-1].startswith("verdict: promote: version 1 is better than version 2 "
                                                         "(champion)")

    split = register_split(champion="2", challenger="1")
    by_variant = comparison.compare("category", (split,))
    assert not by_variant.paired and by_variant.split_version == split and by_variant.verdict == PROMOTE
    assert (by_variant.a.version, by_variant.b.version) == ("2", "1")
    assert by_variant.a.units > 0 and by_variant.b.units > 0
    assert by_variant.units == metrics["units/a"]  # every held-out row, answered once
    assert by_variant.difference.value_b > by_variant.difference.value_a
    assert f"A/B split version {split}" in by_variant.report().splitlines()[0]
    assert by_variant.run_id in client.get_model_version(NAME, split).tags["last_compared"]
