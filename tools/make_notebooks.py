"""Write the example notebooks (outputs stripped): python tools/make_notebooks.py"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parents[1] / "notebooks"

SIMULATOR = """
# A local simulator of the Field Services API, started for this notebook: its data is made up.
# To use your own site instead, set DFS_BASE_URL (or DFS_SITE_ID and DFS_REGION) and
# DFS_API_KEY in the environment, and replace the next line with:  client = dfs.connect()
client = dfs.connect(simulator=True, work_orders=600, seed=0)"""

# the first code cell of 01 (no plot, no file) and of 02 and 03 (plots, files)
CONNECT = "import dfs_analytics as dfs\n" + SIMULATOR
CONNECT_OUTPUT = (
    "from pathlib import Path\n\n"
    "import dfs_analytics as dfs\n"
    "from dfs_analytics.connect import data_note, is_simulator\n"
    + SIMULATOR
    + "\nNOTE = data_note(client)  # ' (simulator data)' in the titles of plots of made-up data\n"
    "OUTPUT = Path('output')  # the files this notebook writes (git ignores output/)"
)

INTRO = (
    "This notebook asks for a local simulator of the Field Services API, so it runs anywhere; "
    "its data is made up, and plots and reports made from it say *(simulator data)*. The first "
    "code cell shows how to point it at your own site."
)


def titled(call: str) -> str:
    """A plot call whose title says when the data is the simulator's."""
    return f"ax = {call}\nax.set_title(ax.get_title() + NOTE);"


