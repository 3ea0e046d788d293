from nurtured.cli import main

raise SystemExit(main())
