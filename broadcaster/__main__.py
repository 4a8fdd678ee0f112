from broadcaster.cli.main import main

main()
