"""Category accuracy on merchants the model never saw, with and without word knowledge (issue 17's figures).

Each protocol trains the category model the way `train_category` does (CategoryTask.train: candidates, choice,
refit, word knowledge) on part of a ledger and asks its served predictor about the rest:
  generator  the project's own figure: a generated ledger's merchant hold-out (`merchant_holdout_*` metrics of
             the training run; 20% of merchant groups held out, one split per seed), and its seen-merchant test
             accuracy (the time-ordered test rows)
  bank       a bank-style export (tests/real_ledgers.bank_style: its own merchants, spellings and categories), a
             quarter of its merchant groups held out, one split per seed
  titans     a ~130-row ledger in the Titans export's shape (tests/real_ledgers.titans_export), random 80/20 row
             splits, one per seed
  every_merchant  calibration of word knowledge alone: every merchant group of a 12,000-row generated ledger
             held out once (5 folds grouped by merchant), pooled, per --ledger-seeds and over all of them; beside
             it the same confidences made over- (power 0.25) and underconfident (power 3)
  latency    single-row in-process predict (the served predictor's `serve` on one raw row, as the pyfunc does)
             of a model trained on a generated ledger: a seen merchant, and a merchant never seen with word
             knowledge and without it (the same predictor with its word knowledge removed: today's answer),
             interleaved, median and p99 of --repeats calls each
Calibration: the held-out rows of all seeds pooled, in ten equal-count bins by confidence (`category.calibration`),
beside the worst bin that chance alone gives a calibrated model on the same merchants (`category.calibration_noise`).

    python -m benchmarks.unseen_merchants [--protocols generator,bank,titans] [--seeds 0,1,2,3,4]
                                          [--generator-rows 20000] [--word-knowledge 0,1]
    python -m benchmarks.unseen_merchants --protocols latency --word-knowledge 1
    python -m benchmarks.unseen_merchants --protocols every_merchant --word-knowledge 1 [--ledger-seeds 11,42,7]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pyfunc_models.category import CategoryTask, calibration, calibration_noise
from pyfunc_models.generator import generate_ledger
from pyfunc_models.ledger import load_ledger, prepare_ledger
from pyfunc_models.splits import merchant_groups, merchant_split
from tests import real_ledgers


def quiet(function, *args, **kwargs):
    """Training prints its progress; a benchmark prints its figures."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def served_answers(word_knowledge: int, train: pd.DataFrame, held: pd.DataFrame, seed: int) -> pd.DataFrame:
    outcome = quiet(CategoryTask(word_knowledge=word_knowledge).train, train, seed=seed)
    return outcome.predictor.predict(held)


def held_out_figures(answers: list, helds: list) -> dict:
    """Each split's answers against its held-out rows' categories, pooled; `calibration_chance_gap`: the worst bin
    chance gives a calibrated model on these merchants (a merchant held out by two splits counts twice: each split
    trained its own model)."""
    truths = [held["category"].to_numpy(dtype=object) for held in helds]
    correct = np.concatenate([a["category"].to_numpy(dtype=object) == t for a, t in zip(answers, truths)])
    confidence = np.concatenate([a["confidence"].to_numpy(dtype=float) for a in answers])
    groups = np.concatenate([[f"{split}:{group}" for group in merchant_groups(held["description"])]
                             for split, held in enumerate(helds)])
    per_split = [float(np.mean(a["category"].to_numpy(dtype=object) == t)) for a, t in zip(answers, truths)]
    return {"accuracy": float(correct.mean()), "per_split": [round(x, 3) for x in per_split], "rows": int(len(correct)),
            **calibration(confidence, correct), "calibration_chance_gap": calibration_noise(confidence, groups)}


def expenses(ledger: pd.DataFrame) -> pd.DataFrame:
    return CategoryTask().training_rows(ledger)


def generator(word_knowledge: int, seeds: list, rows: int) -> dict:
    ledger = prepare_ledger(generate_ledger(rows, seed=42))[0]
    runs = []
    for seed in seeds:
        metrics = quiet(CategoryTask(word_knowledge=word_knowledge).train, ledger, seed=seed).metrics
        runs.append(metrics)
    pick = {name: [round(m[name], 4) for m in runs] for name in
            ("merchant_holdout_accuracy", "merchant_holdout_calibration_max_gap", "merchant_holdout_calibration_error",
             "merchant_holdout_calibration_chance_gap",
             "accuracy", "macro_f1") if name in runs[0]}
    return {"rows": rows, "seeds": seeds, **pick,
            "merchant_holdout_accuracy_mean": float(np.mean(pick["merchant_holdout_accuracy"]))}


