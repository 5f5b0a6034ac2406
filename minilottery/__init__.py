"""minilottery: the Lottery Ticket Hypothesis (Frankle & Carbin, ICLR 2019), exact and readable, in NumPy/CuPy.

Importing the package never imports CuPy; ask for the GPU with ``minilottery.backend.use("gpu")``,
``MINILOTTERY_DEVICE=gpu`` or a command's ``--device gpu``.
"""

__version__ = "0.1.0"
