from streamlib.cli import main

raise SystemExit(main())
