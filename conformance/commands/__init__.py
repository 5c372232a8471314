"""What people run: the command line and each of its commands. The top layer, with the pytest plugin
and the suite's own test modules."""
