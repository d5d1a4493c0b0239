from kubelet.proxy.main import main

raise SystemExit(main())
