from cathouse.cli import main

main()