NOTEBOOKS = {
    "01_quickstart.ipynb": [
        new_markdown_cell(
            "# Quickstart: Field Services data in pandas\n\n"
            "Load work orders, tasks with their AI verdicts, timelines and task groups into "
            "DataFrames.\n\n" + INTRO
        ),
        new_code_cell(CONNECT + "\nclient"),
        new_markdown_cell(
            "## Work orders\nOne row per work order; metadata keys become `metadata.<key>` columns."
        ),
        new_code_cell(
            "work_orders = dfs.load_work_orders(client)\nprint(len(work_orders), 'work orders')\nwork_orders.head()"
        ),
        new_markdown_cell(
            "## Tasks and their states\nOne row per work order x task. `value` is the corrected "
            "value when a human corrected it, else the AI's; `is_overridden` means a human "
            "changed the AI's value."
        ),
        new_code_cell(
            "tasks = dfs.load_tasks(client, created_after='2026-03-01', reviewed=True)\n"
            "tasks[['work_order_name', 'task_name', 'analyzed_value', 'corrected_value', 'message', "
            "'is_overridden']].head(10)"
        ),
        new_code_cell("tasks.dtypes"),
        new_markdown_cell(
            "## Loading again is a refresh\nThe second call asks the server what changed and "
            "re-reads only that."
        ),
        new_code_cell(
            "import time\n\n"
            "t = time.perf_counter()\n"
            "tasks = dfs.load_tasks(client, created_after='2026-03-01', reviewed=True)\n"
            "print(f'refreshed {len(tasks)} rows in {time.perf_counter() - t:.3f} s')"
        ),
        new_markdown_cell("## Timelines and task groups"),
        new_code_cell(
            "timeline = dfs.load_timeline(client, work_order_ids=work_orders['work_order_id'][:25])\n"
            "timeline.head(12)"
        ),
        new_code_cell(
            "task_groups = dfs.load_task_groups(client)\n"
            "task_groups[['task_group_name', 'task_name', 'outcome_type', 'conformity_status']]"
        ),
        new_markdown_cell("## Browse\nFilters, a paged table, and the detail of one work order."),
        new_code_cell("explorer = dfs.Explorer(client)\nexplorer"),
    ],
    "02_audit_ai_verdicts.ipynb": [
        new_markdown_cell(
            "# Audit the AI's verdicts\n\n"
            "How often do reviewers overturn the AI, on which tasks, for which field engineers, "
            "and did it change with the app version? A task counts when the AI analysed it on a "
            "reviewed work order; it is *overridden* when a human corrected it to a different "
            "value. Intervals are 95% Wilson intervals.\n\n" + INTRO
        ),
        new_code_cell(
            CONNECT_OUTPUT + "\n\ntasks = dfs.load_tasks(client)\ndfs.audit.summary(tasks)"
        ),
        new_markdown_cell("## Override rate per task"),
        new_code_cell(
            "rates = dfs.override_rates(tasks)\nrates.sort_values('rate', ascending=False)"
        ),
        new_code_cell(titled("dfs.plots.plot_override_rates(rates)")),
        new_markdown_cell("## Per task group and per field engineer"),
        new_code_cell("dfs.override_rates(tasks, by='task_group_name')"),
        new_code_cell(titled("dfs.plots.plot_engineers(tasks)")),
        new_markdown_cell(
            "## What the AI said vs the final verdict\nNothing is hidden: tasks never analysed "
            "and values outside the verdict rules have their own rows and columns."
        ),
        new_code_cell(
            "worst = str(rates.sort_values('rate', ascending=False)['task_name'].iloc[0])\n"
            "dfs.confusion(tasks, task_name=worst)"
        ),
        new_code_cell(titled("dfs.plots.plot_confusion(tasks, task_name=worst)")),
        new_code_cell("dfs.agreement(tasks)"),
        new_markdown_cell(
            "## Drift\nDid the override rate change with the app version? Changes are tested "
            "with Fisher's exact test and Holm-adjusted over the whole table."
        ),
        new_code_cell(
            "versions = dfs.drift(tasks, by='app_version_id')\n"
            "versions[['task_name', 'first_date', 'n', 'rate', 'ci_low', 'ci_high', 'p_adjusted', 'flagged']]"
        ),
        new_code_cell(titled("dfs.plots.plot_drift(tasks, freq='W')")),
        new_markdown_cell("## A sample for human review, and the report"),
        new_code_cell(
            "dfs.sample(tasks, n=3, seed=0)[['work_order_id', 'task_name', 'value', 'message']]"
        ),
        new_code_cell(
            "# the report's title says '(simulator data)' when the data is made up\n"
            "path = dfs.audit_report(tasks, OUTPUT / 'audit.html', simulator=is_simulator(client))\n"
            "print('wrote', path.resolve())"
        ),
    ],
    "03_correction_campaign.ipynb": [
        new_markdown_cell(
            "# A correction campaign\n\n"
            "A model bug marked cables as badly arranged on some work orders; field checks showed "
            "they were fine. This notebook plans the corrections, validates them, previews them, "
            "and applies them with a journal, so that a crash half-way never doubles or loses a "
            "correction. Then it corrects one task by hand in the Explorer.\n\n" + INTRO
        ),
        new_code_cell(CONNECT_OUTPUT + "\n\ntasks = dfs.load_tasks(client)"),
        new_markdown_cell(
            "## The plan\nNot-yet-reviewed work orders where the AI said the cables were not arranged."
        ),
        new_code_cell(
            "suspect = tasks[(tasks['task_name'] == 'cables_ranges') & tasks['analyzed'] & ~tasks['reviewed']\n"
            "                & (tasks['value'] == False)].head(8)  # noqa: E712\n"
            "plan = suspect[['work_order_id', 'task_name']].assign(corrected_value='Conforme')\n"
            "plan"
        ),
        new_code_cell(
            "from dfs_analytics.connect import scratch_folder\n\n"
            "# The journal lets a re-run resume without sending anything twice, so it belongs to\n"
            "# one site. A simulator forgets everything when it stops: its journal goes in a folder\n"
            "# removed with it. A real site's journal is kept in output/.\n"
            "if is_simulator(client):\n"
            "    journal = scratch_folder(client, 'campaign') / 'campaign.jsonl'\n"
            "else:\n"
            "    journal = OUTPUT / 'campaign.jsonl'\n"
            "campaign = dfs.Campaign(client, plan, journal=journal)\n"
            "campaign.validate()  # an empty table: nothing blocks the campaign"
        ),
        new_code_cell("campaign.preview()"),
        new_markdown_cell(
            "## Apply it\nThe panel shows the preview and applies only after you tick the "
            "confirmation. In code, `campaign.apply()` does the same; running it again with the "
            "same journal resumes and sends nothing twice."
        ),
        new_code_cell("panel = dfs.CampaignPanel(campaign)\npanel"),
        new_code_cell("results = campaign.apply()\nresults"),
        new_code_cell(
            "import collections\nimport json\n\n"
            "# one record per attempt, made durable before the correction is sent, and its outcome\n"
            "events = [json.loads(line)['event'] for line in journal.read_text().splitlines()]\n"
            "print(len(events), 'journal records:', dict(collections.Counter(events)))"
        ),
        new_code_cell("campaign.verify()  # empty: the server now has the planned values"),
        new_markdown_cell(
            "## One correction by hand\nOpen a work order, choose a task and one of the values its "
            "rules allow, and press **Correct**; the view is read again from the server."
        ),
        new_code_cell(
            "done = set(plan['work_order_id'])\n"
            "other = tasks[(tasks['task_name'] == 'jarretiere_connectee') & tasks['analyzed']\n"
            "              & ~tasks['work_order_id'].isin(done) & ~tasks['is_corrected']].iloc[0]\n"
            "explorer = dfs.Explorer(client)\n"
            "explorer.show_work_order(other['work_order_id'])\n"
            "explorer.correct_task.value = other['task_id']\n"
            "print('work order', other['work_order_id'], 'task', other['task_name'], other['task_id'])\n"
            "explorer"
        ),
    ],
}


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
