"""The lab around the textbook core: run folders, trials, the paper's claims, figures, benchmarks, sparse
inference and the command line. The core (``minilottery.*`` outside this package) never imports it."""
