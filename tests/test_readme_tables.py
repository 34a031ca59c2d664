"""The README's tables of model types, entry points and gates are what the definitions say (tools/readme_tables.py)."""

from tests.conftest import REPO
from tools import readme_tables


def test_the_readme_tables_are_written_from_the_model_type_definitions():
    text = (REPO / "README.md").read_text()
    assert readme_tables.render(text) == text, "README.md is out of date: run python -m tools.readme_tables"


def test_a_new_option_would_show_in_the_entry_points_table(monkeypatch):
    from pyfunc_models.category import CategoryTask
    from pyfunc_models.task import Option

    monkeypatch.setattr(CategoryTask, "options", (*CategoryTask.options, Option("max_tree_rows", 1, "changed help")))
    assert "changed help" in readme_tables.entry_points_table()
    assert readme_tables.render((REPO / "README.md").read_text()) != (REPO / "README.md").read_text()
