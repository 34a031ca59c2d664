"""What a batch job reports when it cannot run or a model refuses rows: one line a user can act on.

Spark reports an executor's failure as the whole Python traceback wrapped in a Java one; these functions find what
the model (or Spark itself) said, and say which input row a model's "row N" is.
"""

from __future__ import annotations

import re

ROW_REFERENCE = re.compile(r"\brow (\d+)\b")


class BatchError(ValueError):
    """A batch job that cannot run (model, output, Spark), with a message a user can act on."""


def first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), str(text))


def in_input_rows(text: str, rows) -> str:
    """'row 3' of one predict call as the input row it is (`rows`: input row of each position in the call)."""
    return ROW_REFERENCE.sub(lambda match: f"row {rows[int(match.group(1))]}", text)


def spark_failure(error: Exception) -> BatchError:
    """A failure on Spark in one line: what the model refused on an executor, else Spark's innermost cause."""
    text = str(error)
    refused = re.findall(r"^(?:[\w.]+\.)?(BatchError|MlflowException|LedgerError): (.+)$", text, re.MULTILINE)
    if refused:
        kind, message = refused[-1]
        if kind != "BatchError" and ROW_REFERENCE.search(message):  # from spark_udf, which sees batches
            message += " (rows counted within one Spark batch of the input, not from the top of the file)"
        return BatchError(message.strip())
    causes = re.findall(r"^(?:Caused by: |: )?[\w.$]+(?:Exception|Error): (.+)$", text, re.MULTILINE)
    return BatchError(re.sub(r"\s*SQLSTATE: \w+\s*$", "", causes[-1] if causes else first_line(text)).strip())
