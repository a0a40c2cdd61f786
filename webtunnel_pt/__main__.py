from webtunnel_pt.cli import main

raise SystemExit(main())
