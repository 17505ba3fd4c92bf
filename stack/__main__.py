from stack.launcher import main

raise SystemExit(main())
