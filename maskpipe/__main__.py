from maskpipe.cli import main

main()
