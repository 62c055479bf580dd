"""Speed and memory benchmarks (``implicit2 bench``): inputs and measurement (``measure``)."""
