from cube_detect.cli import main

raise SystemExit(main())
