"""``python -m webtunnel_pt``, the ``webtunnel-pt`` command (PyInstaller runs this file)."""

from webtunnel_pt.cli import main

raise SystemExit(main())
