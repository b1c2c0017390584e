"""Jupyter notebooks become scripts (code cells, markdown as comments, outputs dropped); malformed
notebooks are dropped by normalization with the reason `invalid_notebook`."""

from __future__ import annotations

import json

import pytest

from lemur_corpus.accounting import Drop
from lemur_corpus.document import Document
from lemur_corpus.filters.base import run_chain, setup_filters
from lemur_corpus.filters.code import CodeFiltersConfig, build_code_filters
from lemur_corpus.normalize import normalize_document
from lemur_corpus.notebooks import NotebookError, notebook_to_script


def notebook(cells: list[dict], language: str | None = "python", nbformat: int = 4) -> str:
    metadata = {"kernelspec": {"name": "python3", "language": language}} if language else {}
    if language:
        metadata["language_info"] = {"name": language}
    return json.dumps({"cells": cells, "metadata": metadata, "nbformat": nbformat, "nbformat_minor": 5})


def code(source: str | list[str], outputs: list | None = None) -> dict:
    return {"cell_type": "code", "execution_count": 3, "metadata": {"tags": []}, "source": source,
            "outputs": outputs or [{"output_type": "stream", "name": "stdout", "text": ["3.14159\n"]}]}


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def nb_doc(raw: str) -> Document:
    return Document(id="nb/1", source="notebooks", kind="code", text=raw, lang="Jupyter Notebook",
                    meta={"path": "analysis.ipynb"})


def test_code_cells_in_order_markdown_as_comments_outputs_and_metadata_dropped() -> None:
    raw = notebook([
        markdown("# Circle area\nWe compute *pi r^2*."),
        code(["import math\n", "r = 2\n"]),
        {"cell_type": "raw", "metadata": {}, "source": "raw text is not part of the script"},
        code("print(math.pi * r ** 2)"),
        code("   \n"),
    ])
    script, language = notebook_to_script(raw)
    assert language == "python"
    assert script == ("# # Circle area\n# We compute *pi r^2*.\n\n"
                      "import math\nr = 2\n\n"
                      "print(math.pi * r ** 2)\n")
    assert "3.14159" not in script and "execution_count" not in script


def test_ipython_syntax_is_commented_out_like_jupytext() -> None:
    raw = notebook([
        code("%matplotlib inline\nimport pandas as pd\n!pip install -q seaborn\ndf = pd.DataFrame()\ndf.head?"),
        code("%%bash\nls -la\necho done"),
        code("%%time\ntotal = sum(range(10))"),
    ])
    script, _ = notebook_to_script(raw)
    assert script.splitlines() == [
        "# %matplotlib inline", "import pandas as pd", "# !pip install -q seaborn", "df = pd.DataFrame()", "# df.head?",
        "", "# %%bash", "# ls -la", "# echo done",
        "", "# %%time", "total = sum(range(10))",
    ]


def test_a_converted_python_notebook_passes_the_syntax_filter() -> None:
    raw = notebook([code("%matplotlib inline\nimport math"), markdown("Area:"), code("print(math.pi)\n!ls")])
    doc = normalize_document(nb_doc(raw))
    assert isinstance(doc, Document) and doc.meta["notebook_language"] == "python"
    filters = build_code_filters(CodeFiltersConfig())
    setup_filters(filters)
    result = run_chain(doc, filters)
    assert result.kept, result.verdicts
    assert result.signals()["syntax.parsed"] == 1.0


def test_comment_syntax_follows_the_kernel_language() -> None:
    for language, prefix in (("r", "# "), ("julia", "# "), ("javascript", "// "), ("sql", "-- "), ("scala", "// ")):
        script, kernel = notebook_to_script(notebook([markdown("Notes"), code("x")], language=language))
        assert kernel == language and script.startswith(prefix + "Notes\n"), script
    script, kernel = notebook_to_script(notebook([code("%%R\nx")], language="r"))
    assert script == "%%R\nx\n"  # magics are only rewritten for Python kernels
    script, kernel = notebook_to_script(notebook([code("x = 1")], language=None))
    assert kernel == "python"


def test_nbformat_3_worksheets_are_read() -> None:
    raw = json.dumps({"nbformat": 3, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "heading", "level": 1, "source": ["Title"]},
        {"cell_type": "code", "input": ["a = 1\n", "b = a + 1"], "outputs": [], "language": "python"},
    ]}]})
    assert notebook_to_script(raw) == ("# Title\n\na = 1\nb = a + 1\n", "python")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{\"cells\": [", "not JSON"),
        ("print('a .py file misnamed .ipynb')\n", "not JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"metadata": {}}', "no 'cells' list"),
        ('{"cells": {"0": {}}}', "no 'cells' list"),
        ('{"cells": ["x = 1"]}', "a cell is not a JSON object"),
        ('{"cells": [{"cell_type": "code", "source": 42}]}', "a cell's source is int"),
        ('{"cells": [{"cell_type": "code", "source": ["a", 1]}]}', "holds something other than strings"),
        ('{"cells": [{"cell_type": "widget", "source": ""}]}', "unknown cell type 'widget'"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
)
def test_malformed_notebooks_raise_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(NotebookError, match=reason):
        notebook_to_script(raw)


def test_normalization_drops_malformed_notebooks_as_invalid_notebook() -> None:
    dropped = normalize_document(nb_doc("this is not JSON at all"))
    assert isinstance(dropped, Drop)
    assert (dropped.stage, dropped.reason, dropped.id) == ("normalize", "invalid_notebook", "nb/1")
    assert dropped.detail.startswith("not JSON")
    empty = normalize_document(nb_doc(notebook([code("   ")])))
    assert isinstance(empty, Drop) and empty.reason == "empty_text"
