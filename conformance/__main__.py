from conformance.commands.cli import main

raise SystemExit(main())