def grouped(path_writer, word_knowledge: int, seeds: list, share: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        ledger, _ = load_ledger(path_writer(Path(folder) / "ledger.csv"))
    rows = expenses(ledger)
    answers, helds = [], []
    for seed in seeds:
        known, unseen = merchant_split(rows, share, seed)
        answers.append(served_answers(word_knowledge, known, unseen, seed))
        helds.append(unseen)
    return held_out_figures(answers, helds)


def random_rows(path_writer, word_knowledge: int, seeds: list, share: float = 0.2) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        ledger, _ = load_ledger(path_writer(Path(folder) / "ledger.csv"))
    rows = expenses(ledger)
    answers, helds = [], []
    for seed in seeds:
        held = np.random.default_rng(seed).random(len(rows)) < share
        helds.append(rows[held].reset_index(drop=True))
        answers.append(served_answers(word_knowledge, rows[~held].reset_index(drop=True), helds[-1], seed))
    return {"ledger_rows": len(rows), **held_out_figures(answers, helds)}


def every_merchant_held_out(expenses: pd.DataFrame, folds: int = 5) -> tuple:
    """Word knowledge alone, every merchant group held out once (folds grouped by merchant), each fit learning its
    blend on its own training rows: (confidence, right, merchant group) of the held-out rows, pooled. A decile
    then holds a tenth of the ledger's merchants, not a tenth of one hold-out's."""
    from sklearn.model_selection import GroupKFold

    from pyfunc_models.category import learn_word_knowledge

    y = expenses["category"].to_numpy(dtype=object)
    groups = merchant_groups(expenses["description"])
    confidence, right, held_groups = [], [], []
    for train, held in GroupKFold(n_splits=folds).split(expenses, y, groups):
        classes = np.unique(y[train])
        held = held[np.isin(y[held], classes)]  # an unseen merchant, not an unseen category
        words = learn_word_knowledge(expenses.iloc[train].reset_index(drop=True), y[train], classes)
        proba = words.predict_proba(expenses.iloc[held].reset_index(drop=True))
        confidence.append(proba.max(1))
        right.append(classes[proba.argmax(1)] == y[held])
        held_groups.append(groups[held])
    return tuple(map(np.concatenate, (confidence, right, held_groups)))


def every_merchant(ledger_seeds: list, rows: int = 12_000) -> dict:
    """Per ledger seed, and pooled over them (`pooled`: a decile then holds a tenth of all their merchants)."""
    figures, pooled = {}, []
    for seed in ledger_seeds:
        confidence, right, groups = every_merchant_held_out(expenses(prepare_ledger(generate_ledger(rows, seed))[0]))
        pooled.append((confidence, right, np.array([f"{seed}:{group}" for group in groups], dtype=object)))
        figures[f"ledger seed {seed}"] = calibration_figures(confidence, right, groups)
    if len(pooled) > 1:
        figures["pooled"] = calibration_figures(*map(np.concatenate, zip(*pooled)))
    return figures


def calibration_figures(confidence: np.ndarray, right: np.ndarray, groups: np.ndarray) -> dict:
    return {"accuracy": round(float(right.mean()), 4), "rows": int(len(right)), "merchants": len(np.unique(groups)),
            **{name: round(value, 4) for name, value in calibration(confidence, right).items()},
            "calibration_chance_gap": round(calibration_noise(confidence, groups), 4),
            "overconfident_max_gap": round(calibration(confidence ** 0.25, right)["calibration_max_gap"], 4),
            "underconfident_max_gap": round(calibration(confidence ** 3, right)["calibration_max_gap"], 4)}


def latency(rows: int, repeats: int) -> dict:
    import copy

    from pyfunc_models.predictor import EXAMPLE_TRANSACTIONS

    ledger = prepare_ledger(generate_ledger(rows, seed=42))[0]
    with_words = quiet(CategoryTask().train, ledger, seed=42).predictor
    without = copy.copy(with_words)
    without.word_knowledge = None
    seen = ledger[ledger["type"] == "expense"].iloc[[-1]][["date", "description", "amount", "payment_method"]]
    unseen = EXAMPLE_TRANSACTIONS.iloc[[0]][["date", "description", "amount", "payment_method"]]
    unseen = unseen.assign(description="VOXTREJIN YACHT CHARTER MONACO")
    cases = {"seen merchant": (with_words, seen), "never seen, word knowledge": (with_words, unseen),
             "never seen, classifier alone": (without, unseen)}
    for predictor, row in cases.values():  # warm: sessions, caches of the contract
        predictor.serve(row)
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (predictor, row) in cases.items():
            with_words.word_knowledge.encoder._cache.clear()  # each call encodes, as a new merchant's first row
            started = time.perf_counter()
            predictor.serve(row)
            times[name].append((time.perf_counter() - started) * 1000)
    import pickle

    return {name: {"p50_ms": round(float(np.median(t)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3)}
            for name, t in times.items()} | {"training_rows": rows, "repeats": repeats,
                                             "pickled_mb": round(len(pickle.dumps(with_words)) / 1e6, 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default="generator,bank,titans")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--generator-rows", type=int, default=20_000)
    parser.add_argument("--generator-seeds", default="42", help="the project's figure is seed 42")
    parser.add_argument("--ledger-seeds", default="11,42,7", help="every_merchant: 12,000-row generated ledgers")
    parser.add_argument("--word-knowledge", default="0,1")
    parser.add_argument("--repeats", type=int, default=300, help="latency: calls per case")
    parser.add_argument("--out", default=None, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    figures = {}
    for word_knowledge in (int(w) for w in args.word_knowledge.split(",")):
        for protocol in args.protocols.split(","):
            started = time.perf_counter()
            if protocol == "generator":
                result = generator(word_knowledge, [int(s) for s in args.generator_seeds.split(",")],
                                   args.generator_rows)
            elif protocol == "bank":
                result = grouped(real_ledgers.bank_style, word_knowledge, seeds, 0.25)
            elif protocol == "titans":
                result = random_rows(real_ledgers.titans_export, word_knowledge, seeds)
            elif protocol == "every_merchant":
                result = every_merchant([int(s) for s in args.ledger_seeds.split(",")])
            elif protocol == "latency":
                result = latency(5_000, args.repeats)
            else:
                raise SystemExit(f"unknown protocol {protocol!r}: generator, bank, titans, every_merchant or latency")
            result["seconds"] = round(time.perf_counter() - started, 1)
            figures[f"{protocol} word_knowledge={word_knowledge}"] = result
            print(f"{protocol:<10} word_knowledge={word_knowledge}: {json.dumps(result)}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
