"""Document renderers: pure functions from domain objects to bytes (DOCX, PNG charts, CSV, XLSX).
No Teams, no storage; python-docx, matplotlib and openpyxl do the work."""
