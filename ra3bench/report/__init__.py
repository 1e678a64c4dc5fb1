"""Reports on run folders: `ra3bench compare` (a paired regression gate for CI) and `ra3bench report`
(report.md and a self-contained report.html with plots)."""
