from minikafka.cli import main

if __name__ == "__main__":  # the lab's worker processes import this module again
    raise SystemExit(main())
