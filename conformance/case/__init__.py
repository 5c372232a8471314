"""What a case is: the graph and network case types and their JSON, the tensor-op table, entry names,
and the hypothesis strategies that draw cases (valid by construction). The bottom layer of the
suite: it imports only refimpl."""
