"""Running a case: through torch (the oracle), through refimpl in any number system (binary64, float32,
the error bounds, the high-precision truth), the kink points of every op, and the torch scripts that
replay a case."""
