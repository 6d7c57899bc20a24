"""The bot starts without the document renderers' libraries (issue #3: resident memory under 200 MB).

matplotlib, openpyxl and python-docx are ~70 MB of a running bot and are needed only when a chart,
spreadsheet or Word document is rendered; documents/* import them where they render. Checked in a
fresh interpreter: sys.modules after ``import bot.app`` and ``create_app`` on the default embedded
store, then again after rendering, so the test also fails if rendering stops working lazily.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "openpyxl", "docx", "PIL", "numpy")

SCRIPT = r"""
import json, sys, tempfile
from bot.app import create_app
from bot.config import load_config

data = tempfile.mkdtemp()
config = load_config({"DATA_DIR": data, "SCHEDULER_INTERVAL_SECONDS": "0"}, env_file=None)
app = create_app(config, start_background=False)
heavy = %(heavy)r
started = sorted(m for m in heavy if m in sys.modules)

from documents.record_docx import DocSection, RecordDocument, render_record
from documents.tracker_charts import sessions_chart
from documents.tracker_export import to_xlsx
from supervision.tracker import stats
png = sessions_chart(stats([]))
xlsx = to_xlsx([])
docx = render_record(RecordDocument(title="Record", subtitle="Synthetic", facts=[("Case", "CASE-0")],
                                    sections_title="Sections", sections=[DocSection("One", ("Q?",), "A.")],
                                    actions_title="Actions", actions_header=("What", "Who", "When"), actions=[]))
rendered = sorted(m for m in ("matplotlib", "openpyxl", "docx") if m in sys.modules)
print(json.dumps({"started": started, "rendered": rendered, "png": png[:4].hex(), "xlsx": xlsx[:2].hex(),
                  "docx": docx[:2].hex()}))
"""


def test_bot_starts_without_document_libraries(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT % {"heavy": HEAVY}], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                                         "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["started"] == [], f"imported at start-up: {found['started']}"
    # the renderers still work, and import what they need when they render
    assert found["rendered"] == ["docx", "matplotlib", "openpyxl"]
    assert found["xlsx"] == "504b" and found["docx"] == "504b"   # zip containers (PK)
    assert found["png"] == "89504e47"
