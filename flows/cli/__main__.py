from flows.cli.commands import app, main

if __name__ == "__main__":
    main()
